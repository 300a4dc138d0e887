import { describe, expect, it } from 'vitest';
import { UNKNOWN_BLOCK, type Entry } from '../../../agent/manifest/index.ts';
import { blocksMatch, statDrift, type DriftStat } from '../../../agent/standby/stat-drift.ts';

function st(kind: 'file' | 'dir' | 'symlink' | 'fifo', f: Partial<Omit<DriftStat, 'isFile' | 'isDirectory' | 'isSymbolicLink'>> = {}): DriftStat {
  return {
    ino: 10,
    size: 100,
    mtimeMs: 1000.5,
    mode: (kind === 'dir' ? 0o040000 : 0o100000) | 0o644,
    uid: 0,
    gid: 0,
    ...f,
    isFile: () => kind === 'file',
    isDirectory: () => kind === 'dir',
    isSymbolicLink: () => kind === 'symlink',
  };
}

const file: Entry = { kind: 'file', mode: 0o644, size: 100, mtimeMs: 1000.5, ino: 10, blocks: Buffer.alloc(8), readAt: 0 };
const dir: Entry = { kind: 'dir', mode: 0o755, ino: 10, mtimeMs: 0 };
const link: Entry = { kind: 'symlink', target: 'x', ino: 10, mtimeMs: 0 };

describe('statDrift', () => {
  it('finds nothing when the path is as the applier left it, or absent on both sides', () => {
    expect(statDrift(file, st('file'))).toBeUndefined();
    expect(statDrift(dir, st('dir', { mode: 0o040755, mtimeMs: 5 }))).toBeUndefined();
    expect(statDrift(link, st('symlink', { mtimeMs: 77 }))).toBeUndefined();
    expect(statDrift(undefined, undefined)).toBeUndefined();
    // A FIFO is never replicated: where nothing is expected it is no change.
    expect(statDrift(undefined, st('fifo'))).toBeUndefined();
  });

  it('names what changed: created, removed, kind, replaced, size, mtime, mode', () => {
    expect(statDrift(undefined, st('file'))).toBe('created');
    expect(statDrift(file, undefined)).toBe('removed');
    expect(statDrift(file, st('fifo'))).toBe('removed');
    expect(statDrift(file, st('dir'))).toBe('kind');
    expect(statDrift(file, st('file', { ino: 11 }))).toBe('replaced');
    expect(statDrift(file, st('file', { size: 101 }))).toBe('size');
    expect(statDrift(file, st('file', { mtimeMs: 1000.6 }))).toBe('mtime');
    expect(statDrift(file, st('file', { mode: 0o100600 }))).toBe('mode');
    expect(statDrift(dir, st('dir', { mode: 0o040700 }))).toBe('mode');
    expect(statDrift(link, st('symlink', { ino: 12 }))).toBe('replaced');
  });

  it('compares owners once entries carry them, and an inode only once it is known', () => {
    const owned = { ...file, uid: 26, gid: 26 } as Entry;
    expect(statDrift(owned, st('file', { uid: 26, gid: 26 }))).toBeUndefined();
    expect(statDrift(owned, st('file', { uid: 0, gid: 26 }))).toBe('owner');
    expect(statDrift(owned, st('file', { uid: 26, gid: 0 }))).toBe('owner');
    expect(statDrift({ ...file, ino: 0 }, st('file', { ino: 99 }))).toBeUndefined();
  });
});

describe('blocksMatch', () => {
  const a = Buffer.from('0102030405060708' + '1112131415161718', 'hex');
  it('matches equal hashes and takes an unknown block for either', () => {
    expect(blocksMatch(a, Buffer.from(a))).toBe(true);
    const withUnknown = Buffer.concat([a.subarray(0, 8), UNKNOWN_BLOCK]);
    expect(blocksMatch(withUnknown, Buffer.concat([a.subarray(0, 8), Buffer.alloc(8, 3)]))).toBe(true);
  });
  it('refuses a different block or a different count', () => {
    const b = Buffer.from(a);
    b[9] = 0;
    expect(blocksMatch(a, b)).toBe(false);
    expect(blocksMatch(a, a.subarray(0, 8))).toBe(false);
    // An unknown block on disk proves nothing: only the manifest's side may be unknown.
    expect(blocksMatch(a, Buffer.concat([a.subarray(0, 8), UNKNOWN_BLOCK]))).toBe(false);
  });
});
