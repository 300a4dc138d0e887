// What changed between two snapshots, from the commands of a `btrfs send --no-data -p` stream:
// the names of the newer snapshot to look at (with the blocks whose extents changed, when that
// is all that changed), and the names of the older one that may be gone. Pure.
//
// The stream is a recipe that turns the older snapshot into the newer one step by step, so a
// name it uses is a name *at that step*: new inodes are made under temporary names
// (`o<ino>-<gen>-<n>`) and renamed into place, and a directory renamed moves every name below
// it. A name noted early is therefore carried through every later rename, and only the final
// names are reported. A name that existed before (not made by the stream) and is renamed away
// or removed is reported as possibly gone: capture looks at it after the others, so that a
// rename is journaled as a rename (capture pairs names by inode) before anything is removed.
import { relPathProblem } from '../../shared/protocol/index.ts';
import type { SendCommand } from './send-stream.ts';

export type PathChange =
  /** New or replaced: read it whole. */
  | { content: 'all' }
  /** The same inode: these blocks' extents changed, and the size may have (read the tail too). */
  | { content: 'blocks'; blocks: Set<number>; resized: boolean }
  /** Only its metadata, its name or its links changed: its bytes are the older snapshot's. */
  | { content: 'none' };

export interface ChangeSet {
  /** Names in the newer snapshot to look at. */
  paths: Map<string, PathChange>;
  /** Names of the older snapshot that were removed or renamed away (they may exist again). */
  gone: Set<string>;
  /**
   * The list could not be made exact (a malformed name, more changes than it keeps): the caller
   * must compare the whole newer snapshot with what it holds instead.
   */
  incomplete: string | undefined;
}

export interface ChangeListOptions {
  /** Block size of the manifest: changed byte ranges are kept as block numbers. */
  blockSize: number;
  /** Names kept at most (paths + gone); beyond, the list is incomplete. */
  maxPaths?: number;
  /** Changed blocks kept at most, over all files; beyond, files are read whole. */
  maxBlocks?: number;
}

export const DEFAULT_MAX_CHANGED_PATHS = 1_000_000;
export const DEFAULT_MAX_CHANGED_BLOCKS = 4_000_000;
/** Renames × names noted, at most: each rename looks through every name noted so far. */
const MAX_RENAME_WORK = 50_000_000;

const CREATES = new Set(['mkfile', 'mkdir', 'mknod', 'mkfifo', 'mksock', 'symlink']);
const EXTENTS = new Set(['update_extent', 'write', 'clone', 'fallocate', 'encoded_write']);
const METADATA = new Set(['chmod', 'chown', 'utimes', 'set_xattr', 'remove_xattr', 'fileattr', 'enable_verity']);

function isUnder(p: string, dir: string): boolean {
  return p.length > dir.length && p.startsWith(dir) && p.charCodeAt(dir.length) === 47;
}

function moved(p: string, from: string, to: string): string | undefined {
  if (p === from) return to;
  if (isUnder(p, from)) return to + p.slice(from.length);
  return undefined;
}

export class ChangeList {
  private readonly paths = new Map<string, PathChange>();
  private readonly gone = new Set<string>();
  /** Names of inodes the stream made (as they are named now): nothing of the older snapshot. */
  private readonly created = new Set<string>();
  private blocks = 0;
  private renameWork = 0;
  private incomplete: string | undefined;
  private readonly maxPaths: number;
  private readonly maxBlocks: number;

  constructor(private readonly opts: ChangeListOptions) {
    this.maxPaths = opts.maxPaths ?? DEFAULT_MAX_CHANGED_PATHS;
    this.maxBlocks = opts.maxBlocks ?? DEFAULT_MAX_CHANGED_BLOCKS;
  }

  /** Takes the next command of the stream. */
  add(c: SendCommand): void {
    if (this.incomplete !== undefined) return;
    const op = c.op;
    if (op === 'subvol' || op === 'snapshot' || op === 'end') return;
    const path = c.path;
    if (path === undefined) return this.give_up(`${op} without a path`);
    // The subvolume's own directory: its times change with every entry; nothing to replicate.
    if (path === '') return;
    const name = this.nameKind(path, op);
    if (name === 'malformed') return;
    if (CREATES.has(op)) {
      this.created.add(path);
      this.set(path, { content: 'all' });
    } else if (op === 'rename') {
      const newName = c.to;
      const to = newName === undefined ? 'malformed' : this.nameKind(newName, op);
      if (newName === undefined || to === 'malformed') return this.give_up('rename without a well-formed new name');
      // Out of a name the protocol refuses, into one it takes: the subtree that appears was
      // never journaled, and one command cannot say what it holds.
      if (name === 'refused' && to === 'taken') return this.give_up('rename of a name the protocol refuses to one it takes');
      this.rename(path, newName);
    } else if (op === 'link') {
      // A new name of an existing inode: looking at it journals the hard link.
      this.created.add(path);
      this.note(path);
    } else if (op === 'unlink' || op === 'rmdir') {
      this.remove(path, op === 'rmdir');
    } else if (EXTENTS.has(op)) {
      this.extent(path, c.offset ?? 0, c.length ?? 0);
    } else if (op === 'truncate') {
      const ch = this.note(path);
      if (ch?.content === 'blocks') ch.resized = true;
      else if (ch?.content === 'none') this.paths.set(path, { content: 'blocks', blocks: new Set(), resized: true });
    } else if (METADATA.has(op)) {
      this.note(path);
    } else {
      this.give_up(`unknown command ${op}`);
    }
  }

