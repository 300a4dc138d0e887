// Paths inside a protected root travel as POSIX relative paths: "dir/file.txt". This is the
// single definition of a well-formed one; both capture (which produces them) and apply (which
// must refuse anything else) use it.

export type PathProblem = 'empty' | 'absolute' | 'dot-segment' | 'empty-segment' | 'nul' | 'backslash' | 'too-long';

const MAX_PATH_BYTES = 4096;

/** Undefined when `p` is a well-formed relative path; otherwise what is wrong with it. */
export function relPathProblem(p: unknown): PathProblem | undefined {
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
