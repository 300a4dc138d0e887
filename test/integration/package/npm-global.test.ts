// Installable as a package: `npm pack` of this checkout and `npm install -g` of the tarball give a
// working `tandem` command, with no install-script warning, whose installs name the installed
// copy in the unit they write.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify as stringifyYaml } from 'yaml';
import { AGENT_NODE_ARGS } from '../../../shared/agent-node-args.ts';
import { TANDEM_VERSION } from '../../../shared/version.ts';
import { freePorts } from '../../helpers/install.ts';
import { PROJECT } from '../../helpers/pair.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function run(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}) {
  return spawnSync(cmd, args, { encoding: 'utf8', cwd: opts.cwd ?? PROJECT, timeout: opts.timeoutMs ?? 180_000 });
}

describe('npm pack and npm install -g', () => {
  it('give a working tandem command', async () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-npm-'));
    fs.chmodSync(work, 0o755);
    dirs.push(work);
    const pack = run('npm', ['pack', '--ignore-scripts', '--pack-destination', work]);
    expect(pack.status, pack.stderr).toBe(0);
    const tarball = path.join(work, `tandem-${TANDEM_VERSION}.tgz`);
    expect(fs.existsSync(tarball)).toBe(true);
    const prefix = path.join(work, 'global');
    // --prefer-offline: the dependencies come from npm's cache when this checkout installed them.
    const inst = run('npm', ['install', '-g', '--ignore-scripts', '--prefer-offline', '--no-fund', '--no-audit', '--prefix', prefix, tarball], { cwd: work, timeoutMs: 300_000 });
    expect(inst.status, inst.stderr).toBe(0);
    expect(inst.stderr).not.toMatch(/install-scripts|allowScripts/);
    const bin = path.join(prefix, 'bin/tandem');
    const version = run(bin, ['--version'], { cwd: work });
    expect(version.status, version.stderr).toBe(0);
    expect(version.stdout).toMatch(new RegExp(`^tandem ${TANDEM_VERSION.replace(/\./g, '\\.')} \\(protocol \\d+, speaks \\d+ to \\d+; node v`));
    expect(run(bin, ['install', '--help'], { cwd: work }).stdout).toMatch(/Usage: tandem install primary/);

    // An install from the installed copy names that copy in the unit it writes.
    const root = path.join(work, 'root');
    fs.mkdirSync(path.join(root, 'srv/data'), { recursive: true });
    const [a, b, c, d] = await freePorts(4);
    fs.writeFileSync(path.join(work, 'a.yaml'), stringifyYaml({ pair: 'p', node: 'alpha', nodes: { alpha: { channel: `127.0.0.1:${a}`, control: `127.0.0.1:${b}` }, beta: { channel: `127.0.0.1:${c}`, control: `127.0.0.1:${d}` } }, protect: ['/srv/data'] }));
    const primary = run(bin, ['install', 'primary', '--root', root, '--answers', path.join(work, 'a.yaml'), '--pack', path.join(work, 'p.pack'), '--no-start'], { cwd: work });
    expect(primary.status, primary.stderr + primary.stdout).toBe(0);
    const installed = fs.realpathSync(path.join(prefix, 'lib/node_modules/tandem'));
    expect(fs.readFileSync(path.join(root, 'etc/systemd/system/tandem.service'), 'utf8')).toContain(`ExecStart=${process.execPath} ${AGENT_NODE_ARGS.join(' ')} ${installed}/bin/tandem.mjs agent -c ${root}/etc/tandem/tandem.yaml`);
    expect(run(bin, ['uninstall', '--root', root], { cwd: work }).status).toBe(0);
  }, 600_000);
});