  /** The changes of the whole stream. */
  result(): ChangeSet {
    if (this.incomplete !== undefined) return { paths: new Map(), gone: new Set(), incomplete: this.incomplete };
    return { paths: this.paths, gone: this.gone, incomplete: undefined };
  }

  private give_up(why: string): void {
    this.incomplete ??= why;
    this.paths.clear();
    this.gone.clear();
    this.created.clear();
  }

  /**
   * `taken` by the protocol; `refused` by it though a file system may well hold it (a backslash,
   * or longer than a path may be): listed like any other, so that capture looks at it, the
   * journal refuses it and the operator is told (giving up compared the whole snapshot at every
   * point such a file was written in); or `malformed` (empty, absolute, `..`), which btrfs does
   * not make: the stream is not what it seems, and the list gives up.
   */
  private nameKind(p: string, op: string): 'taken' | 'refused' | 'malformed' {
    const problem = relPathProblem(p);
    if (problem === undefined) return 'taken';
    if (problem === 'backslash' || problem === 'too-long') return 'refused';
    this.give_up(`${op}: name ${JSON.stringify(p.slice(0, 200))} is not a well-formed relative path (${problem})`);
    return 'malformed';
  }

  private isCreated(p: string): boolean {
    if (this.created.has(p)) return true;
    for (let i = p.indexOf('/'); i > 0; i = p.indexOf('/', i + 1)) if (this.created.has(p.slice(0, i))) return true;
    return false;
  }

  private set(p: string, ch: PathChange): void {
    const prev = this.paths.get(p);
    if (prev?.content === 'blocks') this.blocks -= prev.blocks.size;
    this.paths.set(p, ch);
    this.checkSize();
  }

  /** Notes `p` as changed in some way, keeping what is known; returns its entry. */
  private note(p: string): PathChange | undefined {
    let ch = this.paths.get(p);
    if (ch === undefined) {
      ch = { content: 'none' };
      this.paths.set(p, ch);
      this.checkSize();
    }
    return this.incomplete === undefined ? ch : undefined;
  }

  private extent(p: string, offset: number, length: number): void {
    const ch = this.note(p);
    if (ch === undefined || ch.content === 'all' || length === 0) return;
    const bs = this.opts.blockSize;
    const first = Math.floor(offset / bs);
    const last = Math.floor((offset + length - 1) / bs);
    if (this.blocks + (last - first + 1) > this.maxBlocks) {
      // Too many to keep one by one: this file is read whole.
      this.set(p, { content: 'all' });
      return;
    }
    let blocks: Set<number>;
    if (ch.content === 'none') {
      blocks = new Set();
      this.paths.set(p, { content: 'blocks', blocks, resized: false });
    } else {
      blocks = ch.blocks;
    }
    for (let b = first; b <= last; b++) {
      if (!blocks.has(b)) {
        blocks.add(b);
        this.blocks++;
      }
    }
  }

  private rename(from: string, to: string): void {
    if (!this.isCreated(from)) this.gone.add(from);
    this.renameWork += this.paths.size + this.created.size + this.gone.size;
    if (this.renameWork > MAX_RENAME_WORK) return this.give_up('too many renames to follow');
    // Everything noted at or below the old name moves with it, in the same order.
    const movedPaths: [string, PathChange][] = [];
    for (const [p, ch] of this.paths) {
      const q = moved(p, from, to);
      if (q !== undefined) {
        this.paths.delete(p);
        movedPaths.push([q, ch]);
      }
    }
    for (const [q, ch] of movedPaths) this.paths.set(q, ch);
    const movedCreated: string[] = [];
    for (const p of this.created) {
      const q = moved(p, from, to);
      if (q !== undefined) {
        this.created.delete(p);
        movedCreated.push(q);
      }
    }
    // The new name of an inode the older snapshot had is not a made name: what is removed below
    // it later was there before, under the old name.
    for (const q of movedCreated) this.created.add(q);
    // Names below the old one that the stream removed or renamed away are below the new one now
    // (capture moves its own record of them with the directory, then finds them missing).
    for (const g of [...this.gone]) {
      if (isUnder(g, from)) this.gone.add(to + g.slice(from.length));
    }
    // The new name is looked at even when nothing else changed: capture journals the move.
    this.note(to);
  }

  private remove(p: string, dir: boolean): void {
    if (!this.isCreated(p)) this.gone.add(p);
    // Names carried below a name the stream made (a directory orphaned before its removal) are
    // still reported under their original names.
    else if (dir) for (const g of [...this.gone]) if (isUnder(g, p)) this.gone.delete(g);
    const ch = this.paths.get(p);
    if (ch?.content === 'blocks') this.blocks -= ch.blocks.size;
    this.paths.delete(p);
    this.created.delete(p);
    if (dir) {
      for (const q of [...this.paths.keys()]) if (isUnder(q, p)) this.paths.delete(q);
      for (const q of [...this.created]) if (isUnder(q, p)) this.created.delete(q);
    }
    this.checkSize();
  }

  private checkSize(): void {
    if (this.paths.size + this.gone.size > this.maxPaths) this.give_up(`more than ${this.maxPaths} changed names`);
  }
}
