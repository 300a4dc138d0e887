// What this node knows of its protected trees: per path, its kind, stat data and (for files)
// the xxhash64 of every block. Indexed by directory (children) so subtree operations never
// scan everything, and by inode so a rename is recognised from its new name alone.
import { parentOf } from '../../shared/protocol/index.ts';

export interface FileEntry {
  kind: 'file';
  mode: number;
  size: number;
  mtimeMs: number;
  ino: number;
  /** xxhash64 of each block, 8 bytes each; ceil(size / blockSize) of them. */
  blocks: Buffer;
  /** Wall-clock ms when the content was read; an mtime this recent cannot prove the file unchanged. */
  readAt: number;
}

export interface DirEntry {
  kind: 'dir';
  mode: number;
  ino: number;
  mtimeMs: number;
}

export interface LinkEntry {
  kind: 'symlink';
  target: string;
  ino: number;
  mtimeMs: number;
}

export type Entry = FileEntry | DirEntry | LinkEntry;

class RootTree {
  readonly entries = new Map<string, Entry>();
  /** Directory path ("" for the root itself) → full paths of its known children. */
  readonly children = new Map<string, Set<string>>();
  /** Inode → path, for every kind: a rename (of a file or a whole directory) is recognised
   * from its new name alone. Hard links share an inode: the index keeps the latest path. */
  readonly byIno = new Map<number, string>();
  /** Kept as entries come and go, so the console's counts cost nothing to read. */
  readonly stats: RootStats = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };

  count(e: Entry, sign: 1 | -1): void {
    if (e.kind === 'file') {
      this.stats.files += sign;
      this.stats.bytes += sign * e.size;
    } else if (e.kind === 'dir') this.stats.dirs += sign;
    else this.stats.symlinks += sign;
  }
}

/** What a protected root holds, as this node's manifest knows it: counts and bytes of regular files. */
export interface RootStats {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
}

export type ChangeListener = (root: string, path: string) => void;

export class Manifest {
  private readonly trees = new Map<string, RootTree>();
  private listener: ChangeListener | undefined;

  constructor(rootNames: Iterable<string>) {
    for (const r of rootNames) this.trees.set(r, new RootTree());
  }

  /** Called for every path whose entry was set or removed (the store persists them). */
  onChange(listener: ChangeListener | undefined): void {
    this.listener = listener;
  }

  rootNames(): string[] {
    return [...this.trees.keys()];
  }

  hasRoot(root: string): boolean {
    return this.trees.has(root);
  }

  private tree(root: string): RootTree {
    const t = this.trees.get(root);
    if (t === undefined) throw new Error(`manifest: unknown root ${root}`);
    return t;
  }

  get(root: string, path: string): Entry | undefined {
    return this.tree(root).entries.get(path);
  }

  /** Sets `path` to `entry`. When a directory is replaced by something else, its subtree goes. */
  set(root: string, path: string, entry: Entry): void {
    const t = this.tree(root);
    const prev = t.entries.get(path);
    if (prev?.kind === 'dir' && entry.kind !== 'dir') this.removeChildren(t, root, path);
    if (prev !== undefined && t.byIno.get(prev.ino) === path) t.byIno.delete(prev.ino);
    // The subtree removal above has already uncounted the children; prev is still in entries.
    const replaced = t.entries.get(path);
    if (replaced !== undefined) t.count(replaced, -1);
    t.count(entry, 1);
    t.entries.set(path, entry);
    if (entry.ino !== 0) t.byIno.set(entry.ino, path);
    let kids = t.children.get(parentOf(path));
    if (kids === undefined) t.children.set(parentOf(path), (kids = new Set()));
    kids.add(path);
    this.listener?.(root, path);
  }

  /** Removes `path` and everything below it. Returns how many entries went. */
  delete(root: string, path: string): number {
    const t = this.tree(root);
    const prev = t.entries.get(path);
    if (prev === undefined) return 0;
    let n = prev.kind === 'dir' ? this.removeChildren(t, root, path) : 0;
    this.removeOne(t, root, path, prev);
    return n + 1;
  }

  private removeOne(t: RootTree, root: string, path: string, prev: Entry): void {
    t.entries.delete(path);
    t.count(prev, -1);
    if (t.byIno.get(prev.ino) === path) t.byIno.delete(prev.ino);
    const parent = parentOf(path);
    const kids = t.children.get(parent);
    kids?.delete(path);
    if (kids?.size === 0) t.children.delete(parent);
    this.listener?.(root, path);
  }

  private removeChildren(t: RootTree, root: string, dir: string): number {
    const kids = t.children.get(dir);
    if (kids === undefined) return 0;
    let n = 0;
    for (const child of [...kids]) {
      const e = t.entries.get(child);
      if (e === undefined) continue;
      if (e.kind === 'dir') n += this.removeChildren(t, root, child);
      this.removeOne(t, root, child, e);
      n++;
    }
    t.children.delete(dir);
    return n;
  }

  /** Moves `from` (and its subtree) to `to`, replacing whatever `to` was. */
  move(root: string, from: string, to: string): void {
    const t = this.tree(root);
    const e = t.entries.get(from);
    if (e === undefined || from === to) return;
    const moved: [string, Entry][] = [];
    const collect = (p: string, rel: string) => {
      const kids = t.children.get(p);
      if (kids === undefined) return;
      for (const c of kids) {
        const ce = t.entries.get(c);
        if (ce === undefined) continue;
        const crel = `${rel}${c.slice(p.length)}`;
        moved.push([crel, ce]);
        if (ce.kind === 'dir') collect(c, crel);
      }
    };
    if (e.kind === 'dir') collect(from, '');
    this.delete(root, to);
    this.delete(root, from);
    this.set(root, to, e);
    for (const [rel, ce] of moved) this.set(root, `${to}${rel}`, ce);
  }

  /** Full paths of the known children of directory `dir` ("" is the root). */
  childrenOf(root: string, dir: string): string[] {
    const kids = this.tree(root).children.get(dir);
    return kids === undefined ? [] : [...kids];
  }

  pathForIno(root: string, ino: number): string | undefined {
    return this.tree(root).byIno.get(ino);
  }

  *entries(root: string): IterableIterator<[string, Entry]> {
    yield* this.tree(root).entries.entries();
  }

  count(root?: string): number {
    if (root !== undefined) return this.tree(root).entries.size;
    let n = 0;
    for (const t of this.trees.values()) n += t.entries.size;
    return n;
  }

  /** Files, directories, symlinks and file bytes of one root (kept up to date, no walk). */
  rootStats(root: string): RootStats {
    return { ...this.tree(root).stats };
  }

  /** Total bytes of the regular files known. */
  totalFileBytes(): number {
    let n = 0;
    for (const t of this.trees.values()) for (const e of t.entries.values()) if (e.kind === 'file') n += e.size;
    return n;
  }

  clear(): void {
    for (const [root, t] of this.trees) {
      for (const p of t.entries.keys()) this.listener?.(root, p);
      this.trees.set(root, new RootTree());
    }
  }
}

/** Number of blocks of a file of `size` bytes. */
export function blockCount(size: number, blockSize: number): number {
  return Math.ceil(size / blockSize);
}
