import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OUTSIDE_ROOT_HINT, PathGuard, resolveInRoot, type GuardHooks, type Loc, type WalkMode } from '../../../agent/apply/path-guard.ts';
import { at } from '../../../agent/tree/index.ts';
import { tmpDir } from './helpers.ts';
import { refusal, refusalOf } from '../../helpers/refusal.ts';

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

describe('PathGuard.locate (against the disk, walked again for every record)', () => {
  let base: string;
  let root: string;
  let outside: string;
  let activeLinks: Set<string>;
  let created: string[];
  let foreign: string[];
  let removed: string[];
  let reswap: ((rel: string) => void) | undefined;
  let guard: PathGuard;

  beforeEach(() => {
    base = tmpDir('tandem-guard-');
    root = path.join(base, 'root');
    outside = path.join(base, 'outside');
    fs.mkdirSync(path.join(root, 'a', 'b'), { recursive: true });
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'secret'), 'outside');
    fs.writeFileSync(path.join(root, 'file'), 'x');
    fs.symlinkSync(outside, path.join(root, 'out'));
    fs.symlinkSync('a', path.join(root, 'in'));
    activeLinks = new Set();
    created = [];
    foreign = [];
    removed = [];
    reswap = undefined;
    const hooks: GuardHooks = {
      isActiveLink: (_root, rel) => activeLinks.has(rel),
      createdDir: (_root, rel) => created.push(rel),
      removeInTheWay: async (_root, rel, parentFd, name) => {
        removed.push(rel);
        fs.unlinkSync(at(parentFd, name));
        reswap?.(rel);
      },
      foreignLink: (_op, _root, _rel, component) => foreign.push(component),
    };
    guard = new PathGuard(new Map([['data', root]]), hooks);
  });

  afterEach(() => {
    fs.rmSync(base, { recursive: true, force: true });
  });

  /** Locates, runs `fn` on the location, closes it. */
  async function withLoc<T>(rel: string, mode: WalkMode, fn: (loc: Loc | undefined) => T): Promise<T> {
    const loc = await guard.locate('write', 'data', rel, 3, mode);
    try {
      return fn(loc);
    } finally {
      if (loc !== undefined) fs.closeSync(loc.dir);
    }
  }

  it('opens the parent of a path whose parents are real directories, and its entry is reached through it', async () => {
    await withLoc('a/b/c.txt', 'existing', (loc) => {
      expect(loc).toMatchObject({ rel: 'a/b/c.txt', dirRel: 'a/b', name: 'c.txt' });
      fs.writeFileSync(loc!.at, 'here', { flag: 'wx' });
    });
    expect(fs.readFileSync(path.join(root, 'a/b/c.txt'), 'utf8')).toBe('here');
  });

  it('does not look at the final component, which may be a link (it is named, never followed)', async () => {
    await withLoc('out', 'existing', (loc) => expect(fs.lstatSync(loc!.at).isSymbolicLink()).toBe(true));
    expect(foreign).toEqual([]);
  });

  it('answers absent below a missing parent, a file, or a link, without changing anything', async () => {
    for (const rel of ['z/y', 'file/x', 'out/secret', 'in/b/x']) expect(await withLoc(rel, 'existing', (l) => l)).toBeUndefined();
    expect(foreign).toEqual(['out', 'in']);
    expect(fs.readlinkSync(path.join(root, 'out'))).toBe(outside);
    expect(created).toEqual([]);
  });

  it('creates missing parents and replaces a file or a foreign link in their way, outside untouched', async () => {
    for (const rel of ['a/b/c/d/e', 'file/x', 'out/secret']) {
      await withLoc(rel, 'create', (loc) => fs.writeFileSync(loc!.at, rel));
    }
    expect(created).toEqual(['a/b/c', 'a/b/c/d', 'file', 'out']);
    expect(removed).toEqual(['file', 'out']);
    expect(foreign).toEqual(['out']);
    expect(fs.readFileSync(path.join(root, 'out/secret'), 'utf8')).toBe('out/secret');
    expect(fs.readFileSync(path.join(outside, 'secret'), 'utf8')).toBe('outside');
  });

  it('refuses to create below a link the active itself made (a bug or an attack), and treats it as absent otherwise', async () => {
    activeLinks.add('out');
    const err = await refusalOf(guard.locate('write', 'data', 'out/x', 3, 'create'));
    expect(err.code).toBe('TANDEM_ERR_PATH_OUTSIDE_ROOT');
    expect(err.message).toBe('apply write data/out/x: parent "out" is a symbolic link');
    expect(err.details).toEqual({ seq: 3, root: 'data', path: 'out/x' });
    expect((await refusalOf(guard.locate('rename', 'data', 'out/x', 3, 'probe'))).code).toBe('TANDEM_ERR_PATH_OUTSIDE_ROOT');
    expect(await withLoc('out/secret', 'existing', (l) => l)).toBeUndefined();
    expect(fs.readdirSync(outside)).toEqual(['secret']);
  });

  it('sees a directory swapped for a link between two records: no answer is kept', async () => {
    await withLoc('a/b/x', 'existing', (loc) => expect(loc).toBeDefined());
    fs.rmSync(path.join(root, 'a', 'b'), { recursive: true });
    fs.symlinkSync(outside, path.join(root, 'a', 'b'));
    expect(await withLoc('a/b/secret', 'existing', (l) => l)).toBeUndefined();
    expect(foreign).toEqual(['a/b']);
  });

  describe('the parent of the record before, kept open (prev)', () => {
    const opened: number[] = [];
    afterEach(() => {
      for (const fd of opened.splice(0)) fs.closeSync(fd);
    });
    const first = async () => {
      const loc = (await guard.locate('write', 'data', 'a/b/one', 3, 'create'))!;
      opened.push(loc.dir);
      return loc;
    };
    const next = async (prev: Loc, rel: string) => {
      const loc = await guard.locate('write', 'data', rel, 4, 'create', prev);
      if (loc !== undefined && loc.dir !== prev.dir) opened.push(loc.dir);
      return loc;
    };

    it('is used again for the next path of the same directory while that directory is still where it was', async () => {
      const prev = await first();
      const loc = (await next(prev, 'a/b/two'))!;
      expect(loc.dir).toBe(prev.dir);
      fs.writeFileSync(loc.at, 'two', { flag: 'wx' });
      expect(fs.readFileSync(path.join(root, 'a/b/two'), 'utf8')).toBe('two');
      // Another directory: a walk of its own.
      const other = (await next(loc, 'a/three'))!;
      expect(other.dir).not.toBe(prev.dir);
    });

    it('is not used once the directory was moved and a link put in its place: nothing is written outside, nor into the moved directory', async () => {
      const prev = await first();
      fs.renameSync(path.join(root, 'a', 'b'), path.join(root, 'a', 'moved'));
      fs.symlinkSync(outside, path.join(root, 'a', 'b'));
      const loc = (await next(prev, 'a/b/two'))!;
      expect(loc.dir).not.toBe(prev.dir);
      fs.writeFileSync(loc.at, 'two', { flag: 'wx' });
      // The foreign link was replaced by a directory of the tree's own.
      expect(foreign).toEqual(['a/b']);
      expect(fs.readFileSync(path.join(root, 'a/b/two'), 'utf8')).toBe('two');
      expect(fs.readdirSync(outside)).toEqual(['secret']);
      expect(fs.readdirSync(path.join(root, 'a', 'moved'))).toEqual([]);
    });

    it('is not used once the directory was removed and made again', async () => {
      const prev = await first();
      fs.rmdirSync(path.join(root, 'a', 'b'));
      fs.mkdirSync(path.join(root, 'a', 'b'));
      const loc = (await next(prev, 'a/b/two'))!;
      expect(loc.dir).not.toBe(prev.dir);
      fs.writeFileSync(loc.at, 'two', { flag: 'wx' });
      expect(fs.readFileSync(path.join(root, 'a/b/two'), 'utf8')).toBe('two');
    });
  });

  it('gives up with TANDEM_ERR_PATH_SWAPPED on a component that keeps coming back as a link', async () => {
    reswap = (rel) => fs.symlinkSync(outside, path.join(root, rel));
    const err = await refusalOf(guard.locate('write', 'data', 'out/secret', 9, 'create'));
    expect(err.code).toBe('TANDEM_ERR_PATH_SWAPPED');
    expect(err.details).toEqual({ seq: 9, root: 'data', path: 'out/secret', component: 'out' });
    expect(fs.readFileSync(path.join(outside, 'secret'), 'utf8')).toBe('outside');
  });

  it('applies the lexical checks before touching the disk', async () => {
    const err = await refusalOf(guard.locate('write', 'data', '../outside/x', 1, 'create'));
    expect(err.code).toBe('TANDEM_ERR_PATH_OUTSIDE_ROOT');
    expect(created).toEqual([]);
  });
});
