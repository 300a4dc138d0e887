// Tightening the state directory stops at mount points: standby protection writes through a bind
// mount of each protected root inside the state directory, and a restart after a SIGKILL finds it
// still there. The protected data's modes are the application's: tightening them would change
// the data (and make the standby watch report every path as changed by hand).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tightenPrivateState } from '../../../agent/state/index.ts';

const isRoot = process.getuid?.() === 0;
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

describe.skipIf(!isRoot)('tightenPrivateState and mounts (needs root)', () => {
  it('tightens the state but never enters a bind mount below it, so the protected data keeps its modes', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-tighten-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const data = path.join(dir, 'data');
    fs.mkdirSync(path.join(data, 'shared'), { recursive: true, mode: 0o755 });
    fs.chmodSync(path.join(data, 'shared'), 0o755);
    fs.writeFileSync(path.join(data, 'shared/a.txt'), 'x');
    fs.chmodSync(path.join(data, 'shared/a.txt'), 0o644);
    const state = path.join(dir, 'state');
    const rw = path.join(state, 'standby/rw/data');
    fs.mkdirSync(rw, { recursive: true });
    fs.writeFileSync(path.join(state, 'journal.seg'), 'j');
    fs.chmodSync(path.join(state, 'journal.seg'), 0o644);
    execFileSync('mount', ['--bind', data, rw]);
    cleanups.push(() => execFileSync('umount', ['-l', rw]));

    const r = tightenPrivateState(state);

    expect(fs.statSync(path.join(state, 'journal.seg')).mode & 0o7777).toBe(0o600);
    expect(fs.statSync(path.join(data, 'shared')).mode & 0o7777).toBe(0o755);
    expect(fs.statSync(path.join(data, 'shared/a.txt')).mode & 0o7777).toBe(0o644);
    expect(fs.statSync(data).mode & 0o777).not.toBe(0o700);
    expect(r.skipped).toContain('standby/rw/data');
    expect(r.fixed.map((f) => f.path)).not.toContain('standby/rw/data/shared/a.txt');
  });
});
