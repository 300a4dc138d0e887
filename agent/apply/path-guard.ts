// Decides whether a record's (root, path) may be touched on the passive, and opens the
// directory it lives in. It must never let a write land outside a protected root: not through
// `..`, not through an absolute path, and not through a parent component that is a symbolic
// link, whenever that link appears. So it answers nothing in advance: every record walks from
// its root, one component at a time, each directory opened with O_NOFOLLOW through the one
// above it (agent/tree/beneath.ts), and the record's operation then addresses the opened parent.
// What the walk meets is judged by who made it: a link the active's own records made is data,
// and a record below it is refused (a bug or an attack by the active); a link the active never
// sent was put there by someone on this node, and is replaced by the directory the records say
// is there (the passive's tree is Tandem's), with a TANDEM_ERR_PATH_SWAPPED notice.
import fs, { type Stats } from 'node:fs';
import { TandemError, errnoOf } from '../../shared/errors.ts';
import { relPathProblem, type PathProblem } from '../../shared/protocol/paths.ts';
import { at, closeFd, dirStillAt, openDirAt, openRoot, openVerifiedDir, type RootRef } from '../tree/index.ts';

export const OUTSIDE_ROOT_HINT =
  'the active sent a path outside the protected root; this is a bug or an attack: nothing was written';

export const SWAPPED_HINT =
  "the passive's protected tree must be written by Tandem alone: find who replaced a directory by a symbolic link; nothing was read or written through it, and tandem verify --repair restores what the directory held";

/** How many times one component is repaired (a link or a file replaced by a directory) before the record is skipped: someone keeps swapping it. */
const MAX_REPAIRS = 3;

const PROBLEM_REASONS: Record<PathProblem, string> = {
  empty: 'the path is empty',
  absolute: 'the path is absolute',
  'dot-segment': "the path has a '.' or '..' segment",
  'empty-segment': 'the path has an empty segment',
  nul: 'the path contains a NUL byte',
  backslash: 'the path contains a backslash',
  'too-long': 'the path is too long',
};

/** The error for a refused record: "apply <op> <root>/<path>: <reason>". */
export function outsideRootError(op: string, root: string, relPath: string, reason: string, seq?: number): TandemError {
  return new TandemError({
    code: 'TANDEM_ERR_PATH_OUTSIDE_ROOT',
    op: `apply ${op} ${root}/${relPath}`,
    reason,
    hint: OUTSIDE_ROOT_HINT,
    details: { ...(seq === undefined ? {} : { seq }), root, path: relPath },
  });
}

/** A component kept changing under the walk: the record is skipped (and reported), not retried for ever. */
export function swappedError(op: string, root: string, relPath: string, component: string, seq?: number): TandemError {
  return new TandemError({
    code: 'TANDEM_ERR_PATH_SWAPPED',
    op: `apply ${op} ${root}/${relPath}`,
    reason: `"${component}" keeps changing between a directory and something else: the record was skipped`,
    hint: SWAPPED_HINT,
    details: { ...(seq === undefined ? {} : { seq }), root, path: relPath, component },
  });
}

/**
 * Lexical part of the guard, pure: the absolute path of `relPath` inside the root named `root`
 * (for messages; no operation uses it). `roots` maps root names to their real absolute paths.
 * Throws TANDEM_ERR_PATH_OUTSIDE_ROOT for an unknown root or a malformed path.
 */
export function resolveInRoot(roots: ReadonlyMap<string, string>, op: string, root: string, relPath: string, seq?: number): string {
  const rootPath = roots.get(root);
  const shown = typeof relPath === 'string' ? relPath : String(relPath);
  if (rootPath === undefined) throw outsideRootError(op, root, shown, `unknown root "${root}"`, seq);
  const problem = relPathProblem(relPath);
  if (problem !== undefined) throw outsideRootError(op, root, shown, PROBLEM_REASONS[problem], seq);
  return `${rootPath}/${relPath}`;
}

