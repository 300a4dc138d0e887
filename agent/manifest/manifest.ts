// What this node knows of its protected trees: per path, its kind, stat data and (for files)
// the xxhash64 of every block. Indexed by directory (children) so subtree operations never
// scan everything, and by inode so a rename is recognised from its new name alone.
import { parentOf } from '../../shared/protocol/index.ts';
import { compactEntry } from './entry-shape.ts';

/**
 * Who owns an entry: numeric ids as on this node's disk and, on the active, the names it knows
 * them by. Absent in manifests written before owners were replicated (and on a passive whose
 * `replication.owners` is off): such an entry's owner is simply not known.
 */
export interface EntryOwner {
  uid?: number | undefined;
  gid?: number | undefined;
  user?: string | undefined;
  group?: string | undefined;
}

/** What of an entry's metadata only its ctime betrays (an owner or an attribute changed). */
export interface EntryAttrs extends EntryOwner {
  /** xxhash64 of the replicated extended attributes (agent/tree/xattrs.ts); absent: none. */
  xattrHash?: Buffer | undefined;
  /** The ctime the owner and attributes were read at; absent: never read. */
  ctimeMs?: number | undefined;
}

export interface FileEntry extends EntryAttrs {
  kind: 'file';
  mode: number;
  size: number;
  mtimeMs: number;
  ino: number;
  /** xxhash64 of each block, 8 bytes each; ceil(size / blockSize) of them. */
  blocks: Buffer;
  /** Wall-clock ms when the content was read; an mtime this recent cannot prove the file unchanged. */
  readAt: number;
  /** Names of the inode on disk (hard links, here or anywhere else on its file system). */
  nlink?: number | undefined;
}

export interface DirEntry extends EntryAttrs {
  kind: 'dir';
  mode: number;
  ino: number;
  mtimeMs: number;
}

export interface LinkEntry extends EntryOwner {
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
  /** Inode → path(s), for every kind: a rename (of a file or a whole directory) is recognised
   * from its new name alone, and the names of one inode are its hard links. One name (nearly
   * every inode) is kept as a string; a Set only for an inode with several (memory: 100k files). */
  readonly byIno = new Map<number, string | Set<string>>();
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
  private nextSyntheticIno = -1;

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

  /** Sets `path` to (a compact copy of) `given`. When a directory is replaced by something else, its subtree goes. */
  set(root: string, path: string, given: Entry): void {
    const t = this.tree(root);
    const entry = compactEntry(given);
    const prev = t.entries.get(path);
    if (prev?.kind === 'dir' && entry.kind !== 'dir') this.removeChildren(t, root, path);
    if (prev !== undefined) unindex(t, prev.ino, path);
    // The subtree removal above has already uncounted the children; prev is still in entries.
    const replaced = t.entries.get(path);
    if (replaced !== undefined) t.count(replaced, -1);
    t.count(entry, 1);
    t.entries.set(path, entry);
    if (entry.ino !== 0) {
      const paths = t.byIno.get(entry.ino);
      if (paths === undefined || paths === path) t.byIno.set(entry.ino, path);
      else if (typeof paths === 'string') t.byIno.set(entry.ino, new Set([paths, path]));
      else {
        // Re-inserted last: pathForIno answers the most recent name, as a rename wants.
        paths.delete(path);
        paths.add(path);
      }
    }
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
    unindex(t, prev.ino, path);
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

  /** The latest path set with inode `ino`. */
  pathForIno(root: string, ino: number): string | undefined {
    const paths = this.tree(root).byIno.get(ino);
    if (paths === undefined || typeof paths === 'string') return paths;
    let last: string | undefined;
    for (const p of paths) last = p;
    return last;
  }

  /**
   * An inode number no disk uses (negative), for a file a record made into a hard link before
   * any disk said what its inode is (the synchronisation's shadow of the passive's tree).
   */
  syntheticIno(): number {
    return this.nextSyntheticIno--;
  }

  /** Every path whose entry has inode `ino` (the names of one file: its hard links). */
  pathsForIno(root: string, ino: number): string[] {
    if (ino === 0) return [];
    const paths = this.tree(root).byIno.get(ino);
    return paths === undefined ? [] : typeof paths === 'string' ? [paths] : [...paths];
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

function unindex(t: RootTree, ino: number, path: string): void {
  const paths = t.byIno.get(ino);
  if (paths === undefined) return;
  if (typeof paths === 'string') {
    if (paths === path) t.byIno.delete(ino);
    return;
  }
  paths.delete(path);
  if (paths.size === 1) t.byIno.set(ino, [...paths][0]!);
  else if (paths.size === 0) t.byIno.delete(ino);
}

/** Number of blocks of a file of `size` bytes. */
export function blockCount(size: number, blockSize: number): number {
  return Math.ceil(size / blockSize);
}
