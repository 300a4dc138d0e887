import { describe, expect, it } from 'vitest';
import { ChangeList, type PathChange, type SendCommand } from '../../../agent/points/index.ts';

const BS = 4096;

function changes(cmds: SendCommand[], opts: { maxPaths?: number; maxBlocks?: number } = {}) {
  const l = new ChangeList({ blockSize: BS, ...opts });
  for (const c of cmds) l.add(c);
  return l.result();
}

function view(paths: Map<string, PathChange>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [p, c] of paths) out[p] = c.content === 'blocks' ? `blocks ${[...c.blocks].sort((a, b) => a - b).join(',')}${c.resized ? ' resized' : ''}` : c.content;
  return out;
}

describe('change list from a send stream', () => {
  it('resolves temporary names through their renames and reports only final names', () => {
    const r = changes([
      { op: 'snapshot', path: '2' },
      { op: 'mkdir', path: 'o263-8-0' },
      { op: 'rename', path: 'o263-8-0', to: 'new' },
      { op: 'mkfile', path: 'o264-8-0' },
      { op: 'rename', path: 'o264-8-0', to: 'new/nf' },
      { op: 'update_extent', path: 'new/nf', offset: 0, length: 2 },
      { op: 'utimes', path: '' },
      { op: 'end' },
    ]);
    expect(view(r.paths)).toEqual({ new: 'all', 'new/nf': 'all' });
    expect([...r.gone]).toEqual([]);
    expect(r.incomplete).toBeUndefined();
  });

  it('keeps the changed blocks of a file whose inode stayed, and marks a size change', () => {
    const r = changes([
      { op: 'update_extent', path: 'db', offset: 409600, length: 8192 },
      { op: 'update_extent', path: 'db', offset: 4095, length: 2 },
      { op: 'truncate', path: 'log', size: 100 },
      { op: 'chmod', path: 'conf' },
      { op: 'utimes', path: 'conf' },
    ]);
    expect(view(r.paths)).toEqual({ db: 'blocks 0,1,100,101', log: 'blocks  resized', conf: 'none' });
  });

  it('reports a renamed name as possibly gone and moves what was noted below a renamed directory', () => {
    const r = changes([
      { op: 'update_extent', path: 'a/b/f', offset: 0, length: 10 },
      { op: 'unlink', path: 'a/b/old' },
      { op: 'rename', path: 'a/b', to: 'a/c' },
      { op: 'unlink', path: 'a/c/x' },
    ]);
    expect(view(r.paths)).toEqual({ 'a/c/f': 'blocks 0', 'a/c': 'none' });
    // a/b is gone under that name; a/b/old and a/c/x were removed (a/c/old: where capture finds a/b/old once it moved a/b).
    expect([...r.gone].sort()).toEqual(['a/b', 'a/b/old', 'a/c/old', 'a/c/x']);
  });

  it('forgets what it noted of a removed directory, and names made and removed in the same stream', () => {
    const r = changes([
      { op: 'mkfile', path: 'o300-9-0' },
      { op: 'unlink', path: 'o300-9-0' },
      { op: 'update_extent', path: 'd/e/f', offset: 0, length: 1 },
      { op: 'unlink', path: 'd/e/f' },
      { op: 'rmdir', path: 'd/e' },
      { op: 'rename', path: 'd', to: 'o301-9-0' },
      { op: 'rmdir', path: 'o301-9-0' },
    ]);
    expect(view(r.paths)).toEqual({});
    // Looking at a name that is neither in the snapshot nor known to capture costs one lstat.
    expect([...r.gone].sort()).toEqual(['d', 'd/e', 'd/e/f', 'o301-9-0', 'o301-9-0/e', 'o301-9-0/e/f']);
  });

  it('looks at a new hard link and at a swap of two names made through a temporary name', () => {
    const r = changes([
      { op: 'link', path: 'hard', link: 'a/f1' },
      { op: 'rename', path: 'x', to: 'o260-7-0' },
      { op: 'rename', path: 'y', to: 'x' },
      { op: 'rename', path: 'o260-7-0', to: 'y' },
    ]);
    expect(view(r.paths)).toEqual({ hard: 'none', x: 'none', y: 'none' });
    // The temporary name held an inode of the older snapshot: it is looked at too (it is in neither).
    expect([...r.gone].sort()).toEqual(['o260-7-0', 'x', 'y']);
  });

  it('gives up (the caller compares the whole snapshot) on a malformed name or too many changes', () => {
    expect(changes([{ op: 'utimes', path: '../etc/passwd' }]).incomplete).toMatch(/well-formed/);
    expect(changes([{ op: 'rename', path: 'a' }]).incomplete).toMatch(/rename/);
    expect(changes([{ op: 'mysterious', path: 'a' }]).incomplete).toMatch(/unknown command/);
    const many = Array.from({ length: 11 }, (_, i) => ({ op: 'mkfile', path: `f${i}` }));
    const r = changes(many, { maxPaths: 10 });
    expect(r.incomplete).toMatch(/more than 10/);
    expect(r.paths.size).toBe(0);
  });

  it('lists names the protocol refuses (a backslash, too long) like any other (capture reports them), but gives up on a rename out of one', () => {
    const long = `d/${'x'.repeat(5000)}`;
    const r = changes([
      { op: 'mkfile', path: 'o270-9-0' },
      { op: 'update_extent', path: 'o270-9-0', offset: 0, length: 10 },
      { op: 'rename', path: 'o270-9-0', to: 'log\\2026.txt' },
      { op: 'update_extent', path: 'odd\\name', offset: 0, length: 10 },
      { op: 'mkfile', path: long },
      { op: 'rename', path: 'keep/old', to: 'keep/new\\name' },
      { op: 'update_extent', path: 'fine', offset: 0, length: 10 },
    ]);
    expect(r.incomplete).toBeUndefined();
    expect(view(r.paths)).toEqual({ 'log\\2026.txt': 'all', 'odd\\name': 'blocks 0', [long]: 'all', 'keep/new\\name': 'none', fine: 'blocks 0' });
    expect([...r.gone]).toEqual(['keep/old']);
    // A refused name renamed to one the protocol takes brings a subtree no record described.
    expect(changes([{ op: 'rename', path: 'odd\\dir', to: 'plain' }]).incomplete).toMatch(/refuses/);
    // Other malformed names still give up: btrfs does not make them.
    expect(changes([{ op: 'rename', path: 'a', to: '/etc/x' }]).incomplete).toMatch(/well-formed/);
  });

  it('reads a file whole rather than keep more changed blocks than its bound', () => {
    const r = changes([{ op: 'update_extent', path: 'big', offset: 0, length: 100 * BS }], { maxBlocks: 50 });
    expect(view(r.paths)).toEqual({ big: 'all' });
  });
});
