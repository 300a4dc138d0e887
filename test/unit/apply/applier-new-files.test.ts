// Runs of new small files created by the applier's worker thread (agent/apply/new-files.ts): the
// tree and the manifest they leave are those of the record-by-record path, and anything the run
// did not expect (a name already there, a parent moved away) stops it at that file, which the
// applier's own path then applies, never writing through a link or into a moved directory.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { initHash } from '../../../shared/hash.ts';
import { silentLogger } from '../../../shared/log.ts';
import { FakeClock } from '../../../shared/clock.ts';
import type { DataRecord } from '../../../shared/protocol/index.ts';
import { Manifest } from '../../../agent/manifest/index.ts';
import { Applier, type ApplierSeams } from '../../../agent/apply/applier.ts';
import { NEW_FILES_MIN, NewFileWorker, RUN_BUFFER_BYTES, newFileAt, type NewFileJob } from '../../../agent/apply/new-files.ts';
import { ROOT, RecordBuilder, manifestDifferences, snapshot, tmpDir } from './helpers.ts';

const BS = 4096;
const T0 = 1_700_000_000_000;

let base: string;

beforeAll(async () => {
  await initHash();
});

beforeEach(() => {
  base = tmpDir();
});

afterEach(() => {
  fs.rmSync(base, { recursive: true, force: true });
});

/** Bytes of file `i`: sizes from empty to several blocks, content that differs per file. */
function bytesOf(i: number): Buffer {
  const sizes = [0, 1, 100, BS - 1, BS, BS + 1, 3 * BS + 17, 9000];
  const b = Buffer.alloc(sizes[i % sizes.length]!);
  for (let k = 0; k < b.length; k++) b[k] = (i * 31 + k * 7) & 0xff;
  return b;
}

const MODES = [0o644, 0o600, 0o755, 0o640, 0o444];

/**
 * `n` new files as a synchronisation sends them (file, its writes block by block, its meta with
 * owner and an empty attribute list), in directories d0 and d1 (made by mkdir records; d1 setgid
 * with group 3456, whose new files get that group) and in d2/deep (never made by a record: its
 * walk makes it).
 */
function newFiles(n: number): DataRecord[] {
  const b = new RecordBuilder(1);
  b.mkdir('d0', 0o755);
  b.mkdir('d1', 0o2750, { uid: 0, gid: 3456 });
  for (let i = 0; i < n; i++) {
    const p = i % 5 === 4 ? `d2/deep/f${i}` : `d${i % 2}/f${i}`;
    b.content(p, bytesOf(i), BS);
    b.meta(p, MODES[i % MODES.length]!, T0 + i * 1000 + 0.5, { uid: i % 3 === 0 ? 1234 : 0, gid: i % 3 === 0 ? 2345 : 0, ...(i % 7 === 3 ? {} : { xattrs: [] }) });
  }
  return b.records;
}

async function setup(dir: string, seams: ApplierSeams = {}) {
  fs.mkdirSync(dir, { recursive: true });
  const manifest = new Manifest([ROOT]);
  const syncfs: string[] = [];
  const applier = new Applier({
    roots: [{ name: ROOT, path: dir, exclude: [] }],
    manifest,
    blockSize: BS,
    log: silentLogger(),
    clock: new FakeClock(T0),
    seams: {
      syncfs: async (root) => {
        syncfs.push(root);
        execFileSync('sync', ['-f', root]);
      },
      ...seams,
    },
  });
  await applier.init();
  return { applier, manifest, syncfs };
}

const owners = (dir: string) =>
  snapshot(dir)
    .filter((e) => e.kind === 'file')
    .map((e) => {
      const st = fs.lstatSync(path.join(dir, e.path));
      return `${e.path} ${st.uid}:${st.gid}`;
    });

/** A manifest's entries by path, without what differs between two trees of the same content (inode, ctime, read time). */
const entries = (m: Manifest) =>
  [...m.entries(ROOT)]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([p, e]) => {
      const { ino: _ino, ctimeMs: _ctime, readAt: _readAt, ...rest } = e as typeof e & { readAt?: number; ctimeMs?: number };
      return [p, rest];
    });

/** The worker's tree and manifest are what the record-by-record path left in `ownDir`, and its manifest says what its disk holds. */
function expectAsOwnPath(m: Manifest, dir: string, ownManifest: Manifest, ownDir: string): void {
  expect(snapshot(dir)).toEqual(snapshot(ownDir));
  expect(manifestDifferences(m, ROOT, dir, BS)).toEqual([]);
  expect(entries(m)).toEqual(entries(ownManifest));
}

