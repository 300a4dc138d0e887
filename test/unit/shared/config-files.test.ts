// The config checks that need the disk (shared/config/file-checks.ts), and the lexical ones of
// parseConfig: each refusal names its key. Real files in a temp folder (we run as root, so
// owners can be changed).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { initDemoPair } from '../../../console/demo/init-pair.ts';
import { checkConfigFiles, loadConfig, parseConfig, type TandemConfig } from '../../../shared/config/index.ts';
import { refusal } from '../../helpers/refusal.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const nodes = { alpha: { channel: '127.0.0.1:1', control: '127.0.0.1:2' }, beta: { channel: '127.0.0.1:3', control: '127.0.0.1:4' } };

/** A node folder as the installer lays it out: data/ protected, scripts 0755, key 0600. */
function install(): { dir: string; doc: Record<string, unknown>; config: () => TandemConfig } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-cfg-'));
  dirs.push(dir);
  fs.mkdirSync(path.join(dir, 'data'));
  fs.mkdirSync(path.join(dir, 'scripts'), { mode: 0o755 });
  for (const s of ['start', 'stop', 'check']) {
    fs.writeFileSync(path.join(dir, 'scripts', `${s}.sh`), '#!/bin/sh\nexit 0\n');
    fs.chmodSync(path.join(dir, 'scripts', `${s}.sh`), 0o755);
  }
  fs.writeFileSync(path.join(dir, 'pair.key'), `${'ab'.repeat(32)}\n`, { mode: 0o600 });
  const doc: Record<string, unknown> = { pair: 'p', node: 'alpha', nodes, protect: [{ name: 'data', path: './data' }], log: { file: './agent.log' } };
  return { dir, doc, config: () => parseConfig(doc, path.join(dir, 'tandem.yaml')) };
}

describe('config checks of Tandem\'s own files', () => {
  it('accepts the installed layout: scripts 0755 below directories only root can write, /tmp (sticky) above', () => {
    const i = install();
    expect(() => checkConfigFiles(i.config())).not.toThrow();
  });

  it('refuses a key file, a log, a state directory or a script inside a protected root, naming the key', () => {
    const i = install();
    for (const [key, over] of [
      ['keyFile', { keyFile: './data/pair.key' }],
      ['log.file', { log: { file: './data/logs/agent.log' } }],
      ['stateDir', { stateDir: './data/.tandem' }],
      ['scripts.start', { scripts: { start: './data/start.sh' } }],
      ['scripts.check', { scripts: { check: './data/check.sh' } }],
    ] as const) {
      const e = refusal(() => parseConfig({ ...i.doc, ...over }, path.join(i.dir, 'tandem.yaml')));
      expect(e.code, key).toBe('TANDEM_ERR_CONFIG_INVALID');
      expect(e.message, key).toContain(`"${key}"`);
      expect(e.details.key).toBe(key);
    }
  });

  it('refuses them through a symlink into a protected root too, once the path is resolved', () => {
    const i = install();
    fs.mkdirSync(path.join(i.dir, 'data', 'hidden'));
    fs.symlinkSync(path.join(i.dir, 'data', 'hidden'), path.join(i.dir, 'elsewhere'));
    for (const [key, over] of [
      ['keyFile', { keyFile: './elsewhere/pair.key' }],
      ['stateDir', { stateDir: './elsewhere/state' }],
      ['log.file', { log: { file: './elsewhere/agent.log' } }],
      ['scripts.stop', { scripts: { stop: './elsewhere/stop.sh' } }],
    ] as const) {
      const c = parseConfig({ ...i.doc, ...over }, path.join(i.dir, 'tandem.yaml'));
      const e = refusal(() => checkConfigFiles(c));
      expect(e.code, key).toBe('TANDEM_ERR_CONFIG_INVALID');
      expect(e.message, key).toContain(`"${key}"`);
      expect(e.message, key).toContain('once symlinks are resolved');
    }
  });

  it('refuses a script writable by its group or by others, or owned by another user', () => {
    const i = install();
    const check = path.join(i.dir, 'scripts', 'check.sh');
    fs.chmodSync(check, 0o775);
    let e = refusal(() => checkConfigFiles(i.config()));
    expect(e.message).toContain('"scripts.check"');
    expect(e.message).toContain('writable by its group');
    expect(e.message).toContain('chmod go-w');
    fs.chmodSync(check, 0o757);
    expect(refusal(() => checkConfigFiles(i.config())).message).toContain('writable by others');
    fs.chmodSync(check, 0o755);
    fs.chownSync(path.join(i.dir, 'scripts', 'start.sh'), 65534, 65534);
    e = refusal(() => checkConfigFiles(i.config()));
    expect(e.message).toContain('"scripts.start"');
    expect(e.message).toContain('belongs to uid 65534');
  });

  it('refuses a script, key, log or state directory below a directory others can write, unless it is sticky', () => {
    const i = install();
    fs.chmodSync(path.join(i.dir, 'scripts'), 0o777);
    const e = refusal(() => checkConfigFiles(i.config()));
    expect(e.message).toContain('"scripts.start"');
    expect(e.message).toContain('writable by its group (mode 777) without the sticky bit');
    fs.chmodSync(path.join(i.dir, 'scripts'), 0o1777);
    expect(() => checkConfigFiles(i.config())).not.toThrow();
    fs.chmodSync(path.join(i.dir, 'scripts'), 0o755);
    // The folder holding the key, the log and the state directory.
    fs.chmodSync(i.dir, 0o770);
    expect(refusal(() => checkConfigFiles(i.config())).message).toMatch(/"(stateDir|keyFile)".*writable by its group/);
  });

  it('does not refuse a script that does not exist yet: running it reports that', () => {
    const i = install();
    fs.rmSync(path.join(i.dir, 'scripts', 'check.sh'));
    expect(() => checkConfigFiles(i.config())).not.toThrow();
  });

  it('accepts the demo pair written under a permissive umask (002): it sets its own modes', async () => {
    const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-cfg-'));
    dirs.push(parent);
    const before = process.umask(0o002);
    let pair;
    try {
      pair = await initDemoPair(path.join(parent, 'demo'), { appPort: 0 });
    } finally {
      process.umask(before);
    }
    for (const n of pair.nodes) expect(() => checkConfigFiles(loadConfig(n.config))).not.toThrow();
  });
});
