// Paths inside a protected root travel as POSIX relative paths: "dir/file.txt". This is the
// single definition of a well-formed one; both capture (which produces them) and apply (which
// must refuse anything else) use it.

export type PathProblem = 'empty' | 'absolute' | 'dot-segment' | 'empty-segment' | 'nul' | 'backslash' | 'too-long';

const MAX_PATH_BYTES = 4096;

/** Undefined when `p` is a well-formed relative path; otherwise what is wrong with it. */
export function relPathProblem(p: unknown): PathProblem | undefined {
  // Every record's path passes here on both agents (three times a small file): one scan without
  // allocating proves the common case; anything it does not prove is told apart below.
  if (typeof p === 'string' && plainlyWellFormed(p)) return undefined;
  if (typeof p !== 'string' || p.length === 0) return 'empty';
  if (Buffer.byteLength(p) > MAX_PATH_BYTES) return 'too-long';
  if (p.includes('\0')) return 'nul';
  if (p.startsWith('/')) return 'absolute';
  if (p.includes('\\')) return 'backslash';
  for (const seg of p.split('/')) {
    if (seg === '') return 'empty-segment';
    if (seg === '.' || seg === '..') return 'dot-segment';
  }
  return undefined;
}

/** True when `p` certainly has none of relPathProblem's problems (false: look closer). */
function plainlyWellFormed(p: string): boolean {
  const n = p.length;
  if (n === 0 || n > MAX_PATH_BYTES) return false;
  let start = 0;
  for (let i = 0; i <= n; i++) {
    const c = i === n ? 47 : p.charCodeAt(i);
    if (c === 47) {
      const len = i - start;
      // An empty segment (a leading, doubled or trailing slash), "." or "..".
      if (len === 0 || (len <= 2 && p.charCodeAt(start) === 46 && (len === 1 || p.charCodeAt(start + 1) === 46))) return false;
      start = i + 1;
    } else if (c === 0 || c === 92) {
      return false;
    }
  }
  // UTF-8 takes at most three bytes per UTF-16 unit.
  return n * 3 <= MAX_PATH_BYTES || Buffer.byteLength(p) <= MAX_PATH_BYTES;
}

export function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

export function depthOf(p: string): number {
  let d = 0;
  for (let i = 0; i < p.length; i++) if (p.charCodeAt(i) === 47) d++;
  return d;
}

/** True when `p` is `dir` itself or lies below it ("" is the root and contains everything). */
export function isWithin(p: string, dir: string): boolean {
  return dir === '' || p === dir || p.startsWith(`${dir}/`);
}
