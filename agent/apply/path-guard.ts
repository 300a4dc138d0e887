// Decides whether a record's (root, path) may be touched on the passive, and where that is on
// disk. It must never let a write land outside a protected root: not through `..`, not through
// an absolute path, and not through a parent component that is a symbolic link (a link may
// point anywhere, and the active's tree is not ours to trust).
import fs, { type Stats } from 'node:fs';
import { TandemError, errnoOf } from '../../shared/errors.ts';
import { relPathProblem, type PathProblem } from '../../shared/protocol/paths.ts';

export const OUTSIDE_ROOT_HINT =
  'the active sent a path outside the protected root; this is a bug or an attack: nothing was written';

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

/**
 * Lexical part of the guard, pure: the absolute path of `relPath` inside the root named `root`.
 * `roots` maps root names to their real absolute paths (already resolved with realpath).
 * Throws TANDEM_ERR_PATH_OUTSIDE_ROOT for an unknown root or a malformed path.
 */
export function resolveInRoot(roots: ReadonlyMap<string, string>, op: string, root: string, relPath: string, seq?: number): string {
  const rootPath = roots.get(root);
  const shown = typeof relPath === 'string' ? relPath : String(relPath);
  if (rootPath === undefined) throw outsideRootError(op, root, shown, `unknown root "${root}"`, seq);
  const problem = relPathProblem(relPath);
  if (problem !== undefined) throw outsideRootError(op, root, shown, PROBLEM_REASONS[problem], seq);
  // Well-formed relative paths need no normalisation: plain concatenation cannot climb out.
  return `${rootPath}/${relPath}`;
}

export interface ParentCheck {
  /** Absolute path of the record's path. */
  abs: string;
  /**
   * Index (in the path's '/'-separated segments) of the first parent component that is not a
   * real directory: missing, or a regular file (or other non-link) that must be replaced. -1
   * when every parent is a real directory. Components below it are known not to exist.
   */
  firstMissing: number;
}

/** lstat that returns undefined for a missing path (ENOENT, ENOTDIR). Synchronous inside: it
 * costs microseconds from the inode cache, a thread-pool round trip costs far more. */
export type LstatFn = (abs: string) => Promise<Stats | undefined>;

export async function lstatOrUndefined(abs: string): Promise<Stats | undefined> {
  try {
    return fs.lstatSync(abs);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/**
 * The guard used at apply time. It lstats every parent component from the root down and caches
 * the ones found to be real directories, per apply call (`clear`). The cache keeps one
 * invariant that makes invalidation cheap: a path is cached only when all its ancestors are.
 * So when a record changes a path that is not cached, nothing below it is cached either.
 */
export class PathGuard {
  private readonly roots: ReadonlyMap<string, string>;
  private readonly lstat: LstatFn;
  private readonly realDirs = new Set<string>();

  constructor(roots: ReadonlyMap<string, string>, lstat: LstatFn = lstatOrUndefined) {
    this.roots = roots;
    this.lstat = lstat;
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
   * Lexical check, then lstat of each parent component. Throws TANDEM_ERR_PATH_OUTSIDE_ROOT
   * when a parent is a symbolic link. The final component is not examined: it may be a link
   * (a record may replace or remove it); the applier never writes through it (O_NOFOLLOW).
   * Other file system errors (EACCES, EIO) are thrown as they are.
   */
  async checkParents(op: string, root: string, relPath: string, seq?: number): Promise<ParentCheck> {
    const abs = this.resolve(op, root, relPath, seq);
    const rootPath = this.roots.get(root)!;
    let end = relPath.indexOf('/');
    let index = 0;
    while (end >= 0) {
      const dirRel = relPath.slice(0, end);
      const key = `${root}\0${dirRel}`;
      if (!this.realDirs.has(key)) {
        const st = await this.lstat(`${rootPath}/${dirRel}`);
        if (st === undefined) return { abs, firstMissing: index };
        if (st.isSymbolicLink()) throw outsideRootError(op, root, relPath, `parent "${dirRel}" is a symbolic link`, seq);
        if (!st.isDirectory()) return { abs, firstMissing: index };
        this.realDirs.add(key);
      }
      end = relPath.indexOf('/', end + 1);
      index++;
    }
    return { abs, firstMissing: -1 };
  }

  /** The applier made `dirRel` a real directory (its parents were checked or made just before). */
  noteDir(root: string, dirRel: string): void {
    this.realDirs.add(`${root}\0${dirRel}`);
  }

  /** `relPath` changed (replaced, removed, renamed): forget it and everything below it. */
  invalidate(root: string, relPath: string): void {
    const key = `${root}\0${relPath}`;
    if (!this.realDirs.delete(key)) return;
    const prefix = `${key}/`;
    for (const k of this.realDirs) if (k.startsWith(prefix)) this.realDirs.delete(k);
  }

  /** Forgets every cached result (start of an apply call: the disk may have changed since). */
  clear(): void {
    this.realDirs.clear();
  }

  /** Number of cached directories (tests). */
  cachedCount(): number {
    return this.realDirs.size;
  }
}