/** lstat that returns undefined for a missing path (ENOENT, ENOTDIR). */
export async function lstatOrUndefined(abs: string): Promise<Stats | undefined> {
  try {
    return fs.lstatSync(abs);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/** A record's path, located: its parent directory open, and its last name in it. */
export interface Loc {
  root: string;
  rel: string;
  /** Descriptor of the parent directory (the root's for a top-level path). */
  dir: number;
  /** False when `dir` is the root descriptor the guard holds: closeLoc leaves it open. */
  ownsDir: boolean;
  /** Relative path of the parent ('' for the root). */
  dirRel: string;
  name: string;
  /** /proc/self/fd/<dir>/<name>: the entry itself, never followed by O_NOFOLLOW opens and l* calls. */
  at: string;
}

/**
 * How far a walk may change the tree: `create` makes missing parents and replaces what stands
 * in their way; `existing` changes nothing (a path under something that is not a directory is
 * absent); `probe` changes nothing either, and only refuses a path below the active's own link.
 */
export type WalkMode = 'create' | 'existing' | 'probe';

/** What the guard asks of the applier while it walks. */
export interface GuardHooks {
  /** The active's records made `rel` a symbolic link (the passive's manifest says so). */
  isActiveLink(root: string, rel: string): boolean;
  /** A missing parent `dirRel` was created in the directory open as `parentFd`. */
  createdDir(root: string, dirRel: string, parentFd: number): void;
  /** Something (not a directory) stands at `rel` where a directory must be: remove it. */
  removeInTheWay(root: string, rel: string, parentFd: number, name: string, st: Stats): Promise<void>;
  /** A symbolic link the active never made stands at `component`, a parent of `rel`. */
  foreignLink(op: string, root: string, rel: string, component: string, seq: number | undefined): void;
}

/** Closes a location's parent directory, unless it is a root the guard holds. */
export function closeLoc(loc: Loc | undefined): void {
  if (loc !== undefined && loc.ownsDir) closeFd(loc.dir);
}

export class PathGuard {
  private readonly held = new Map<string, number>();

  constructor(
    private readonly roots: ReadonlyMap<string, string>,
    private readonly hooks: GuardHooks,
  ) {}

  /**
   * Opens every root once for a while (one apply call): walks start from it instead of opening
   * it for each record. A root is replaced only by whoever administers its parent; every
   * directory below it is still opened afresh for every record.
   */
  hold(): void {
    for (const [name, p] of this.roots) {
      if (this.held.has(name)) continue;
      try {
        this.held.set(name, openRoot(p));
      } catch {
        // Gone or unreadable: each walk opens it itself and fails with the reason.
      }
    }
  }

  /** Where a walk below `root` starts: its held descriptor, or its real path. */
  rootRef(root: string): RootRef {
    const fd = this.held.get(root);
    return fd === undefined ? this.roots.get(root)! : { fd, path: this.roots.get(root)! };
  }

  release(): void {
    for (const fd of this.held.values()) closeFd(fd);
    this.held.clear();
  }

  /** Real absolute path of a root, or undefined when the root is unknown. */
  rootPath(root: string): string | undefined {
    return this.roots.get(root);
  }

  /** Lexical check only (see `resolveInRoot`). */
  resolve(op: string, root: string, relPath: string, seq?: number): string {
    return resolveInRoot(this.roots, op, root, relPath, seq);
  }

  /**
   * The lexical check, then a walk from the root to the parent of `relPath`. Returns its
   * location (the caller closes `dir`), or undefined when a parent is absent and `mode` does not
   * create it. Throws TANDEM_ERR_PATH_OUTSIDE_ROOT (malformed, or below the active's own link
   * for `create` and `probe`), TANDEM_ERR_PATH_SWAPPED (a parent kept changing), or the file
   * system's error.
   *
   * `prev`: the location of the record before, still open. When the path has the same parent,
   * its descriptor is checked as a new one would be (its real path, readlink of
   * /proc/self/fd/N, is exactly root/dirRel: the directory is still there, and no link leads
   * to it) and used again, saving the open: the location returned then owns it in its place
   * (the caller closes `prev` only when the returned `dir` differs). 100,000 new files in 100
   * directories: 100,000 opens and closes of directories fewer.
   */
  async locate(op: string, root: string, relPath: string, seq: number | undefined, mode: WalkMode, prev?: Loc): Promise<Loc | undefined> {
    this.resolve(op, root, relPath, seq);
    const segs = relPath.split('/');
    if (segs.length > 1) {
      // The common case in one open and one readlink: every parent a real directory already.
      const dirRel = segs.slice(0, -1).join('/');
      const name = segs[segs.length - 1]!;
      if (prev !== undefined && prev.root === root && prev.dirRel === dirRel && dirStillAt(prev.dir, `${this.roots.get(root)!}/${dirRel}`)) {
        return { root, rel: relPath, dir: prev.dir, ownsDir: prev.ownsDir, dirRel, name, at: at(prev.dir, name) };
      }
      const quick = openVerifiedDir(this.roots.get(root)!, dirRel);
      if (quick !== undefined) {
        return { root, rel: relPath, dir: quick, ownsDir: true, dirRel, name, at: at(quick, name) };
      }
    }
    const heldFd = this.held.get(root);
    let fd = heldFd ?? openRoot(this.roots.get(root)!);
    let owned = heldFd === undefined;
    let dirRel = '';
    try {
      for (let i = 0; i < segs.length - 1; i++) {
        const seg = segs[i]!;
        const childRel = dirRel === '' ? seg : `${dirRel}/${seg}`;
        const next = await this.enter(op, root, relPath, seq, mode, fd, seg, childRel);
        if (next === undefined) return undefined;
        if (owned) closeFd(fd);
        fd = next;
        owned = true;
        dirRel = childRel;
      }
      const name = segs[segs.length - 1]!;
      const loc: Loc = { root, rel: relPath, dir: fd, ownsDir: owned, dirRel, name, at: at(fd, name) };
      owned = false; // the caller's now
      return loc;
    } finally {
      if (owned) closeFd(fd);
    }
  }

  /** Opens `seg` inside `fd` as a directory, making it one when `mode` is create. */
  private async enter(op: string, root: string, rel: string, seq: number | undefined, mode: WalkMode, fd: number, seg: string, childRel: string): Promise<number | undefined> {
    for (let attempt = 0; attempt <= MAX_REPAIRS; attempt++) {
      const d = openDirAt(fd, seg);
      switch (d.kind) {
        case 'dir':
          return d.fd;
        case 'missing':
          if (mode !== 'create') return undefined;
          try {
            fs.mkdirSync(at(fd, seg), 0o755);
            this.hooks.createdDir(root, childRel, fd);
          } catch (err) {
            if (errnoOf(err) !== 'EEXIST') throw err;
          }
          continue;
        case 'link':
          if (this.hooks.isActiveLink(root, childRel)) {
            if (mode === 'existing') return undefined; // nothing exists below a link
            throw outsideRootError(op, root, rel, `parent "${childRel}" is a symbolic link`, seq);
          }
          if (mode === 'probe') return undefined;
          if (attempt === 0) this.hooks.foreignLink(op, root, rel, childRel, seq);
          if (mode === 'existing') return undefined;
          await this.hooks.removeInTheWay(root, childRel, fd, seg, d.st);
          continue;
        case 'other':
          if (mode !== 'create') return undefined;
          await this.hooks.removeInTheWay(root, childRel, fd, seg, d.st);
          continue;
      }
    }
    throw swappedError(op, root, rel, childRel, seq);
  }
}
