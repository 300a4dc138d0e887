import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { initHash } from '../../../shared/hash.ts';
import { TandemError } from '../../../shared/errors.ts';
import { silentLogger, type Logger } from '../../../shared/log.ts';
import { FakeClock } from '../../../shared/clock.ts';
import { compressWrite, type DataRecord, type WriteRecord } from '../../../shared/protocol/index.ts';
import { Manifest } from '../../../agent/manifest/index.ts';
import { Applier, MAX_OPEN_FILES, type ApplierSeams } from '../../../agent/apply/applier.ts';
import { ROOT, RecordBuilder, bytes, manifestDifferences, memoryLogger, snapshot, tmpDir } from './helpers.ts';

const BS = 4096;
const T0 = 1_700_000_000_000;

let base: string;
let rootDir: string;
let outside: string;

beforeAll(async () => {
  await initHash();
});

beforeEach(() => {
  base = tmpDir();
  rootDir = path.join(base, 'root');
  outside = path.join(base, 'outside');
  fs.mkdirSync(rootDir);
  fs.mkdirSync(outside);
});

afterEach(() => {
  fs.rmSync(base, { recursive: true, force: true });
});

interface Setup {
  applier: Applier;
  manifest: Manifest;
  durables: number[];
  run: (records: DataRecord[]) => Promise<void>;
}

async function setup(opts: { dir?: string; seams?: ApplierSeams; log?: Logger; roots?: { name: string; path: string }[] } = {}): Promise<Setup> {
  const roots = opts.roots ?? [{ name: ROOT, path: opts.dir ?? rootDir }];
  const manifest = new Manifest(roots.map((r) => r.name));
  const applier = new Applier({
    roots: roots.map((r) => ({ ...r, exclude: [] })),
    manifest,
    blockSize: BS,
    log: opts.log ?? silentLogger(),
    clock: new FakeClock(T0),
    ...(opts.seams === undefined ? {} : { seams: opts.seams }),
  });
  await applier.init();
  const durables: number[] = [];
  return {
    applier,
    manifest,
    durables,
    run: async (records) => {
      await applier.apply(records, async (seq) => {
        durables.push(seq);
      });
    },
  };
}

async function caught(p: Promise<unknown>): Promise<TandemError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof TandemError) return err;
    throw err;
  }
  throw new Error('expected a TandemError');
}

// ---- starting states ---------------------------------------------------------------------

type StartState = 'missing' | 'file' | 'dir' | 'symlink';
const STATES: StartState[] = ['missing', 'file', 'dir', 'symlink'];

