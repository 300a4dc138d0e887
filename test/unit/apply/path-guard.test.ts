import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TandemError } from '../../../shared/errors.ts';
import { OUTSIDE_ROOT_HINT, PathGuard, lstatOrUndefined, resolveInRoot } from '../../../agent/apply/path-guard.ts';
import { tmpDir } from './helpers.ts';

function refusal(fn: () => unknown): TandemError {
  try {
    fn();
  } catch (err) {
    if (err instanceof TandemError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

async function refusalOf(p: Promise<unknown>): Promise<TandemError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof TandemError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('resolveInRoot (lexical)', () => {
  const roots = new Map([['data', '/srv/data']]);

  it('joins a well-formed relative path to the real root path', () => {
    expect(resolveInRoot(roots, 'write', 'data', 'a/b.txt')).toBe('/srv/data/a/b.txt');
    expect(resolveInRoot(roots, 'write', 'data', '..hidden/x..y')).toBe('/srv/data/..hidden/x..y');
  });

  const bad: [string, string, RegExp][] = [
    ['a path that climbs out with ..', '../etc/passwd', /'\.' or '\.\.' segment/],
    ['a .. in the middle', 'a/../../etc', /segment/],
    ['a . segment', './a', /segment/],
    ['an absolute path', '/etc/passwd', /absolute/],
    ['an empty path', '', /empty/],
    ['an empty segment', 'a//b', /empty segment/],
    ['a trailing slash', 'a/', /empty segment/],
    ['a NUL byte', 'a\0b', /NUL/],
    ['a backslash', '..\\..\\x', /backslash/],
    ['a path over 4096 bytes', 'a/'.repeat(2100) + 'b', /too long/],
  ];
  for (const [name, p, reason] of bad) {
    it(`refuses ${name}`, () => {
      const err = refusal(() => resolveInRoot(roots, 'write', 'data', p, 7));
      expect(err.code).toBe('TANDEM_ERR_PATH_OUTSIDE_ROOT');
      expect(err.message).toMatch(reason);
      expect(err.message.startsWith(`apply write data/${p}: `)).toBe(true);
      expect(err.hint).toBe(OUTSIDE_ROOT_HINT);
      expect(err.details).toEqual({ seq: 7, root: 'data', path: p });
    });
  }

  it('refuses an unknown root', () => {
    const err = refusal(() => resolveInRoot(roots, 'mkdir', 'etc', 'passwd'));
    expect(err.code).toBe('TANDEM_ERR_PATH_OUTSIDE_ROOT');
    expect(err.message).toBe('apply mkdir etc/passwd: unknown root "etc"');
  });

  it('refuses a path that is not a string (a decoded record of the wrong shape)', () => {
    const err = refusal(() => resolveInRoot(roots, 'file', 'data', 42 as unknown as string));
    expect(err.code).toBe('TANDEM_ERR_PATH_OUTSIDE_ROOT');
  });
});

describe('PathGuard.checkParents (against the disk)', () => {
  let base: string;
  let root: string;
  let outside: string;
  let lstats: string[];
  let guard: PathGuard;

  beforeEach(() => {
    base = tmpDir('tandem-guard-');
    root = path.join(base, 'root');
    outside = path.join(base, 'outside');
    fs.mkdirSync(path.join(root, 'a', 'b'), { recursive: true });
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(root, 'file'), 'x');
    fs.symlinkSync(outside, path.join(root, 'out'));
    fs.symlinkSync('a', path.join(root, 'in'));
    lstats = [];
    guard = new PathGuard(new Map([['data', root]]), (abs) => {
      lstats.push(path.relative(root, abs));
      return lstatOrUndefined(abs);
    });
  });

  afterEach(() => {
    fs.rmSync(base, { recursive: true, force: true });
  });

  it('accepts a path whose parents are real directories', async () => {
    expect(await guard.checkParents('write', 'data', 'a/b/c.txt')).toEqual({ abs: path.join(root, 'a/b/c.txt'), firstMissing: -1 });
  });

  it('does not look at the final component, which may be a link', async () => {
    expect(await guard.checkParents('unlink', 'data', 'out')).toEqual({ abs: path.join(root, 'out'), firstMissing: -1 });
    expect(lstats).toEqual([]);
  });

  it('refuses a parent that is a symlink pointing outside the root', async () => {
    const err = await refusalOf(guard.checkParents('write', 'data', 'out/x', 3));
    expect(err.code).toBe('TANDEM_ERR_PATH_OUTSIDE_ROOT');
    expect(err.message).toBe('apply write data/out/x: parent "out" is a symbolic link');
    expect(err.details).toEqual({ seq: 3, root: 'data', path: 'out/x' });
  });

  it('refuses a parent that is a symlink even when it points inside the root', async () => {
    const err = await refusalOf(guard.checkParents('write', 'data', 'in/b/x'));
    expect(err.message).toMatch(/parent "in" is a symbolic link/);
  });

  it('reports the first missing parent', async () => {
    expect((await guard.checkParents('write', 'data', 'a/b/c/d/e')).firstMissing).toBe(2);
    expect((await guard.checkParents('write', 'data', 'z/y')).firstMissing).toBe(0);
  });

  it('reports a regular file in place of a parent as missing (to be replaced)', async () => {
    expect((await guard.checkParents('write', 'data', 'file/x')).firstMissing).toBe(0);
  });

  it('caches real directories and forgets a path and everything below it when told', async () => {
    await guard.checkParents('write', 'data', 'a/b/c');
    expect(lstats).toEqual(['a', 'a/b']);
    await guard.checkParents('write', 'data', 'a/b/d');
    expect(lstats).toEqual(['a', 'a/b']);
    expect(guard.cachedCount()).toBe(2);

    // a/b becomes a link to outside: the cache must not keep vouching for it.
    guard.invalidate('data', 'a/b');
    fs.rmSync(path.join(root, 'a', 'b'), { recursive: true });
    fs.symlinkSync(outside, path.join(root, 'a', 'b'));
    const err = await refusalOf(guard.checkParents('write', 'data', 'a/b/c'));
    expect(err.message).toMatch(/parent "a\/b" is a symbolic link/);
    expect(guard.cachedCount()).toBe(1);

    guard.invalidate('data', 'a');
    expect(guard.cachedCount()).toBe(0);
  });

  it('invalidating a path that is not cached keeps its siblings', async () => {
    fs.mkdirSync(path.join(root, 'a', 'bb'));
    await guard.checkParents('write', 'data', 'a/b/x');
    await guard.checkParents('write', 'data', 'a/bb/x');
    guard.invalidate('data', 'a/b/x');
    expect(guard.cachedCount()).toBe(3);
    guard.invalidate('data', 'a/b');
    expect(guard.cachedCount()).toBe(2);
  });

  it('clear forgets everything (a new apply call trusts nothing)', async () => {
    await guard.checkParents('write', 'data', 'a/b/c');
    guard.clear();
    await guard.checkParents('write', 'data', 'a/b/c');
    expect(lstats).toEqual(['a', 'a/b', 'a', 'a/b']);
  });

  it('applies the lexical checks before touching the disk', async () => {
    const err = await refusalOf(guard.checkParents('write', 'data', '../outside/x'));
    expect(err.code).toBe('TANDEM_ERR_PATH_OUTSIDE_ROOT');
    expect(lstats).toEqual([]);
  });
});