describe('newFileAt', () => {
  it('takes a file with its writes from offset 0 to its size and its meta, and nothing else', () => {
    const b = new RecordBuilder(1);
    b.content('a', bytesOf(6), BS);
    b.meta('a', 0o644, T0);
    const r = newFileAt(b.records, 0)!;
    expect(r.writes.length).toBe(4);
    expect(r.next).toBe(b.records.length);
    // A gap, a missing meta, a setuid bit, another path's meta: not a new file of a run.
    const gap = new RecordBuilder(1);
    gap.file('a', 10);
    gap.write('a', 5, 'xxxxx');
    gap.meta('a', 0o644, T0);
    expect(newFileAt(gap.records, 0)).toBeUndefined();
    const noMeta = new RecordBuilder(1);
    noMeta.content('a', 'abc', BS);
    expect(newFileAt(noMeta.records, 0)).toBeUndefined();
    const suid = new RecordBuilder(1);
    suid.content('a', 'abc', BS);
    suid.meta('a', 0o4755, T0);
    expect(newFileAt(suid.records, 0)).toBeUndefined();
    const other = new RecordBuilder(1);
    other.content('a', 'abc', BS);
    other.meta('b', 0o644, T0);
    expect(newFileAt(other.records, 0)).toBeUndefined();
  });
});