/** Puts `x` in the given state; the symlink points at a file outside the root, which must survive. */
function makeState(state: StartState): void {
  const x = path.join(rootDir, 'x');
  fs.writeFileSync(path.join(outside, 'secret'), 'outside');
  if (state === 'file') fs.writeFileSync(x, 'old content', { mode: 0o640 });
  if (state === 'dir') {
    fs.mkdirSync(path.join(x, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(x, 'child'), 'child');
    fs.writeFileSync(path.join(x, 'sub', 'deep'), 'deep');
  }
  if (state === 'symlink') fs.symlinkSync(path.join(outside, 'secret'), x);
}

function outsideUntouched(): void {
  expect(fs.readdirSync(outside)).toEqual(['secret']);
  expect(fs.readFileSync(path.join(outside, 'secret'), 'utf8')).toBe('outside');
  const st = fs.statSync(path.join(outside, 'secret'));
  expect(st.mode & 0o7777).toBe(0o644 & ~currentUmask());
}

let umaskCache: number | undefined;
function currentUmask(): number {
  if (umaskCache === undefined) {
    const probe = path.join(base, 'umask-probe');
    fs.writeFileSync(probe, '', { mode: 0o777 });
    umaskCache = ~fs.statSync(probe).mode & 0o777;
    fs.rmSync(probe);
  }
  return umaskCache;
}

const x = () => path.join(rootDir, 'x');

describe('setters from every starting state', () => {
  for (const state of STATES) {
    it(`mkdir makes a directory with the mode, from ${state}`, async () => {
      makeState(state);
      const { run } = await setup();
      const b = new RecordBuilder();
      b.mkdir('x', 0o2750);
      await run(b.records);
      const st = fs.lstatSync(x());
      expect(st.isDirectory()).toBe(true);
      expect(st.mode & 0o7777).toBe(0o2750);
      // A directory that was there keeps its content: mkdir only says "a directory with this mode".
      if (state === 'dir') expect(fs.readFileSync(path.join(x(), 'sub', 'deep'), 'utf8')).toBe('deep');
      else expect(fs.readdirSync(x())).toEqual([]);
      outsideUntouched();
    });

    it(`file makes a regular file of exactly the size, keeping the bytes below it, from ${state}`, async () => {
      makeState(state);
      const { run } = await setup();
      const b = new RecordBuilder();
      b.file('x', 5);
      await run(b.records);
      const st = fs.lstatSync(x());
      expect(st.isFile()).toBe(true);
      expect(fs.readFileSync(x())).toEqual(state === 'file' ? Buffer.from('old c') : Buffer.alloc(5));
      outsideUntouched();
    });

    it(`file grows a file with zeros, from ${state}`, async () => {
      makeState(state);
      const { run } = await setup();
      const b = new RecordBuilder();
      b.file('x', 16);
      await run(b.records);
      const want = Buffer.alloc(16);
      if (state === 'file') want.write('old content');
      expect(fs.readFileSync(x())).toEqual(want);
      outsideUntouched();
    });

    it(`write puts the bytes at the offset of a regular file, never through a link, from ${state}`, async () => {
      makeState(state);
      const { run } = await setup();
      const b = new RecordBuilder();
      b.write('x', 2, 'AB');
      await run(b.records);
      expect(fs.lstatSync(x()).isFile()).toBe(true);
      expect(fs.readFileSync(x())).toEqual(state === 'file' ? Buffer.from('olABcontent') : Buffer.from('\0\0AB'));
      outsideUntouched();
    });

    it(`symlink makes a link to the target, from ${state}`, async () => {
      makeState(state);
      const { run } = await setup();
      const b = new RecordBuilder();
      b.symlink('x', '../anywhere/at/all');
      await run(b.records);
      expect(fs.lstatSync(x()).isSymbolicLink()).toBe(true);
      expect(fs.readlinkSync(x())).toBe('../anywhere/at/all');
      outsideUntouched();
    });

    for (const op of ['unlink', 'rmdir'] as const) {
      it(`${op} makes the path absent, from ${state}`, async () => {
        makeState(state);
        const { run } = await setup();
        const b = new RecordBuilder();
        b[op]('x');
        await run(b.records);
        expect(fs.existsSync(x())).toBe(false);
        expect(() => fs.lstatSync(x())).toThrow(/ENOENT/);
        outsideUntouched();
      });
    }

    it(`meta sets the mode and mtime (only lutimes on a link), from ${state}`, async () => {
      makeState(state);
      const { run } = await setup();
      const b = new RecordBuilder();
      const mtimeMs = 1_600_000_000_123.456;
      b.meta('x', 0o100600, mtimeMs);
      await run(b.records);
      if (state === 'missing') {
        expect(fs.existsSync(x())).toBe(false);
        return;
      }
      const st = fs.lstatSync(x());
      // A double number of seconds keeps sub-millisecond precision (a Date would round to ms).
      expect(Math.abs(st.mtimeMs - mtimeMs)).toBeLessThan(0.001);
      if (state === 'symlink') {
        const target = fs.statSync(path.join(outside, 'secret'));
        expect(Math.abs(target.mtimeMs - mtimeMs)).toBeGreaterThan(1000);
      } else expect(st.mode & 0o7777).toBe(0o600);
      outsideUntouched();
    });
  }

  it('a new file is 0600 until its meta, also where the umask would narrow that', async () => {
    const { run, manifest } = await setup();
    const b = new RecordBuilder();
    b.content('wide', 'a', BS);
    await run(b.records);
    expect(fs.statSync(path.join(rootDir, 'wide')).mode & 0o7777).toBe(0o600);
    const old = process.umask(0o277);
    try {
      const c = new RecordBuilder(100);
      c.content('narrowed', 'b', BS);
      await run(c.records);
    } finally {
      process.umask(old);
    }
    expect(fs.statSync(path.join(rootDir, 'narrowed')).mode & 0o7777).toBe(0o600);
    expect(manifest.get(ROOT, 'narrowed')).toMatchObject({ mode: 0o600 });
  });

  it('a new file gets its size from the writes that follow, or from a truncate when they end short of it or it was written before', async () => {
    const { run, manifest } = await setup();
    const b = new RecordBuilder();
    b.file('full', 5000);
    b.write('full', 0, Buffer.alloc(4096, 1));
    b.write('full', 4096, Buffer.alloc(904, 2));
    // A tail that is a hole: no write reaches the size.
    b.file('tail', 3 * BS);
    b.write('tail', 0, Buffer.alloc(BS, 3));
    // Created and written in this batch, then made smaller by a later file record.
    b.file('again', 2 * BS);
    b.write('again', 0, Buffer.alloc(2 * BS, 4));
    b.file('again', 100);
    b.write('again', 0, Buffer.alloc(100, 5));
    b.file('empty', 0);
    await run(b.records);
    const size = (rel: string) => fs.statSync(path.join(rootDir, rel)).size;
    expect([size('full'), size('tail'), size('again'), size('empty')]).toEqual([5000, 3 * BS, 100, 0]);
    expect(fs.readFileSync(path.join(rootDir, 'tail')).subarray(BS).equals(Buffer.alloc(2 * BS))).toBe(true);
    expect(fs.readFileSync(path.join(rootDir, 'again')).equals(Buffer.alloc(100, 5))).toBe(true);
    expect(manifestDifferences(manifest, ROOT, rootDir, BS)).toEqual([]);
  });

  it('a file changed in place gets the record\'s size and bytes: appended to, overwritten at its size, shrunk, grown with zeros, or with a hole for a tail', async () => {
    const { run, manifest } = await setup();
    const old = (n: number, v: number) => Buffer.alloc(n, v);
    const first = new RecordBuilder();
    first.content('grow', old(5000, 1), BS);
    first.content('same', old(2 * BS, 2), BS);
    first.content('shrink', old(2 * BS, 3), BS);
    first.content('tail', old(BS, 4), BS);
    first.content('gap', old(100, 5), BS);
    for (const p of ['grow', 'same', 'shrink', 'tail', 'gap']) first.meta(p, 0o644, T0);
    await run(first.records);
    // As capture sends a change: the file's new size, the blocks that changed, its meta.
    const b = new RecordBuilder(first.records.length + 1);
    b.file('grow', 9000);
    b.write('grow', BS, old(BS, 6));
    b.write('grow', 2 * BS, old(9000 - 2 * BS, 6));
    b.file('same', 2 * BS);
    b.write('same', 0, old(BS, 7));
    b.file('shrink', 100);
    b.write('shrink', 0, old(100, 8));
    b.file('tail', 3 * BS);
    b.write('tail', 0, old(BS, 9));
    // Its first block changed too (it reaches the block's end now, in zeros).
    b.file('gap', 2 * BS);
    b.write('gap', 0, Buffer.concat([old(100, 5), old(BS - 100, 0)]));
    b.write('gap', BS, old(BS, 10));
    for (const p of ['grow', 'same', 'shrink', 'tail', 'gap']) b.meta(p, 0o644, T0 + 1000);
    await run(b.records);
    const read = (rel: string) => fs.readFileSync(path.join(rootDir, rel));
    expect(read('grow').equals(Buffer.concat([old(BS, 1), old(9000 - BS, 6)]))).toBe(true);
    expect(read('same').equals(Buffer.concat([old(BS, 7), old(BS, 2)]))).toBe(true);
    expect(read('shrink').equals(old(100, 8))).toBe(true);
    expect(read('tail').equals(Buffer.concat([old(BS, 9), old(2 * BS, 0)]))).toBe(true);
    expect(read('gap').equals(Buffer.concat([old(100, 5), old(BS - 100, 0), old(BS, 10)]))).toBe(true);
    expect(manifestDifferences(manifest, ROOT, rootDir, BS)).toEqual([]);
  });

  it('a file changed in place gets the mode of each meta: the same one, a new one, and two in one batch', async () => {
    const { run, manifest } = await setup();
    const first = new RecordBuilder();
    for (const p of ['kept', 'changed', 'twice', 'alone']) {
      first.content(p, 'old', BS);
      first.meta(p, 0o644, T0);
    }
    await run(first.records);
    const b = new RecordBuilder(first.records.length + 1);
    for (const p of ['kept', 'changed', 'twice']) {
      b.file(p, 3);
      b.write(p, 0, 'new');
    }
    b.meta('kept', 0o644, T0 + 1000);
    b.meta('changed', 0o640, T0 + 1000);
    b.meta('twice', 0o600, T0 + 1000);
    b.meta('twice', 0o604, T0 + 2000);
    // A meta alone (chmod on the active): the file is opened by the meta's own walk.
    b.meta('alone', 0o400, T0 + 1000);
    await run(b.records);
    const mode = (rel: string) => (fs.statSync(path.join(rootDir, rel)).mode & 0o7777).toString(8);
    expect(['kept', 'changed', 'twice', 'alone'].map(mode)).toEqual(['644', '640', '604', '400']);
    expect(fs.readFileSync(path.join(rootDir, 'twice'), 'utf8')).toBe('new');
    expect(manifestDifferences(manifest, ROOT, rootDir, BS)).toEqual([]);
  });

  it('write replaces a fifo without blocking on it', async () => {
    execFileSync('mkfifo', [x()]);
    const { run } = await setup();
    const b = new RecordBuilder();
    b.file('x', 3);
    b.write('x', 0, 'abc');
    await run(b.records);
    expect(fs.lstatSync(x()).isFile()).toBe(true);
    expect(fs.readFileSync(x(), 'utf8')).toBe('abc');
  });

  it('creates missing parents as 0755 directories and replaces a regular file in the way', async () => {
    fs.writeFileSync(path.join(rootDir, 'a'), 'I am in the way');
    const { run, manifest } = await setup();
    const b = new RecordBuilder();
    b.content('a/b/c/f', 'deep file', BS);
    b.symlink('l/m/link', 'a/b');
    await run(b.records);
    expect(fs.readFileSync(path.join(rootDir, 'a/b/c/f'), 'utf8')).toBe('deep file');
    for (const d of ['a', 'a/b', 'a/b/c', 'l', 'l/m']) {
      const st = fs.lstatSync(path.join(rootDir, d));
      expect(st.isDirectory()).toBe(true);
      expect(st.mode & 0o7777).toBe(0o755);
    }
    expect(manifestDifferences(manifest, ROOT, rootDir, BS)).toEqual([]);
  });

  it('keeps a symlink whose target is already right, and replaces one whose target differs', async () => {
    fs.symlinkSync('same', x());
    fs.symlinkSync('old', path.join(rootDir, 'y'));
    const inoBefore = fs.lstatSync(x()).ino;
    const { run } = await setup();
    const b = new RecordBuilder();
    b.symlink('x', 'same');
    b.symlink('y', 'new');
    await run(b.records);
    expect(fs.lstatSync(x()).ino).toBe(inoBefore);
    expect(fs.readlinkSync(path.join(rootDir, 'y'))).toBe('new');
  });
});

describe('rename', () => {
  const src = () => path.join(rootDir, 'src');
  const dst = () => path.join(rootDir, 'dst');

  function make(p: string, kind: StartState): void {
    if (kind === 'file') fs.writeFileSync(p, `file ${path.basename(p)}`);
    if (kind === 'dir') {
      fs.mkdirSync(path.join(p, 'inner'), { recursive: true });
      fs.writeFileSync(path.join(p, 'inner', 'f'), `in ${path.basename(p)}`);
    }
    if (kind === 'symlink') fs.symlinkSync(`target-of-${path.basename(p)}`, p);
  }

  for (const from of ['file', 'dir', 'symlink'] as const) {
    for (const to of STATES) {
      it(`moves a ${from} over ${to === 'missing' ? 'nothing' : `a ${to}`}, replacing it`, async () => {
        make(src(), from);
        make(dst(), to);
        const srcIno = fs.lstatSync(src()).ino;
        const { run } = await setup();
        const b = new RecordBuilder();
        b.rename('src', 'dst');
        await run(b.records);
        expect(fs.existsSync(src())).toBe(false);
        const st = fs.lstatSync(dst());
        expect(st.ino).toBe(srcIno);
        if (from === 'file') expect(fs.readFileSync(dst(), 'utf8')).toBe('file src');
        if (from === 'dir') expect(fs.readdirSync(dst(), { recursive: true }).sort()).toEqual(['inner', 'inner/f']);
        if (from === 'symlink') expect(fs.readlinkSync(dst())).toBe('target-of-src');
      });
    }
  }

  it('creates the missing parents of the target', async () => {
    make(src(), 'file');
    const { run } = await setup();
    const b = new RecordBuilder();
    b.rename('src', 'p/q/dst');
    await run(b.records);
    expect(fs.readFileSync(path.join(rootDir, 'p/q/dst'), 'utf8')).toBe('file src');
  });

  it('skips a rename whose source is gone and whose target exists (it already happened)', async () => {
    make(dst(), 'file');
    const { log, lines } = memoryLogger();
    const { run, durables } = await setup({ log });
    const b = new RecordBuilder(10);
    b.rename('src', 'dst');
    await run(b.records);
    expect(fs.readFileSync(dst(), 'utf8')).toBe('file dst');
    expect(durables).toEqual([10]);
    expect(lines.filter((l) => l.level === 40)).toEqual([]);
  });

  it("logs 'rename source missing' when neither source nor target exists, and goes on", async () => {
    const { log, lines } = memoryLogger();
    const { run, durables } = await setup({ log });
    const b = new RecordBuilder();
    b.rename('src', 'dst');
    b.content('after', 'still applied', BS);
    await run(b.records);
    const warn = lines.find((l) => l.msg === 'rename source missing');
    expect(warn).toMatchObject({ level: 40, component: 'apply', root: ROOT, path: 'src', to: 'dst', seq: 1 });
    expect(fs.readFileSync(path.join(rootDir, 'after'), 'utf8')).toBe('still applied');
    expect(durables).toEqual([1, 3]);
  });

  it('refuses to move a directory into itself', async () => {
    fs.mkdirSync(path.join(rootDir, 'd'));
    const { run } = await setup();
    const b = new RecordBuilder();
    b.rename('d', 'd/e');
    const err = await caught(run(b.records));
    expect(err.code).toBe('TANDEM_ERR_APPLY_FAILED');
    expect(err.details.errno).toBe('EINVAL');
    expect(fs.lstatSync(path.join(rootDir, 'd')).isDirectory()).toBe(true);
  });
});

describe('durability and the rename barrier', () => {
  function renameBatch(): RecordBuilder {
    const b = new RecordBuilder();
    b.file('a', 5); // 1
    b.write('a', 0, 'first'); // 2
    b.meta('a', 0o644, T0 - 10_000); // 3
    b.rename('a', 'b'); // 4
    b.file('a', 6); // 5
    b.write('a', 0, 'second'); // 6
    b.meta('a', 0o600, T0 - 5_000); // 7
    return b;
  }

  it('reports durable before and after each rename and once at the end, with the data on disk', async () => {
    const seen: Record<number, { a: string | null; b: string | null }> = {};
    const { applier } = await setup();
    const read = (p: string) => (fs.existsSync(path.join(rootDir, p)) ? fs.readFileSync(path.join(rootDir, p), 'utf8') : null);
    const calls: number[] = [];
    await applier.apply(renameBatch().records, async (seq) => {
      calls.push(seq);
      seen[seq] = { a: read('a'), b: read('b') };
    });
    expect(calls).toEqual([3, 4, 7]);
    expect(seen[3]).toEqual({ a: 'first', b: null });
    expect(seen[4]).toEqual({ a: null, b: 'first' });
    expect(seen[7]).toEqual({ a: 'second', b: 'first' });
  });

  it('fsyncs every written file and every changed directory before it reports them durable', async () => {
    const synced = new Set<string>();
    const seams: ApplierSeams = {
      fsync: async (fd) => {
        synced.add(fs.readlinkSync(`/proc/self/fd/${fd}`));
        fs.fsyncSync(fd);
      },
    };
    const { applier } = await setup({ seams });
    const realRoot = fs.realpathSync(rootDir);
    const checks: [number, string[]][] = [];
    const b = new RecordBuilder();
    b.content('d/f', 'data', BS); // 1 file, 2 write (d is created)
    b.rename('d/f', 'e/g'); // 3
    b.mkdir('m'); // 4
    b.unlink('e/g'); // 5
    await applier.apply(b.records, async (seq) => {
      checks.push([seq, [...synced].sort()]);
      synced.clear();
    });
    const r = (p: string) => (p === '' ? realRoot : `${realRoot}/${p}`);
    expect(checks.map((c) => c[0])).toEqual([2, 3, 5]);
    expect(checks[0]![1]).toEqual(expect.arrayContaining([r('d/f'), r('d'), r('')]));
    // Both parents of the rename, and the root where the target's parent "e" was created.
    expect(checks[1]![1]).toEqual(expect.arrayContaining([r('d'), r('e'), r('')]));
    expect(checks[2]![1]).toEqual(expect.arrayContaining([r(''), r('e')]));
  });

  it('after a failed apply, the redo fsyncs the directories that the failed attempt created', async () => {
    const synced = new Set<string>();
    let crash = false;
    const seams: ApplierSeams = {
      beforeRecord: (r) => {
        if (crash && r.seq === 2) throw Object.assign(new Error('simulated crash'), { code: 'EIO' });
      },
      fsync: async (fd) => {
        synced.add(fs.readlinkSync(`/proc/self/fd/${fd}`));
        fs.fsyncSync(fd);
      },
    };
    const { run, durables } = await setup({ seams });
    const realRoot = fs.realpathSync(rootDir);
    const b = new RecordBuilder();
    b.content('a/b/f', 'data', BS);
    await run(b.records); // the first apply after start is a redo as far as the applier knows
    synced.clear();
    const b2 = new RecordBuilder(1);
    b2.content('x/y/g', 'data', BS);
    crash = true;
    await expect(run(b2.records)).rejects.toThrow(/simulated crash/);
    expect(fs.existsSync(path.join(rootDir, 'x/y/g'))).toBe(true); // created, never synced
    crash = false;
    synced.clear();
    await run(b2.records);
    expect(durables.at(-1)).toBe(2);
    expect([...synced].sort()).toEqual([realRoot, `${realRoot}/x`, `${realRoot}/x/y`, `${realRoot}/x/y/g`]);
  });

  it('once an apply succeeded, only the directories that really changed are synced', async () => {
    const synced = new Set<string>();
    const { run } = await setup({
      seams: {
        fsync: async (fd) => {
          synced.add(fs.readlinkSync(`/proc/self/fd/${fd}`));
          fs.fsyncSync(fd);
        },
      },
    });
    const realRoot = fs.realpathSync(rootDir);
    const b = new RecordBuilder();
    b.content('a/b/f', 'data', BS);
    await run(b.records);
    synced.clear();
    const b2 = new RecordBuilder(3);
    b2.write('a/b/f', 0, 'DATA');
    b2.content('a/b/new', 'n', BS);
    await run(b2.records);
    expect([...synced].sort()).toEqual([`${realRoot}/a/b`, `${realRoot}/a/b/f`, `${realRoot}/a/b/new`]);
  });

  it('never reports a seq twice when a batch ends with a rename, nor anything for an empty batch', async () => {
    fs.writeFileSync(path.join(rootDir, 'a'), 'a');
    const { run, durables } = await setup();
    const b = new RecordBuilder();
    b.mkdir('d'); // 1
    b.rename('a', 'd/a'); // 2
    await run(b.records);
    await run([]);
    expect(durables).toEqual([1, 2]);
  });

  it('counts sync-begin and sync-end for durable', async () => {
    const { run, durables } = await setup();
    const b = new RecordBuilder();
    b.syncBegin();
    b.content('f', 'x', BS);
    b.syncEnd();
    await run(b.records);
    expect(durables).toEqual([4]);
  });

  it('re-applying a whole batch without renames gives the same tree', async () => {
    const b = new RecordBuilder();
    b.mkdir('d', 0o750);
    b.content('d/f', bytes(3 * BS + 100, 1), BS);
    b.meta('d/f', 0o640, T0 - 1000);
    b.symlink('d/l', 'f');
    b.content('g', 'gone soon', BS);
    b.unlink('g');
    const h = bytes(BS * 2, 2);
    b.content('h', h, BS);
    b.file('h', BS + 10);
    // As capture does: the shortened last block changed, so its bytes travel again.
    b.write('h', BS, h.subarray(BS, BS + 10));
    b.meta('h', 0o600, T0 - 2000);
    b.mkdir('e');
    b.content('e/x', 'x', BS);
    b.rmdir('e');
    const { run, manifest } = await setup();
    await run(b.records);
    const once = snapshot(rootDir);
    await run(b.records);
    expect(snapshot(rootDir)).toEqual(once);
    await run(b.records.slice(5));
    expect(snapshot(rootDir)).toEqual(once);
    expect(manifestDifferences(manifest, ROOT, rootDir, BS)).toEqual([]);
  });

  it('redo from the last durable mark after a rename re-created its source gives the same tree', async () => {
    const { run, durables, manifest } = await setup();
    await run(renameBatch().records);
    const clean = snapshot(rootDir);
    const lastBeforeEnd = durables.at(-2)!;
    await run(renameBatch().records.filter((r) => r.seq > lastBeforeEnd));
    expect(snapshot(rootDir)).toEqual(clean);
    expect(manifestDifferences(manifest, ROOT, rootDir, BS)).toEqual([]);
  });

  it('redo of a rename that happened before a crash but was not reported skips it', async () => {
    const records = renameBatch().records;
    const clean = await (async () => {
      const dir = path.join(base, 'clean');
      fs.mkdirSync(dir);
      const s = await setup({ dir });
      await s.run(records);
      return snapshot(dir);
    })();
    const { run } = await setup();
    await run(records.slice(0, 3));
    fs.renameSync(path.join(rootDir, 'a'), path.join(rootDir, 'b')); // the crash came right after rename(2)
    await run(records.slice(3));
    expect(snapshot(rootDir)).toEqual(clean);
  });
});

/** A batch that exercises every record kind, with renames in the middle. Every file ends with a meta. */
function richBatch(): DataRecord[] {
  const b = new RecordBuilder();
  b.syncBegin();
  b.mkdir('d', 0o750);
  b.content('d/f1', bytes(2 * BS + 7, 11), BS);
  b.meta('d/f1', 0o640, T0 - 9000);
  b.symlink('d/l', 'f1');
  b.content('g', bytes(BS, 12), BS);
  b.meta('g', 0o600, T0 - 8000);
  b.rename('g', 'd/g2');
  b.content('g', 'a new g', BS);
  b.meta('g', 0o644, T0 - 7000);
  b.mkdir('e');
  b.content('e/old', 'old', BS);
  b.meta('e/old', 0o644, T0 - 6000);
  b.rename('d', 'e'); // a directory over a directory with content
  b.unlink('e/l');
  b.content('h', bytes(3 * BS, 13), BS);
  b.write('h', BS, bytes(BS, 14));
  b.file('h', 2 * BS);
  b.meta('h', 0o644, T0 - 5000);
  // A write to the rename's target just before it: a redo that started before the rename, once
  // it happened, would write into the moved file. The barrier is what prevents that.
  b.write('e/f1', 0, 'written just before it is replaced');
  b.rename('h', 'e/f1'); // a file over a file
  b.mkdir('k/l/m');
  b.content('k/l/m/n', 'nested', BS);
  b.meta('k/l/m/n', 0o644, T0 - 4000);
  b.rmdir('k/l');
  b.symlink('s', 'e');
  b.rename('s', 'e/s');
  b.syncEnd();
  return b.records;
}

describe('crash and redo', () => {
  it('a crash at any record, then a redo from the last durable seq, ends in the clean tree', async () => {
    const records = richBatch();
    const cleanDir = path.join(base, 'clean');
    fs.mkdirSync(cleanDir);
    const clean = await setup({ dir: cleanDir });
    await clean.run(records);
    const want = snapshot(cleanDir);
    expect(manifestDifferences(clean.manifest, ROOT, cleanDir, BS)).toEqual([]);

    for (let k = 0; k < records.length; k++) {
      const dir = path.join(base, `crash-${k}`);
      fs.mkdirSync(dir);
      let armed = true;
      const crashAt = records[k]!.seq;
      const s = await setup({
        dir,
        seams: {
          beforeRecord: (r) => {
            if (armed && r.seq === crashAt) throw Object.assign(new Error('simulated crash'), { code: 'EIO' });
          },
        },
      });
      await expect(s.run(records)).rejects.toThrow(/simulated crash/);
      armed = false;
      const last = s.durables.at(-1) ?? 0;
      await s.run(records.filter((r) => r.seq > last));
      expect({ k, tree: snapshot(dir) }).toEqual({ k, tree: want });
      expect({ k, diffs: manifestDifferences(s.manifest, ROOT, dir, BS) }).toEqual({ k, diffs: [] });
    }
  });

  it('a crash before a durable report was recorded (right after a rename, too), then a redo, ends in the clean tree', async () => {
    const records = richBatch();
    const cleanDir = path.join(base, 'clean');
    fs.mkdirSync(cleanDir);
    const clean = await setup({ dir: cleanDir });
    await clean.run(records);
    const want = snapshot(cleanDir);

    for (let j = 0; j < clean.durables.length; j++) {
      const dir = path.join(base, `lost-${j}`);
      fs.mkdirSync(dir);
      const s = await setup({ dir });
      const recorded: number[] = [];
      let calls = 0;
      // The caller dies inside its j-th durable call: that report never reaches its log.
      await expect(
        s.applier.apply(records, async (seq) => {
          if (calls++ === j) throw new Error('simulated crash of the caller');
          recorded.push(seq);
        }),
      ).rejects.toThrow(/simulated crash/);
      const last = recorded.at(-1) ?? 0;
      await s.run(records.filter((r) => r.seq > last));
      expect({ j, tree: snapshot(dir) }).toEqual({ j, tree: want });
      expect({ j, diffs: manifestDifferences(s.manifest, ROOT, dir, BS) }).toEqual({ j, diffs: [] });
    }
  });
});

describe('write integrity and coalescing', () => {
  it('refuses a write whose hash does not match, writing nothing of it', async () => {
    const { run, durables } = await setup();
    const b = new RecordBuilder();
    b.write('f', 0, 'good');
    b.write('f', 4, 'evil', true);
    const err = await caught(run(b.records));
    expect(err.code).toBe('TANDEM_ERR_CHECKSUM');
    expect(err.details).toMatchObject({ seq: 2, root: ROOT, path: 'f' });
    expect(fs.readFileSync(path.join(rootDir, 'f'), 'utf8')).toBe('good');
    expect(durables).toEqual([]);
  });

  it('inflates compressed writes (a batch replayed from the receive log) and checks the hash of the inflated block', async () => {
    const { run, manifest } = await setup();
    const text = Buffer.from('compressible line of a log file\n'.repeat(400)).subarray(0, 3 * BS);
    const b = new RecordBuilder();
    b.content('f', text, BS);
    const records = b.records.map((r) => (r.op === 'write' ? compressWrite(r, 6) : r));
    expect(records.filter((r) => r.op === 'write' && r.encoding === 'deflate-raw').length).toBe(3);
    await run(records);
    expect(fs.readFileSync(path.join(rootDir, 'f')).equals(text)).toBe(true);
    expect(manifestDifferences(manifest, ROOT, rootDir, BS)).toEqual([]);
  });

  it('refuses a compressed write that does not inflate, or inflates to bytes that do not match its hash, writing nothing', async () => {
    const { run } = await setup();
    const text = Buffer.from('x'.repeat(BS));
    const b = new RecordBuilder();
    b.write('f', 0, text);
    const good = compressWrite(b.records[0] as WriteRecord, 6);
    expect((await caught(run([{ ...good, data: Buffer.from('not deflate at all, not at all') }]))).code).toBe('TANDEM_ERR_BLOCK_UNDECODABLE');
    const other = compressWrite({ ...(b.records[0] as WriteRecord), data: Buffer.from('y'.repeat(BS)) }, 6);
    expect((await caught(run([other]))).code).toBe('TANDEM_ERR_CHECKSUM');
    expect(fs.existsSync(path.join(rootDir, 'f'))).toBe(false);
  });

  it('refuses a lone bad write without creating the file', async () => {
    const { run } = await setup();
    const b = new RecordBuilder();
    b.write('f', 0, 'evil', true);
    expect((await caught(run(b.records))).code).toBe('TANDEM_ERR_CHECKSUM');
    expect(fs.existsSync(path.join(rootDir, 'f'))).toBe(false);
  });

  it('writes a 4 MiB run of 64 KiB contiguous writes with one writev', async () => {
    const calls: number[] = [];
    const seams: ApplierSeams = {
      writev: (fd, buffers, position) => {
        calls.push(buffers.length);
        return new Promise((resolve, reject) => fs.writev(fd, buffers, position, (err, n) => (err ? reject(err) : resolve(n))));
      },
    };
    const { run } = await setup({ seams });
    const data = bytes(4 << 20, 7);
    const b = new RecordBuilder();
    b.file('big', data.length);
    for (let off = 0; off < data.length; off += 64 << 10) b.write('big', off, data.subarray(off, off + (64 << 10)));
    b.write('other', 0, 'x');
    b.write('big', 0, data.subarray(0, 10)); // not contiguous with the run: its own call
    await run(b.records);
    expect(calls).toEqual([64, 1, 1]);
    expect(fs.readFileSync(path.join(rootDir, 'big')).equals(data)).toBe(true);
  });

  it('keeps at most 64 files open and fsyncs each one it closes early (below the syncfs threshold)', async () => {
    let maxOpen = 0;
    const realRoot = fs.realpathSync(rootDir);
    const countOpen = () => {
      let n = 0;
      for (const fd of fs.readdirSync('/proc/self/fd')) {
        try {
          if (fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${realRoot}/`)) n++;
        } catch {
          // closed meanwhile
        }
      }
      maxOpen = Math.max(maxOpen, n);
    };
    const synced = new Set<string>();
    const { run, manifest } = await setup({
      seams: {
        beforeRecord: countOpen,
        fsync: async (fd) => {
          synced.add(fs.readlinkSync(`/proc/self/fd/${fd}`));
          fs.fsyncSync(fd);
        },
        syncfsAfterFiles: Infinity,
      },
    });
    const b = new RecordBuilder();
    for (let i = 0; i < 150; i++) b.write(`f${i}`, 0, `file ${i}`);
    await run(b.records);
    countOpen();
    expect(maxOpen).toBeLessThanOrEqual(MAX_OPEN_FILES);
    expect(maxOpen).toBeGreaterThan(MAX_OPEN_FILES / 2);
    for (let i = 0; i < 150; i++) expect(synced.has(`${realRoot}/f${i}`)).toBe(true);
    expect(manifestDifferences(manifest, ROOT, rootDir, BS)).toEqual([]);
  });
});

describe('many small files: one syncfs', () => {
  const files = (n: number) => {
    const b = new RecordBuilder();
    for (let i = 0; i < n; i++) b.write(`d${i % 3}/f${i}`, 0, `file ${i}`);
    return b.records;
  };

  /** Seams that run the real fsync and `sync -f`, noting the path of each fsync; `onWhole` sees each syncfs's root first. */
  const recording = (onWhole: (root: string) => void) => {
    const synced: string[] = [];
    const seams = {
      fsync: async (fd: number) => {
        synced.push(fs.readlinkSync(`/proc/self/fd/${fd}`));
        fs.fsyncSync(fd);
      },
      syncfs: async (root: string) => {
        onWhole(root);
        execFileSync('sync', ['-f', root]);
      },
    };
    return { synced, seams };
  };

  it('fsyncs the first 32 files it closes early, then syncs the file system once at the durable point, after every write', async () => {
    const realRoot = fs.realpathSync(rootDir);
    const wholes: { root: string; filesOnDisk: number }[] = [];
    // Every file is written by now (in the page cache): the syncfs covers them all.
    const { synced, seams } = recording((root) => wholes.push({ root, filesOnDisk: ['d0', 'd1', 'd2'].reduce((n, d) => n + fs.readdirSync(path.join(root, d)).length, 0) }));
    const { run, manifest, durables } = await setup({ seams });
    const records = files(300);
    await run(records);
    expect(wholes).toEqual([{ root: realRoot, filesOnDisk: 300 }]);
    // The files evicted first, one fsync each; none of the rest, and no directory: the syncfs covers them.
    expect(synced).toHaveLength(32);
    expect(synced.every((p) => /\/d\d\/f\d+$/.test(p))).toBe(true);
    expect(durables).toEqual([records.at(-1)!.seq]);
    expect(manifestDifferences(manifest, ROOT, rootDir, BS)).toEqual([]);
  });

  it('syncs the file system once for a point of more than 16 dirty files and directories, none closed early; a point of a few fsyncs them', async () => {
    const realRoot = fs.realpathSync(rootDir);
    const wholes: string[] = [];
    const { synced, seams } = recording((root) => wholes.push(root));
    const { run, manifest, durables } = await setup({ seams });
    // 24 files (fewer than MAX_OPEN_FILES: nothing is evicted) in three new directories.
    const many = files(24);
    await run(many);
    expect(wholes).toEqual([realRoot]);
    expect(synced).toEqual([]);
    expect(durables).toEqual([many.at(-1)!.seq]);
    // Three files and their directory: fsynced each, no syncfs.
    const b = new RecordBuilder();
    for (let i = 0; i < 3; i++) b.write(`few${i}`, 0, `few ${i}`);
    await run(b.records);
    expect(wholes).toEqual([realRoot]);
    expect(synced.sort()).toEqual([realRoot, `${realRoot}/few0`, `${realRoot}/few1`, `${realRoot}/few2`]);
    expect(manifestDifferences(manifest, ROOT, rootDir, BS)).toEqual([]);
  });

  it('runs the real `sync -f` when no seam replaces it', async () => {
    const { run, manifest, durables } = await setup();
    const records = files(200);
    await run(records);
    expect(durables).toEqual([records.at(-1)!.seq]);
    expect(manifestDifferences(manifest, ROOT, rootDir, BS)).toEqual([]);
  });

  it('reports nothing durable when the syncfs fails, and a redo from the last durable point completes', async () => {
    let fail = true;
    const { applier, manifest, durables } = await setup({
      seams: {
        syncfs: async () => {
          if (fail) throw Object.assign(new Error('EIO: i/o error, syncfs'), { code: 'EIO' });
        },
      },
    });
    const records = files(200);
    const err = await caught(applier.apply(records, async (seq) => void durables.push(seq)));
    expect(err.code).toBe('TANDEM_ERR_APPLY_FAILED');
    expect(durables).toEqual([]);
    fail = false;
    await applier.apply(records, async (seq) => void durables.push(seq));
    expect(durables).toEqual([records.at(-1)!.seq]);
    expect(manifestDifferences(manifest, ROOT, rootDir, BS)).toEqual([]);
  });

  it('fsyncs every file on its own from the redo on when `sync` cannot be run', async () => {
    let wholeCalls = 0;
    const synced = new Set<string>();
    const { applier, manifest, durables } = await setup({
      seams: {
        syncfs: async () => {
          wholeCalls++;
          throw Object.assign(new Error('spawn /usr/bin/sync ENOENT'), { code: 'ENOENT' });
        },
        fsync: async (fd) => {
          synced.add(fs.readlinkSync(`/proc/self/fd/${fd}`));
          fs.fsyncSync(fd);
        },
      },
    });
    const records = files(200);
    expect((await caught(applier.apply(records, async (seq) => void durables.push(seq)))).code).toBe('TANDEM_ERR_APPLY_FAILED');
    synced.clear();
    await applier.apply(records, async (seq) => void durables.push(seq));
    expect(wholeCalls).toBe(1);
    expect(durables).toEqual([records.at(-1)!.seq]);
    const realRoot = fs.realpathSync(rootDir);
    for (let i = 0; i < 200; i++) expect(synced.has(`${realRoot}/d${i % 3}/f${i}`)).toBe(true);
    expect(manifestDifferences(manifest, ROOT, rootDir, BS)).toEqual([]);
  });
});

describe('file system refusals', () => {
  it('turns ENOSPC from a write into TANDEM_ERR_APPLY_FAILED, and a redo from the last durable seq completes', async () => {
    let full = true;
    let writes = 0;
    const seams: ApplierSeams = {
      writev: (fd, buffers, position) => {
        if (full && ++writes === 3) return Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));
        return new Promise((resolve, reject) => fs.writev(fd, buffers, position, (err, n) => (err ? reject(err) : resolve(n))));
      },
    };
    const { run, durables, manifest } = await setup({ seams });
    const b = new RecordBuilder();
    b.content('a', 'aaa', BS); // 1, 2
    b.rename('a', 'a2'); // 3
    b.content('b', 'bbb', BS); // 4, 5
    b.content('c', 'ccc', BS); // 6, 7: the third write fails
    b.content('d', 'ddd', BS);
    const err = await caught(run(b.records));
    expect(err.code).toBe('TANDEM_ERR_APPLY_FAILED');
    expect(err.details).toMatchObject({ seq: 7, root: ROOT, path: 'c', errno: 'ENOSPC' });
    expect(err.message).toMatch(/^apply write data\/c: ENOSPC/);
    expect(err.hint).toMatch(/free space/);
    expect(durables).toEqual([2, 3]);
    full = false;
    await run(b.records.filter((r) => r.seq > durables.at(-1)!));
    expect(snapshot(rootDir, false).map((e) => [e.path, e.size])).toEqual([
      ['a2', 3],
      ['b', 3],
      ['c', 3],
      ['d', 3],
    ]);
    expect(manifestDifferences(manifest, ROOT, rootDir, BS)).toEqual([]);
  });

  it('goes on creating files while the fsyncs of the files it closed run, and reports nothing durable before they are over', async () => {
    // fsyncs held until released: before, the applier stopped at the first eviction (file 65)
    // until the fsyncs of the 16 files it closed were over.
    const held: (() => void)[] = [];
    const seams: ApplierSeams = {
      fsync: (fd) =>
        new Promise<void>((resolve) => {
          fs.fsyncSync(fd);
          held.push(resolve);
        }),
    };
    const { applier, durables } = await setup({ seams });
    const n = MAX_OPEN_FILES * 3;
    const b = new RecordBuilder();
    for (let i = 0; i < n; i++) b.content(`f${i}`, `file ${i}`, BS);
    const done = applier.apply(b.records, async (seq) => {
      durables.push(seq);
    });
    // Every file is on disk with its content while the first fsyncs are still running.
    // (The last file exists before its bytes are written: wait for its content, not its name.)
    const last = path.join(rootDir, `f${n - 1}`);
    const content = () => (fs.existsSync(last) ? fs.readFileSync(last, 'utf8') : undefined);
    const t0 = Date.now();
    while (content() !== `file ${n - 1}` && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 5));
    expect(content()).toBe(`file ${n - 1}`);
    expect(held.length).toBeGreaterThan(0);
    expect(durables).toEqual([]);
    // Released as they come: only then is the batch reported durable, once, with its last record.
    const release = setInterval(() => held.splice(0).forEach((r) => r()), 2);
    await done;
    clearInterval(release);
    expect(durables).toEqual([2 * n]);
  });

  it('waits at the durable point for the fsyncs of the files it closed early, even when its own are over', async () => {
    // Only the fsyncs of the first eviction (the first EVICT_BATCH calls) are held; every other
    // one, those of the durable point included, runs at once.
    const held: (() => void)[] = [];
    let calls = 0;
    const seams: ApplierSeams = {
      syncfsAfterFiles: Infinity,
      fsync: (fd) => {
        fs.fsyncSync(fd);
        if (calls++ >= 16) return Promise.resolve();
        return new Promise<void>((resolve) => held.push(resolve));
      },
    };
    const { applier, durables } = await setup({ seams });
    const n = MAX_OPEN_FILES * 2;
    const b = new RecordBuilder();
    for (let i = 0; i < n; i++) b.content(`f${i}`, `file ${i}`, BS);
    let finished = false;
    const done = applier
      .apply(b.records, async (seq) => {
        durables.push(seq);
      })
      .finally(() => (finished = true));
    // Every file and the root directory fsynced: the durable point has issued all of its own.
    const t0 = Date.now();
    while (calls < n + 1 && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 5));
    expect(calls).toBe(n + 1);
    expect(held).toHaveLength(16);
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(durables).toEqual([]);
    expect(finished).toBe(false);
    held.splice(0).forEach((r) => r());
    await done;
    expect(durables).toEqual([2 * n]);
  });

  it('fails the apply, reporting nothing durable, when the fsync of a file it closed early fails', async () => {
    let calls = 0;
    const seams: ApplierSeams = {
      fsync: async (fd) => {
        // The first fsync is one of an evicted file (nothing is synced before the first eviction).
        if (calls++ === 0) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
        fs.fsyncSync(fd);
      },
    };
    const { run, durables } = await setup({ seams });
    const b = new RecordBuilder();
    for (let i = 0; i < MAX_OPEN_FILES * 2; i++) b.content(`f${i}`, `file ${i}`, BS);
    const err = await caught(run(b.records));
    expect(err.code).toBe('TANDEM_ERR_APPLY_FAILED');
    expect(err.details).toMatchObject({ errno: 'EIO' });
    expect(durables).toEqual([]);
  });

  it('turns a failed fsync into TANDEM_ERR_APPLY_FAILED without reporting durable', async () => {
    const { run, durables } = await setup({ seams: { fsync: () => Promise.reject(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' })) } });
    const b = new RecordBuilder();
    b.content('a', 'aaa', BS);
    const err = await caught(run(b.records));
    expect(err.code).toBe('TANDEM_ERR_APPLY_FAILED');
    expect(err.details).toMatchObject({ seq: 2, errno: 'EIO' });
    expect(err.hint).toMatch(/I\/O error/);
    expect(durables).toEqual([]);
  });
});

describe('path refusals', () => {
  const cases: [string, Partial<DataRecord> & Record<string, unknown>, RegExp][] = [
    ['a .. segment', { path: '../outside/x' }, /'\.' or '\.\.' segment/],
    ['a .. segment in the middle', { path: 'a/../../outside/x' }, /segment/],
    ['an absolute path', { path: '/etc/passwd' }, /absolute/],
    ['an unknown root', { root: 'nope', path: 'x' }, /unknown root "nope"/],
    ['a NUL byte', { path: 'a\0b' }, /NUL/],
    ['a backslash', { path: 'a\\..\\b' }, /backslash/],
  ];
  for (const [name, patch, reason] of cases) {
    it(`refuses a record with ${name}, touching nothing`, async () => {
      const { run, durables } = await setup();
      const rec = { op: 'file', seq: 1, root: ROOT, path: 'x', size: 3, ...patch } as DataRecord;
      const err = await caught(run([rec]));
      expect(err.code).toBe('TANDEM_ERR_PATH_OUTSIDE_ROOT');
      expect(err.message).toMatch(reason);
      expect(err.hint).toMatch(/nothing was written/);
      expect(durables).toEqual([]);
      expect(fs.readdirSync(outside)).toEqual([]);
      expect(fs.readdirSync(rootDir)).toEqual([]);
    });
  }

  // A link the active never sent, where the records say a directory is: someone on this node
  // put it there. Nothing is read or written through it; a record that creates below it gets
  // the directory back (the passive's tree is Tandem's), one that removes finds nothing there.
  for (const op of ['file', 'write', 'mkdir', 'symlink', 'meta', 'unlink', 'rmdir', 'rename'] as const) {
    it(`never goes through a parent link it did not make for ${op}, and reports it with TANDEM_ERR_PATH_SWAPPED`, async () => {
      fs.symlinkSync(outside, path.join(rootDir, 'escape'));
      fs.mkdirSync(path.join(rootDir, 'real'));
      fs.writeFileSync(path.join(rootDir, 'real', 'f'), 'f');
      if (op === 'meta' || op === 'unlink' || op === 'rmdir' || op === 'rename') fs.writeFileSync(path.join(outside, 'victim'), 'v');
      const before = fs.readdirSync(outside);
      const { run, applier, durables } = await setup();
      const b = new RecordBuilder();
      b.content('first', 'applied', BS);
      if (op === 'file') b.file('escape/victim', 3);
      if (op === 'write') b.write('escape/sub/victim', 0, 'pwned');
      if (op === 'mkdir') b.mkdir('escape/victim');
      if (op === 'symlink') b.symlink('escape/victim', '/etc/passwd');
      if (op === 'meta') b.meta('escape/victim', 0o777, 0);
      if (op === 'unlink') b.unlink('escape/victim');
      if (op === 'rmdir') b.rmdir('escape/victim');
      if (op === 'rename') b.rename('escape/victim', 'stolen');
      b.content('after', 'applied too', BS);
      await run(b.records);
      expect(durables.at(-1)).toBe(b.records.at(-1)!.seq);
      expect(fs.readFileSync(path.join(rootDir, 'after'), 'utf8')).toBe('applied too');
      expect(fs.readdirSync(outside)).toEqual(before);
      if (before.length > 0) {
        expect(fs.readFileSync(path.join(outside, 'victim'), 'utf8')).toBe('v');
        expect(fs.statSync(path.join(outside, 'victim')).mode & 0o777).not.toBe(0o777);
      }
      const creates = op === 'file' || op === 'write' || op === 'mkdir' || op === 'symlink';
      const escape = fs.lstatSync(path.join(rootDir, 'escape'));
      if (creates) {
        expect(escape.isDirectory()).toBe(true);
        const made = fs.lstatSync(path.join(rootDir, op === 'write' ? 'escape/sub/victim' : 'escape/victim'));
        expect(op === 'mkdir' ? made.isDirectory() : op === 'symlink' ? made.isSymbolicLink() : made.isFile()).toBe(true);
      } else expect(fs.readlinkSync(path.join(rootDir, 'escape'))).toBe(outside);
      expect(fs.existsSync(path.join(rootDir, 'stolen'))).toBe(false);
      const notice = applier.noticeList().find((n) => n.code === 'TANDEM_ERR_PATH_SWAPPED');
      expect(notice?.message).toMatch(/"escape" is a symbolic link on this node that the active never sent/);
      expect(notice?.details).toMatchObject({ root: ROOT, component: 'escape' });
    });
  }

  it('writes a file whose parent was a foreign link into the directory that replaces it', async () => {
    fs.symlinkSync(outside, path.join(rootDir, 'escape'));
    const { run } = await setup();
    const b = new RecordBuilder();
    b.content('escape/sub/f', 'inside', BS);
    await run(b.records);
    expect(fs.readFileSync(path.join(rootDir, 'escape/sub/f'), 'utf8')).toBe('inside');
    expect(fs.readdirSync(outside)).toEqual([]);
  });

  it('moves a file under a rename target whose parent was a foreign link inside the root, nothing outside', async () => {
    fs.symlinkSync(outside, path.join(rootDir, 'escape'));
    fs.writeFileSync(path.join(rootDir, 'f'), 'mine');
    const { run } = await setup();
    const b = new RecordBuilder();
    b.rename('f', 'escape/f');
    await run(b.records);
    expect(fs.readdirSync(outside)).toEqual([]);
    expect(fs.readFileSync(path.join(rootDir, 'escape/f'), 'utf8')).toBe('mine');
  });

  it('refuses a rename whose target lies below a link the active itself sent, before the barrier moves anything', async () => {
    fs.writeFileSync(path.join(rootDir, 'f'), 'mine');
    const { run, durables } = await setup();
    const b = new RecordBuilder();
    b.symlink('escape', outside);
    b.rename('f', 'escape/f');
    const err = await caught(run(b.records));
    expect(err.code).toBe('TANDEM_ERR_PATH_OUTSIDE_ROOT');
    expect(err.message).toBe('apply rename data/f: target "escape/f": parent "escape" is a symbolic link');
    expect(fs.readdirSync(outside)).toEqual([]);
    expect(fs.readFileSync(path.join(rootDir, 'f'), 'utf8')).toBe('mine');
    expect(durables).toEqual([]);
  });

  it('refuses a rename to an absolute target', async () => {
    fs.writeFileSync(path.join(rootDir, 'f'), 'mine');
    const { run } = await setup();
    const err = await caught(run([{ op: 'rename', seq: 1, root: ROOT, path: 'f', to: `${outside}/f` }]));
    expect(err.code).toBe('TANDEM_ERR_PATH_OUTSIDE_ROOT');
    expect(err.message).toMatch(/target .*absolute/);
    expect(fs.readdirSync(outside)).toEqual([]);
  });

  it('replaces a foreign parent link even when it points inside the root, writing nothing through it', async () => {
    fs.mkdirSync(path.join(rootDir, 'real'));
    fs.symlinkSync('real', path.join(rootDir, 'alias'));
    const { run } = await setup();
    const b = new RecordBuilder();
    b.write('alias/f', 0, 'x');
    await run(b.records);
    expect(fs.readdirSync(path.join(rootDir, 'real'))).toEqual([]);
    expect(fs.lstatSync(path.join(rootDir, 'alias')).isDirectory()).toBe(true);
  });

  it('skips a record whose parent keeps being swapped back to a link, reports it, and applies the rest', async () => {
    let swaps = 0;
    const { run, applier, durables } = await setup({
      seams: {
        // Someone on this node puts the link back each time the applier replaced it.
        inTheWayRemoved: (_root, rel) => {
          if (rel !== 'd') return;
          swaps++;
          fs.symlinkSync(outside, path.join(rootDir, 'd'));
        },
      },
    });
    fs.symlinkSync(outside, path.join(rootDir, 'd'));
    const b = new RecordBuilder();
    b.content('d/f', 'never outside', BS);
    b.content('g', 'applied', BS);
    await run(b.records);
    expect(swaps).toBeGreaterThan(1);
    expect(fs.readdirSync(outside)).toEqual([]);
    expect(fs.readFileSync(path.join(rootDir, 'g'), 'utf8')).toBe('applied');
    expect(durables.at(-1)).toBe(b.records.at(-1)!.seq);
    const notice = applier.noticeList().find((n) => n.message.includes('keeps changing'));
    expect(notice).toMatchObject({ code: 'TANDEM_ERR_PATH_SWAPPED', details: { component: 'd' } });
  });

  it('sees a directory replaced by a symlink within the same batch', async () => {
    const { run } = await setup();
    const b = new RecordBuilder();
    b.content('d/f', 'inside', BS);
    b.symlink('d', outside);
    b.write('d/f', 0, 'pwned');
    const err = await caught(run(b.records));
    expect(err.code).toBe('TANDEM_ERR_PATH_OUTSIDE_ROOT');
    expect(fs.readdirSync(outside)).toEqual([]);
  });

  it('accepts a root that is itself a symlink, resolving it once', async () => {
    const real = path.join(base, 'real-root');
    fs.mkdirSync(real);
    const link = path.join(base, 'link-root');
    fs.symlinkSync(real, link);
    const { run } = await setup({ dir: link });
    const b = new RecordBuilder();
    b.content('f', 'via link', BS);
    await run(b.records);
    expect(fs.readFileSync(path.join(real, 'f'), 'utf8')).toBe('via link');
  });

  it('creates a missing root directory at init', async () => {
    const dir = path.join(base, 'new', 'root');
    const { run } = await setup({ dir });
    const b = new RecordBuilder();
    b.content('f', 'x', BS);
    await run(b.records);
    expect(fs.readFileSync(path.join(dir, 'f'), 'utf8')).toBe('x');
  });
});

describe('manifest', () => {
  it('matches a fresh hash of every file after apply, with inode, size and mtime from the disk', async () => {
    const { run, manifest } = await setup();
    await run(richBatch());
    expect(manifestDifferences(manifest, ROOT, rootDir, BS)).toEqual([]);
    const e = manifest.get(ROOT, 'e/f1');
    expect(e).toMatchObject({ kind: 'file', size: 2 * BS, mode: 0o644, readAt: T0 });
  });

  it('fills inode, size and mtime of files written without a meta at the durable point', async () => {
    const { run, manifest } = await setup();
    const b = new RecordBuilder();
    b.content('f', bytes(BS + 1, 3), BS);
    await run(b.records);
    const st = fs.statSync(path.join(rootDir, 'f'));
    expect(manifest.get(ROOT, 'f')).toMatchObject({ kind: 'file', ino: st.ino, size: BS + 1, mtimeMs: st.mtimeMs, readAt: T0 });
    expect(manifestDifferences(manifest, ROOT, rootDir, BS)).toEqual([]);
  });
});
