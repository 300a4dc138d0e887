// The console's counts of a protected root come from counters the manifest keeps as entries
// come and go; they must always equal what a full walk of the manifest would count.
import { describe, expect, it } from 'vitest';
import { Manifest, type Entry } from '../../../agent/manifest/manifest.ts';

const file = (size: number, ino: number): Entry => ({ kind: 'file', mode: 0o644, size, mtimeMs: 0, ino, blocks: Buffer.alloc(0), readAt: 0 });
const dir = (ino: number): Entry => ({ kind: 'dir', mode: 0o755, ino, mtimeMs: 0 });
const link = (ino: number): Entry => ({ kind: 'symlink', target: 'x', ino, mtimeMs: 0 });

function walked(m: Manifest, root: string) {
  const s = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
  for (const [, e] of m.entries(root)) {
    if (e.kind === 'file') {
      s.files++;
      s.bytes += e.size;
    } else if (e.kind === 'dir') s.dirs++;
    else s.symlinks++;
  }
  return s;
}

describe('manifest root stats', () => {
  it('counts files, directories, symlinks and file bytes per root through sets, overwrites, moves and subtree removals', () => {
    const m = new Manifest(['data', 'logs']);
    m.set('data', 'a', dir(1));
    m.set('data', 'a/x', file(100, 2));
    m.set('data', 'a/y', file(50, 3));
    m.set('data', 'a/b', dir(4));
    m.set('data', 'a/b/z', file(7, 5));
    m.set('data', 'l', link(6));
    m.set('logs', 'one', file(1000, 7));
    expect(m.rootStats('data')).toEqual({ files: 3, dirs: 2, symlinks: 1, bytes: 157 });
    expect(m.rootStats('logs')).toEqual({ files: 1, dirs: 0, symlinks: 0, bytes: 1000 });
    // A file grows: its old size is not counted twice.
    m.set('data', 'a/x', file(300, 2));
    expect(m.rootStats('data').bytes).toBe(357);
    // A directory replaced by a file takes its subtree with it.
    m.set('data', 'a/b', file(1, 4));
    expect(m.rootStats('data')).toEqual({ files: 3, dirs: 1, symlinks: 1, bytes: 351 });
    m.move('data', 'a', 'c');
    expect(m.rootStats('data')).toEqual(walked(m, 'data'));
    expect(m.delete('data', 'c')).toBe(4);
    expect(m.rootStats('data')).toEqual({ files: 0, dirs: 0, symlinks: 1, bytes: 0 });
    expect(m.rootStats('data')).toEqual(walked(m, 'data'));
    m.clear();
    expect(m.rootStats('logs')).toEqual({ files: 0, dirs: 0, symlinks: 0, bytes: 0 });
  });
});
