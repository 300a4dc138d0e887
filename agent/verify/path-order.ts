// The order in which verify walks a protected root, and what a cursor in that order has done.
// Paths are compared segment by segment, so a depth-first walk with each directory's names
// sorted visits them in exactly this order: a cursor (the last path finished) then says, for
// any path, whether it was done, and for a directory, whether its subtree still needs a visit.

/** Negative when `a` comes before `b` in the walk, 0 when equal, positive after. */
export function comparePaths(a: string, b: string): number {
  if (a === b) return 0;
  const sa = a === '' ? [] : a.split('/');
  const sb = b === '' ? [] : b.split('/');
  const n = Math.min(sa.length, sb.length);
  for (let i = 0; i < n; i++) {
    if (sa[i] !== sb[i]) return sa[i]! < sb[i]! ? -1 : 1;
  }
  return sa.length - sb.length;
}

/** A position in the walk: root `rootIndex` (config order), everything up to `path` finished. */
export interface Cursor {
  rootIndex: number;
  /** The last path finished in that root; undefined: none yet. */
  path: string | undefined;
}

/** `p` in root `rootIndex` was finished before the cursor was taken. */
export function isDone(cursor: Cursor, rootIndex: number, p: string): boolean {
  if (rootIndex !== cursor.rootIndex) return rootIndex < cursor.rootIndex;
  return cursor.path !== undefined && comparePaths(p, cursor.path) <= 0;
}

/**
 * Directory `dir` itself may be done while something below it is not: the cursor lies inside,
 * or is the directory itself (its entry is finished before anything below it: a verification
 * interrupted right then has done none of its subtree).
 */
export function mustDescend(cursor: Cursor, rootIndex: number, dir: string): boolean {
  if (!isDone(cursor, rootIndex, dir)) return true;
  return rootIndex === cursor.rootIndex && cursor.path !== undefined && (cursor.path === dir || cursor.path.startsWith(`${dir}/`));
}

/** The full relative path of `name` inside `dir` ("" is the root). */
export function joinRel(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}
