// ParentDirs: lstat of many paths below a root with each parent opened once, never through a
// link, and every descriptor closed at the end.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ParentDirs } from '../../../agent/tree/index.ts';

let base: string;
let root: string;

beforeEach(() => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-parent-dirs-'));
  root = path.join(base, 'root');
  fs.mkdirSync(path.join(root, 'a', 'b'), { recursive: true });
  fs.writeFileSync(path.join(root, 'top'), 'x');
  fs.writeFileSync(path.join(root, 'a', 'b', 'deep'), 'xyz');
  fs.mkdirSync(path.join(base, 'outside'));
  fs.writeFileSync(path.join(base, 'outside', 'secret'), 'outside the root');
  fs.symlinkSync(path.join(base, 'outside'), path.join(root, 'link'));
});

afterEach(() => {
  fs.rmSync(base, { recursive: true, force: true });
});

const openFds = () => fs.readdirSync('/proc/self/fd').length;

describe('ParentDirs', () => {
  it('stats what lstat does, never below a link or a missing parent, and closes every descriptor', () => {
    const before = openFds();
    const dirs = new ParentDirs();
    for (const rel of ['top', 'a', 'a/b', 'a/b/deep', 'link']) {
      const got = dirs.lstat(root, rel);
      const want = fs.lstatSync(path.join(root, rel));
      expect([got?.ino, got?.size, got?.isSymbolicLink()], rel).toEqual([want.ino, want.size, want.isSymbolicLink()]);
    }
    // The link's target holds `secret`: below a link nothing is stat'ed.
    expect(dirs.lstat(root, 'link/secret')).toBeUndefined();
    expect(dirs.lstat(root, 'none/file')).toBeUndefined();
    expect(dirs.lstat(root, 'a/b/none')).toBeUndefined();
    // A file where a parent should be.
    expect(dirs.lstat(root, 'top/file')).toBeUndefined();
    expect(openFds()).toBeGreaterThan(before);
    dirs.close();
    expect(openFds()).toBe(before);
  });

  it('keeps at most 64 directories open however many it meets, and still answers for each', () => {
    for (let i = 0; i < 150; i++) {
      fs.mkdirSync(path.join(root, `d${i}`));
      fs.writeFileSync(path.join(root, `d${i}`, 'f'), 'y'.repeat(i));
    }
    const before = openFds();
    const dirs = new ParentDirs();
    let most = 0;
    for (let i = 0; i < 150; i++) {
      expect(dirs.lstat(root, `d${i}/f`)?.size).toBe(i);
      most = Math.max(most, openFds() - before);
    }
    expect(most).toBeLessThanOrEqual(64);
    dirs.close();
    expect(openFds()).toBe(before);
  });
});
