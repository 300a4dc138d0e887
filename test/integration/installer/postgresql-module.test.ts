// The PostgreSQL module's scripts against a real PostgreSQL (Debian's, installed by .ci/run): start
// as the postgres user, healthy while it accepts connections, stopped, and started again over
// the postmaster.pid a dead server elsewhere left behind (what a failover finds on the copy).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { composeScripts } from '../../../installer/compose-scripts.ts';
import { freePorts } from '../../helpers/install.ts';

const pgCtl = spawnSync('sh', ['-c', 'readlink -f "$(command -v pg_ctl || ls -d /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -n 1)"'], { encoding: 'utf8' }).stdout.trim();
const hasPostgres = pgCtl !== '' && fs.existsSync(pgCtl) && spawnSync('id', ['postgres']).status === 0 && process.getuid?.() === 0;

let dir = '';
afterEach(() => {
  if (dir === '') return;
  spawnSync('runuser', ['-u', 'postgres', '--', pgCtl, '-D', path.join(dir, 'srv/pg'), '-m', 'immediate', 'stop'], { stdio: 'ignore' });
  fs.rmSync(dir, { recursive: true, force: true });
  dir = '';
});

describe.skipIf(!hasPostgres)('the postgresql module', () => {
  it('starts, checks and stops a real server, and starts over a stale postmaster.pid', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-pg-'));
    fs.chmodSync(dir, 0o755);
    const data = path.join(dir, 'srv/pg');
    const sock = path.join(dir, 'sock');
    fs.mkdirSync(data, { recursive: true });
    fs.mkdirSync(sock);
    spawnSync('chown', ['postgres:postgres', data, sock]);
    const init = spawnSync('runuser', ['-u', 'postgres', '--', path.join(path.dirname(pgCtl), 'initdb'), '-D', data, '-A', 'trust', '--no-sync'], { encoding: 'utf8' });
    expect(init.status, init.stderr).toBe(0);
    const [port] = await freePorts(1);
    const scripts = composeScripts({
      pair: 'p',
      node: 'alpha',
      peer: 'beta',
      modules: [{ module: 'postgresql', dataDir: '/srv/pg', user: 'postgres', options: `-c port=${port} -c listen_addresses='' -c unix_socket_directories=${sock}`, startTimeout: 60 }],
      fence: undefined,
      runDir: path.join(dir, 'run'),
      scriptsLog: path.join(dir, 'scripts.log'),
      nodeBin: process.execPath,
      under: (p) => path.join(dir, p),
    });
    for (const n of ['start', 'stop', 'check'] as const) fs.writeFileSync(path.join(dir, `${n}.sh`), scripts[n], { mode: 0o755 });
    const run = (n: string) => spawnSync(path.join(dir, `${n}.sh`), { encoding: 'utf8', timeout: 120_000 });
    const query = () => spawnSync('runuser', ['-u', 'postgres', '--', 'psql', '-h', sock, '-p', String(port), '-Atc', 'select 41 + 1'], { encoding: 'utf8' });

    const started = run('start');
    expect(started.status, started.stderr).toBe(0);
    expect(query().stdout.trim()).toBe('42');
    expect(run('check').status).toBe(0);
    expect(run('start').status).toBe(0); // already running: nothing to do
    const stopped = run('stop');
    expect(stopped.status, stopped.stderr).toBe(0);
    const check = run('check');
    expect(check.status).toBe(1);
    expect(check.stderr).toMatch(/postgresql: not running/);
    expect(run('stop').status).toBe(0); // nothing runs: still fine

    // A copy taken over from a server that died elsewhere: its pid file names a process here
    // that is no PostgreSQL (this test's own Node.js process).
    fs.writeFileSync(path.join(data, 'postmaster.pid'), `${process.pid}\n${data}\n1700000000\n${port}\n${sock}\n\n  5432001         0\nready   \n`);
    spawnSync('chown', ['postgres:postgres', path.join(data, 'postmaster.pid')]);
    const again = run('start');
    expect(again.status, again.stderr).toBe(0);
    expect(query().stdout.trim()).toBe('42');
    expect(run('stop').status).toBe(0);
  }, 180_000);
});
