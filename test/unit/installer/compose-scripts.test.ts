// The composed scripts, run for real by /bin/sh: order, rollback of a failed start, stop in
// reverse, check, the scripts log, and the background processes of the web module.
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseScriptsLog } from '../../../agent/scripts/index.ts';
import { composeScripts } from '../../../installer/compose-scripts.ts';
import type { ModuleSpec } from '../../../installer/modules/index.ts';

let dir = '';
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-scripts-'));
});
afterEach(() => {
  // A web module's server may still run when a test failed half way.
  const run = path.join(dir, 'run');
  for (const f of fs.existsSync(run) ? fs.readdirSync(run) : []) {
    if (!f.endsWith('.pid')) continue;
    const pid = Number(fs.readFileSync(path.join(run, f), 'utf8').split(' ')[0]);
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

function scripts(modules: ModuleSpec[], fence?: string) {
  const s = composeScripts({ pair: 'p', node: 'alpha', peer: 'beta', modules, fence, runDir: path.join(dir, 'run'), scriptsLog: path.join(dir, 'scripts.log'), nodeBin: process.execPath, under: (p) => path.join(dir, p) });
  for (const [name, text] of Object.entries(s)) if (typeof text === 'string') fs.writeFileSync(path.join(dir, `${name}.sh`), text, { mode: 0o755 });
  return (name: string) => spawnSync(path.join(dir, `${name}.sh`), { encoding: 'utf8', env: { ...process.env, TANDEM_REASON: `test ${name}` }, timeout: 60_000 });
}

const cmd = (n: number, failStart = false): ModuleSpec => ({
  module: 'command',
  start: `echo start ${n} >> ${dir}/trace${failStart ? '; exit 3' : ''}`,
  stop: `echo stop ${n} >> ${dir}/trace`,
  check: `test -f ${dir}/healthy-${n}`,
});
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

const trace = () => fs.readFileSync(path.join(dir, 'trace'), 'utf8').trim().split('\n');

describe('composed scripts', () => {
  it('start in the order listed, stop in reverse, and log each to the scripts log', () => {
    const run = scripts([cmd(1), cmd(2), cmd(3)]);
    expect(run('start').status).toBe(0);
    expect(run('stop').status).toBe(0);
    expect(trace()).toEqual(['start 1', 'start 2', 'start 3', 'stop 3', 'stop 2', 'stop 1']);
    const log = parseScriptsLog(fs.readFileSync(path.join(dir, 'scripts.log'), 'utf8'));
    expect(log.map((e) => `${e.node} ${e.script} ${e.event} ${e.reason}`)).toEqual(['alpha start begin test start', 'alpha start ok test start', 'alpha stop begin test stop', 'alpha stop ok test stop']);
  });

  it('undo what they started when a module fails to start, so "start failed" means not serving', () => {
    const run = scripts([cmd(1), cmd(2), cmd(3, true), cmd(4)]);
    const r = run('start');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/module 3 failed/);
    expect(trace()).toEqual(['start 1', 'start 2', 'start 3', 'stop 2', 'stop 1']);
    expect(parseScriptsLog(fs.readFileSync(path.join(dir, 'scripts.log'), 'utf8')).map((e) => e.event)).toEqual(['begin', 'failed']);
  });

  it('stop every module even when one fails, and then fail', () => {
    const run = scripts([cmd(1), { module: 'command', start: 'true', stop: `echo stop 2 >> ${dir}/trace; exit 1` }, cmd(3)]);
    const r = run('stop');
    expect(r.status).toBe(1);
    expect(trace()).toEqual(['stop 3', 'stop 2', 'stop 1']);
    expect(r.stderr).toMatch(/module\(s\) 2 did not stop/);
  });

  it('check every module: healthy only when all are', () => {
    const run = scripts([cmd(1), cmd(2)]);
    fs.writeFileSync(path.join(dir, 'healthy-1'), '');
    expect(run('check').status).toBe(1);
    fs.writeFileSync(path.join(dir, 'healthy-2'), '');
    expect(run('check').status).toBe(0);
  });

  it('work with no module at all (they only log)', () => {
    const run = scripts([]);
    for (const n of ['start', 'stop', 'check']) expect(run(n).status, n).toBe(0);
    expect(parseScriptsLog(fs.readFileSync(path.join(dir, 'scripts.log'), 'utf8')).map((e) => `${e.script} ${e.event}`)).toEqual(['start begin', 'start ok', 'stop begin', 'stop ok']);
  });

  it('quote every value: a command with quotes and $ reaches sh as written', () => {
    const run = scripts([{ module: 'command', start: `printf '%s\\n' "it's \\$HOME" > ${dir}/quoted`, stop: 'true' }]);
    expect(run('start').status).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'quoted'), 'utf8')).toBe("it's $HOME\n");
  });

  it('run the fence command with the peer named, and log it', () => {
    const run = scripts([], `echo "fencing $TANDEM_FENCE_PEER" > ${dir}/fenced; test -f ${dir}/power-off-ok`);
    expect(run('fence').status).toBe(1);
    fs.writeFileSync(path.join(dir, 'power-off-ok'), '');
    expect(run('fence').status).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'fenced'), 'utf8')).toBe('fencing beta\n');
    expect(parseScriptsLog(fs.readFileSync(path.join(dir, 'scripts.log'), 'utf8')).map((e) => `${e.script} ${e.event}`)).toEqual(['fence begin', 'fence failed', 'fence begin', 'fence ok']);
  });

  it('run a web server command in the background: started once, healthy over HTTP, stopped with its children', async () => {
    const server = path.join(dir, 'server.mjs');
    const port = await freePort();
    fs.writeFileSync(server, `import http from 'node:http'; http.createServer((q, r) => r.end('ok')).listen(${port}, '127.0.0.1');`);
    const run = scripts([{ module: 'web', command: `${process.execPath} ${server}`, url: `http://127.0.0.1:${port}/`, startTimeout: 30 }]);
    expect(run('start').status).toBe(0);
    const pid = Number(fs.readFileSync(path.join(dir, 'run', 'web-1.pid'), 'utf8').split(' ')[0]);
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(200);
    expect(run('start').status).toBe(0); // idempotent: the same server
    expect(Number(fs.readFileSync(path.join(dir, 'run', 'web-1.pid'), 'utf8').split(' ')[0])).toBe(pid);
    expect(run('check').status).toBe(0);
    expect(run('stop').status).toBe(0);
    expect(fs.existsSync(path.join(dir, 'run', 'web-1.pid'))).toBe(false);
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
    const check = run('check');
    expect(check.status).toBe(1);
    expect(check.stderr).toMatch(/does not answer/);
  });
});
