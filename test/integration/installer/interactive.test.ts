// install primary without an answers file asks its questions (here from a pipe, --interactive):
// each with its default, an invalid answer said why and asked again, and the answers it built
// printed for the next, scripted install.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { freePorts } from '../../helpers/install.ts';
import { exited, killAll, spawnTracked, TEST_MARKER } from '../../helpers/processes.ts';
import { TANDEM_BIN } from '../../helpers/pair.ts';

const dirs: string[] = [];
afterEach(async () => {
  await killAll();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('install primary, interactive', () => {
  it('asks, re-asks what is not valid, takes defaults, installs, and prints the answers', async () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-ask-'));
    dirs.push(work);
    const root = path.join(work, 'r');
    fs.mkdirSync(path.join(root, 'srv/www'), { recursive: true });
    const [p1, p2, p3, p4, p5] = await freePorts(5);
    const lines = [
      'Not A Name', // pair: refused
      'web',
      'alpha',
      '', // the other server: default beta
      `127.0.0.1:${p1}`,
      `127.0.0.1:${p2}`,
      `127.0.0.1:${p3}`,
      `127.0.0.1:${p4}`,
      `127.0.0.1:${p5}`,
      'srv/www', // not absolute: refused
      '/srv/www',
      '9', // no such module: refused
      '6',
      'true',
      'true',
      '-',
      '-', // public targets
      '-', // fence
      '', // install? default yes
    ];
    const child = spawnTracked(process.execPath, [`--title=${TEST_MARKER}`, TANDEM_BIN, 'install', 'primary', '--interactive', '--root', root, '--pack', path.join(work, 'web.pack'), '--no-start'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin!.end(`${lines.join('\n')}\n`);
    const code = await exited(child);
    expect(code, stderr + stdout).toBe(0);
    expect(stderr).toMatch(/Name of the pair \[pair\]: +not valid: expected a lower-case name/);
    expect(stderr).toMatch(/Name of the other server \[beta\]: /);
    expect(stderr).toMatch(/Directories to protect \(absolute paths, comma-separated\): +not valid: srv\/www: expected an absolute path/);
    expect(stderr).toMatch(/not valid: 9: a number from 1 to 6/);
    const printed = /The answers \(save them[^\n]*\n([\s\S]*?)\nInstall with these answers\?/.exec(stderr)?.[1];
    expect(parseYaml(printed ?? '')).toMatchObject({ pair: 'web', node: 'alpha', nodes: { beta: { channel: `127.0.0.1:${p2}` } }, protect: ['/srv/www'], modules: [{ module: 'command', start: 'true', stop: 'true' }] });
    const config = parseYaml(fs.readFileSync(path.join(root, 'etc/tandem/tandem.yaml'), 'utf8'));
    expect(config).toMatchObject({ pair: 'web', node: 'alpha', role: 'active' });
    expect(fs.existsSync(path.join(work, 'web.pack'))).toBe(true);
    expect(stdout).toMatch(/Pack code \(shown once; the pack opens only with it\): {2}[0-9A-Z-]{23}/);
  }, 120_000);

  it('stops, writing nothing, when the input ends before every answer', async () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-ask-'));
    dirs.push(work);
    const root = path.join(work, 'r');
    const child = spawnTracked(process.execPath, [TANDEM_BIN, 'install', 'primary', '--interactive', '--root', root, '--no-start'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin!.end('web\nalpha\n');
    expect(await exited(child)).toBe(2);
    expect(stderr).toMatch(/TANDEM_ERR_USAGE: tandem install: the input ended before every question was answered/);
    expect(fs.existsSync(root)).toBe(false);
  }, 60_000);
});