describe('a run of new files', () => {
  it("is created by the worker with the bytes, modes, owners and times its records say, leaving the tree and manifest of the applier's own path", async () => {
    const records = newFiles(300);
    const worker = await setup(path.join(base, 'worker'));
    const own = await setup(path.join(base, 'own'), { newFilesWorker: false });
    try {
      await worker.applier.apply(records, async () => undefined);
      await own.applier.apply(records, async () => undefined);
      // The first file of the root goes the applier's way (it learns whether new files get a
      // security label); the others in the worker.
      expect(worker.applier.filesCreatedOffThread).toBe(299);
      expect(own.applier.filesCreatedOffThread).toBe(0);
      const tree = snapshot(path.join(base, 'worker'));
      expect(tree).toEqual(snapshot(path.join(base, 'own')));
      expect(tree.filter((e) => e.kind === 'file').length).toBe(300);
      expect(fs.readFileSync(path.join(base, 'worker', 'd1/f7'))).toEqual(bytesOf(7));
      expect(fs.statSync(path.join(base, 'worker', 'd0/f6')).mtimeMs).toBeCloseTo(T0 + 6000 + 0.5, 2);
      expect(owners(path.join(base, 'worker'))).toEqual(owners(path.join(base, 'own')));
      expect(fs.statSync(path.join(base, 'worker', 'd0/f0')).uid).toBe(1234);
      expect(manifestDifferences(worker.manifest, ROOT, path.join(base, 'worker'), BS)).toEqual([]);
      expect(entries(worker.manifest)).toEqual(entries(own.manifest));
      // Closed unsynced by the worker: the point synced the root's file system.
      expect(worker.syncfs).toEqual([fs.realpathSync(path.join(base, 'worker'))]);
    } finally {
      await worker.applier.close();
      await own.applier.close();
    }
  });

  it('prepares the next run while the worker creates one, but not past a path below a file of the run being created', async () => {
    // 700 files: the worker takes them in runs of NEW_FILES_MAX; "d0/x" is a file of the first
    // run and "d0/x/y" one of the second, which the records make a directory again by then.
    // The worker's first file is "d0/x"; "d0/x/y" is far into the second run, so the worker has
    // long created "d0/x" when the next run's walk reaches it.
    const b = new RecordBuilder(1);
    b.mkdir('d0', 0o755);
    for (let i = 0; i < 700; i++) {
      const p = i === 1 ? 'd0/x' : i === 690 ? 'd0/x/y' : `d0/f${i}`;
      b.content(p, bytesOf(i), BS);
      b.meta(p, 0o644, T0 + i, { uid: 0, gid: 0, xattrs: [] });
    }
    const worker = await setup(path.join(base, 'worker'));
    const own = await setup(path.join(base, 'own'), { newFilesWorker: false });
    try {
      // A first run, so that the worker thread is up when the test's runs come.
      const warm = new RecordBuilder(10_000);
      for (let i = 0; i < 40; i++) {
        warm.content(`warm/w${i}`, 'w', BS);
        warm.meta(`warm/w${i}`, 0o644, T0, { uid: 0, gid: 0, xattrs: [] });
      }
      await worker.applier.apply(warm.records, async () => undefined);
      await own.applier.apply(warm.records, async () => undefined);
      await worker.applier.apply(b.records, async () => undefined);
      await own.applier.apply(b.records, async () => undefined);
      expect(worker.applier.filesCreatedOffThread).toBeGreaterThan(600);
      expect(fs.readFileSync(path.join(base, 'worker', 'd0/x/y'))).toEqual(bytesOf(690));
      expectAsOwnPath(worker.manifest, path.join(base, 'worker'), own.manifest, path.join(base, 'own'));
    } finally {
      await worker.applier.close();
      await own.applier.close();
    }
  });

  it('sends the next run behind the one out; when that one stops at a name already there, the files of the run behind it are made again by their records', async () => {
    // 1,100 files in d0 (f0 is empty: its own path), runs of NEW_FILES_MAX (512) from f1:
    // d0/f100 is already on the disk (not in the manifest), so the first run stops there with 99
    // files made, while the second (f513-f1024) was sent behind it. Those are then their
    // records' to make, in order; the worker takes the last 75. Before, the second run was sent
    // only after the first one's answer, dropped on a stop, and the worker made 1,098 files.
    const b = new RecordBuilder(1);
    b.mkdir('d0', 0o755);
    for (let i = 0; i < 1100; i++) {
      b.content(`d0/f${i}`, bytesOf(i), BS);
      b.meta(`d0/f${i}`, MODES[i % MODES.length]!, T0 + i, { uid: 0, gid: 0, xattrs: [] });
    }
    const handOvers: number[] = [];
    const worker = await setup(path.join(base, 'worker'), { newFilesHandOver: (n) => void handOvers.push(n) });
    const own = await setup(path.join(base, 'own'), { newFilesWorker: false });
    try {
      fs.mkdirSync(path.join(base, 'worker', 'd0'));
      fs.writeFileSync(path.join(base, 'worker', 'd0/f100'), 'there before');
      await worker.applier.apply(b.records, async () => undefined);
      await own.applier.apply(b.records, async () => undefined);
      expect(handOvers).toEqual([512, 512, 75]);
      expect(worker.applier.filesCreatedOffThread).toBe(99 + 75);
      expect(fs.readFileSync(path.join(base, 'worker', 'd0/f100'))).toEqual(bytesOf(100));
      expect(fs.readFileSync(path.join(base, 'worker', 'd0/f700'))).toEqual(bytesOf(700));
      expectAsOwnPath(worker.manifest, path.join(base, 'worker'), own.manifest, path.join(base, 'own'));
    } finally {
      await worker.applier.close();
      await own.applier.close();
    }
  });

  it('is not started for fewer files than NEW_FILES_MIN', async () => {
    const w = await setup(path.join(base, 'few'));
    try {
      await w.applier.apply(newFiles(NEW_FILES_MIN), async () => undefined);
      expect(w.applier.filesCreatedOffThread).toBe(0);
      expect(snapshot(path.join(base, 'few')).filter((e) => e.kind === 'file').length).toBe(NEW_FILES_MIN);
    } finally {
      await w.applier.close();
    }
  });

  it("stops at a name already there (a link to outside), which the applier's path replaces: nothing is written through the link", async () => {
    const dir = path.join(base, 'root');
    const outside = path.join(base, 'outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'secret'), 'secret');
    fs.mkdirSync(path.join(dir, 'd0'), { recursive: true });
    fs.symlinkSync(path.join(outside, 'secret'), path.join(dir, 'd0/f100'));
    const w = await setup(dir);
    try {
      await w.applier.apply(newFiles(300), async () => undefined);
      expect(fs.readFileSync(path.join(outside, 'secret'), 'utf8')).toBe('secret');
      expect(fs.lstatSync(path.join(dir, 'd0/f100')).isFile()).toBe(true);
      expect(fs.readFileSync(path.join(dir, 'd0/f100'))).toEqual(bytesOf(100));
      // The run went on after it: all but the root's first file and that one in the worker.
      expect(w.applier.filesCreatedOffThread).toBe(298);
      expect(manifestDifferences(w.manifest, ROOT, dir, BS)).toEqual([]);
    } finally {
      await w.applier.close();
    }
  });

  it('stops at a parent moved away and replaced by a link after its walk: nothing lands in the moved directory or outside', async () => {
    const dir = path.join(base, 'root');
    const outside = path.join(base, 'outside');
    fs.mkdirSync(outside);
    let moved = false;
    const w = await setup(dir, {
      newFilesHandOver: () => {
        if (moved) return;
        moved = true;
        fs.renameSync(path.join(dir, 'd1'), path.join(base, 'moved'));
        fs.symlinkSync(outside, path.join(dir, 'd1'));
      },
    });
    try {
      await w.applier.apply(newFiles(300), async () => undefined);
      expect(moved).toBe(true);
      expect(fs.readdirSync(outside)).toEqual([]);
      expect(fs.readdirSync(path.join(base, 'moved'))).toEqual([]);
      // The link was replaced by the directory the records say is there, with every file of it.
      expect(fs.lstatSync(path.join(dir, 'd1')).isDirectory()).toBe(true);
      expect(fs.readFileSync(path.join(dir, 'd1/f1'))).toEqual(bytesOf(1));
      expect(snapshot(dir).filter((e) => e.kind === 'file').length).toBe(300);
      expect(w.applier.noticeList().map((n) => n.code)).toContain('TANDEM_ERR_PATH_SWAPPED');
      expect(manifestDifferences(w.manifest, ROOT, dir, BS)).toEqual([]);
    } finally {
      await w.applier.close();
    }
  });
  it('starts the thread that creates new files as soon as a synchronisation begins, before its first file', async () => {
    // The threads of this test process (vitest runs each file in a process of its own): one
    // more once the sync-begin record is applied, and none for an applier without the worker.
    const threads = () => fs.readdirSync('/proc/self/task').length;
    const syncBegin = [{ op: 'sync-begin', seq: 1, id: 'sync-1', baseSeq: 0, bytesTotal: 1 } as DataRecord];
    const without = await setup(path.join(base, 'without'), { newFilesWorker: false });
    const withWorker = await setup(path.join(base, 'with'));
    try {
      const before = threads();
      await without.applier.apply(syncBegin, async () => undefined);
      expect(threads()).toBe(before);
      await withWorker.applier.apply(syncBegin, async () => undefined);
      const deadline = Date.now() + 30_000;
      while (threads() <= before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(threads()).toBe(before + 1);
    } finally {
      await without.applier.close();
      await withWorker.applier.close();
    }
  });
});

describe('the new-file worker', () => {
  it("hands each run's buffer back, and the next run is gathered into that memory with only its own bytes written", async () => {
    const dir = path.join(base, 'w');
    fs.mkdirSync(dir);
    const dfd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    const w = new NewFileWorker(0o600);
    const job = (name: string, end: number): NewFileJob => ({ dir: dfd, want: fs.realpathSync(dir), name, start: 0, end, uid: -1, gid: -1, newUid: process.getuid!(), newGid: process.getgid!(), mode: 0o600, time: T0 / 1000 });
    try {
      const first = w.buffer(9000);
      expect(first.byteLength).toBe(9000);
      first.fill(0x11);
      // A mark past the run's bytes: what the next buffer holds tells whether it is this memory.
      new Uint8Array(first.buffer)[RUN_BUFFER_BYTES - 1] = 0xab;
      const r1 = await w.run([job('big', 9000)], first.buffer);
      expect(r1.done).toBe(1);
      expect(first.buffer.byteLength).toBe(0); // transferred
      const second = w.buffer(5);
      expect(second.buffer.byteLength).toBe(RUN_BUFFER_BYTES);
      expect(new Uint8Array(second.buffer)[RUN_BUFFER_BYTES - 1]).toBe(0xab);
      second.set([1, 2, 3, 4, 5]);
      expect((await w.run([job('small', 5)], second.buffer)).done).toBe(1);
      expect(fs.readFileSync(path.join(dir, 'big'))).toEqual(Buffer.alloc(9000, 0x11));
      expect(fs.readFileSync(path.join(dir, 'small'))).toEqual(Buffer.from([1, 2, 3, 4, 5]));
      // A buffer given back twice is kept once: two runs never share one.
      const a = w.buffer(1);
      const b = w.buffer(1);
      w.giveBack(a);
      w.giveBack(a);
      w.giveBack(b);
      const x = w.buffer(1);
      const y = w.buffer(1);
      const z = w.buffer(1);
      expect(new Set([x.buffer, y.buffer, z.buffer]).size).toBe(3);
    } finally {
      fs.closeSync(dfd);
      await w.close();
    }
  });
});
