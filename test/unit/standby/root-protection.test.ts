// RootProtection's own rules, with real mounts where it matters (the tests run as root): a
// failed set-up leaves nothing mounted and says why; leftovers are lifted only where the record
// and the mount both say they are Tandem's.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RootProtection, standbyDir } from '../../../agent/standby/root-protection.ts';
import { mountsAt, parseMountInfo } from '../../../agent/standby/mount-info.ts';
import { systemClock } from '../../../shared/clock.ts';
import { silentLogger } from '../../../shared/log.ts';
import { tmpDir } from '../apply/helpers.ts';

let base: string;
beforeEach(() => {
  base = tmpDir('tandem-protect-');
});
afterEach(() => {
  for (let i = 0; i < 8; i++) {
    const left = parseMountInfo(fs.readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) => m.mountPoint.startsWith(`${base}/`));
    if (left.length === 0) break;
    for (const m of left.reverse()) spawnSync('umount', ['-l', m.mountPoint]);
  }
  fs.rmSync(base, { recursive: true, force: true });
});

function mounts(at: string) {
  return mountsAt(parseMountInfo(fs.readFileSync('/proc/self/mountinfo', 'utf8')), at);
}

describe('RootProtection', () => {
  it('undoes a partial set-up and reports TANDEM_ERR_PROTECT_FAILED, leaving the roots as they were', async () => {
    const root = path.join(base, 'data');
    const stateDir = path.join(base, 'state');
    let calls = 0;
    const p = new RootProtection({
      stateDir,
      roots: [{ name: 'data', path: root, exclude: [] }],
      log: silentLogger(),
      clock: systemClock,
      // The read-write bind works, the read-only one fails (as in a container without the right).
      run: async (command, args) => {
        calls++;
        if (command === 'mount' && args.includes('ro')) throw new Error('mount: permission denied');
        const r = spawnSync(command, args);
        if (r.status !== 0) throw new Error(String(r.stderr));
      },
    });
    const roots = await p.protect();
    expect(roots).toEqual([{ name: 'data', path: root, exclude: [] }]);
    expect(p.alarm()?.code).toBe('TANDEM_ERR_PROTECT_FAILED');
    expect(p.alarm()?.message).toMatch(/permission denied/);
    expect(calls).toBeGreaterThanOrEqual(3); // two mounts, then the undo
    expect(mounts(root)).toEqual([]);
    expect(mounts(path.join(standbyDir(stateDir), 'rw/data'))).toEqual([]);
    expect(fs.existsSync(path.join(standbyDir(stateDir), 'protected.json'))).toBe(false);
    expect(fs.statSync(standbyDir(stateDir)).mode & 0o777).toBe(0o700);
  });

  it('lifts only what its record names and has the shape it makes: never a mount elsewhere, nor an operator\'s own mount on a root', async () => {
    const stateDir = path.join(base, 'state');
    const root = path.join(base, 'data');
    const elsewhere = path.join(base, 'elsewhere');
    for (const d of [root, elsewhere, path.join(standbyDir(stateDir), 'rw')]) fs.mkdirSync(d, { recursive: true });
    // The operator's own read-only tmpfs on the root, and a tmpfs somewhere else.
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', root]).status).toBe(0);
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', elsewhere]).status).toBe(0);
    // A record that names them (written by hand, or damaged): the rw side outside Tandem's folder.
    fs.writeFileSync(path.join(standbyDir(stateDir), 'protected.json'), JSON.stringify({ format: 1, roots: [{ name: 'data', path: root, rw: path.join(standbyDir(stateDir), 'rw/data') }, { name: 'x', path: root, rw: elsewhere }] }));
    expect(await RootProtection.releaseLeftovers(stateDir, silentLogger())).toBe(0);
    expect(mounts(root)).toHaveLength(1);
    expect(mounts(elsewhere)).toHaveLength(1);
    expect(fs.existsSync(path.join(standbyDir(stateDir), 'protected.json'))).toBe(false);
  });
});
