import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Capture } from '../../../agent/capture/index.ts';
import { Manifest } from '../../../agent/manifest/index.ts';
import { systemClock, type Clock } from '../../../shared/clock.ts';
import { initHash } from '../../../shared/hash.ts';
import { silentLogger } from '../../../shared/log.ts';
import { BATCH_RAW_CUT_BYTES, BATCH_RECORDS_CUT, MAX_BATCH_RAW_BYTES, decompressWrite, writeLength, type WriteRecord } from '../../../shared/protocol/index.ts';
import { MemoryJournal } from '../../helpers/memory-journal.ts';
import { diffTrees, readTree, replay, type TreeModel } from '../../helpers/tree-model.ts';
import { rng } from '../../helpers/workload.ts';

const BS = 4096;

interface Rig {
  dir: string;
  capture: Capture;
  journal: MemoryJournal;
  manifest: Manifest;
  model: TreeModel;
  /** Waits until capture has nothing pending, then replays the new records into the model. */
  settle(): Promise<void>;
}

const rigs: Rig[] = [];

async function makeRig(opts: { clock?: Clock; senderWaiting?: () => boolean; watch?: boolean; baseline?: boolean; exclude?: string[]; populate?: (dir: string) => void; manifest?: Manifest; compressionLevel?: number; journalMaxBytes?: number; blockSize?: number; batchBytes?: number } = {}): Promise<Rig> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-capture-'));
  opts.populate?.(dir);
  const journal = new MemoryJournal();
  if (opts.journalMaxBytes !== undefined) journal.maxBytes = opts.journalMaxBytes;
  const manifest = opts.manifest ?? new Manifest(['data']);
  const capture = new Capture({
    roots: [{ name: 'data', path: dir, exclude: opts.exclude ?? [] }],
    manifest,
    journal,
    blockSize: opts.blockSize ?? BS,
    batchBytes: opts.batchBytes ?? 256 * 1024,
    batchDelayMs: 2,
    ...(opts.compressionLevel === undefined ? {} : { compressionLevel: opts.compressionLevel }),
    settleMs: 40,
    scanIntervalMs: 0,
    renameWindowMs: 60,
    baseline: opts.baseline ?? false,
    afterCommit: async () => {},
    log: silentLogger(),
    clock: opts.clock ?? systemClock,
    watch: opts.watch ?? false,
    ...(opts.senderWaiting === undefined ? {} : { senderWaiting: opts.senderWaiting }),
  });
  const model: TreeModel = new Map();
  let replayed = 0;
  const rig: Rig = {
    dir,
    capture,
    journal,
    manifest,
    model,
    async settle() {
      const deadline = Date.now() + 10_000;
      for (;;) {
        await capture.whenIdle();
        await new Promise((r) => setTimeout(r, 20));
        if (capture.status().pendingPaths === 0) {
          await capture.whenIdle();
          if (capture.status().pendingPaths === 0) break;
        }
        if (Date.now() > deadline) throw new Error(`capture did not settle: ${JSON.stringify(capture.status())}`);
      }
      replay(model, journal.records.slice(replayed));
      replayed = journal.records.length;
    },
  };
  rigs.push(rig);
  await capture.start();
  return rig;
}

/** Hints as the watcher would, then settles. */
async function touch(rig: Rig, ...rels: string[]): Promise<void> {
  for (const r of rels) rig.capture.hint('data', r);
  await rig.settle();
}

beforeAll(async () => {
  await initHash();
});

afterEach(async () => {
  for (const r of rigs.splice(0)) {
    await r.capture.stop();
    fs.rmSync(r.dir, { recursive: true, force: true });
  }
});

describe('capture', () => {
  it('reads a file with a future mtime once: a later write would change that mtime, so it is not racy', async () => {
    const rig = await makeRig();
    const f = path.join(rig.dir, 'future.txt');
    fs.writeFileSync(f, 'from an archive dated next year');
    const later = new Date(Date.now() + 3600_000);
    fs.utimesSync(f, later, later);
    await touch(rig, 'future.txt');
    const hashed = rig.capture.status().filesHashed;
    // Were it racy, it would be read again every settle (40 ms), for ever.
    await new Promise((r) => setTimeout(r, 300));
    expect(rig.capture.status().filesHashed).toBe(hashed);
    expect(rig.capture.status().pendingPaths).toBe(0);
    expect(diffTrees(rig.model, readTree(rig.dir))).toBe('');
  });

  it('journals a new file as file, writes and meta, after its new parent directory', async () => {
    const rig = await makeRig();
    fs.mkdirSync(path.join(rig.dir, 'sub'));
    fs.writeFileSync(path.join(rig.dir, 'sub/a.bin'), Buffer.alloc(BS * 2 + 100, 7));
    await touch(rig, 'sub/a.bin');
    expect(rig.journal.ops()).toEqual(['mkdir sub', 'file sub/a.bin', 'write sub/a.bin', 'write sub/a.bin', 'write sub/a.bin', 'meta sub/a.bin']);
    expect(diffTrees(readTree(rig.dir), rig.model)).toBe('');
  });

  it('journals compressible blocks compressed at channel.compression, small files and big ones alike, and random blocks raw', async () => {
    const rig = await makeRig({ compressionLevel: 6 });
    const text = Buffer.from('2026-11-23 INFO request served in 12 ms by worker 3\n'.repeat(40_000));
    const random = crypto.randomBytes(600 * 1024);
    // Up to 256 KiB a file is read and compressed on the event loop; above, in the thread pool.
    fs.writeFileSync(path.join(rig.dir, 'small.log'), text.subarray(0, 100 * 1024));
    fs.writeFileSync(path.join(rig.dir, 'big.log'), text);
    fs.writeFileSync(path.join(rig.dir, 'random.bin'), random);
    await touch(rig, 'small.log', 'big.log', 'random.bin');
    const writes = (p: string) => rig.journal.records.filter((r): r is WriteRecord => r.op === 'write' && r.path === p).sort((a, b) => a.offset - b.offset);
    for (const [p, want] of [['small.log', text.subarray(0, 100 * 1024)], ['big.log', text]] as const) {
      expect(writes(p).every((w) => w.encoding === 'deflate-raw'), p).toBe(true);
      expect(Buffer.concat(writes(p).map((w) => decompressWrite(w).data)).equals(want), p).toBe(true);
      expect(writes(p).reduce((n, w) => n + w.data.length, 0), p).toBeLessThan(want.length / 10);
    }
    expect(writes('random.bin').some((w) => w.encoding !== undefined)).toBe(false);
    expect(Buffer.concat(writes('random.bin').map((w) => w.data)).equals(random)).toBe(true);
  });

  it('closes a batch of compressed zero blocks by the bytes they inflate to, below what a passive accepts', async () => {
    const rig = await makeRig({ compressionLevel: 1, blockSize: 64 * 1024 });
    // 100 MiB of one repeated byte: about 100 bytes a block once compressed, so the 256 KiB batch
    // bound alone would let one batch state 80 MiB or more. (Not zeros: zero blocks of a new file
    // travel as holes, without data.)
    const fd = fs.openSync(path.join(rig.dir, 'zeros.bin'), 'w');
    const mib = Buffer.alloc(1 << 20, 0x61);
    for (let i = 0; i < 100; i++) fs.writeSync(fd, mib);
    fs.closeSync(fd);
    await touch(rig, 'zeros.bin');
    const raw = rig.journal.batches.map((b) =>
      rig.journal.records.filter((r) => r.seq >= b.first && r.seq <= b.last).reduce((n, r) => n + (r.op === 'write' ? writeLength(r) : 0), 0),
    );
    expect(raw.reduce((a, b) => a + b, 0)).toBe(100 << 20);
    expect(raw.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...raw)).toBeLessThanOrEqual(BATCH_RAW_CUT_BYTES + (1 << 20));
    expect(Math.max(...raw)).toBeLessThanOrEqual(MAX_BATCH_RAW_BYTES);
  });

  it('lets the event loop run after every millisecond of its work while the sender has batches to send, every 5 ms otherwise', async () => {
    // Capture's work is counted on a clock that moves 0.25 ms for each record journaled, so how
    // many records it journals between two turns of the event loop (where the sender's reads and
    // writes complete) does not depend on this machine's speed. 600 small files, first without
    // and then with batches waiting to be sent.
    const runs: number[][] = [];
    for (const waiting of [false, true]) {
      let mono = 0;
      const clock: Clock = { ...systemClock, monotonic: () => mono };
      const rig = await makeRig({ clock, senderWaiting: () => waiting, populate: (dir) => {
        for (let i = 0; i < 600; i++) fs.writeFileSync(path.join(dir, `f${i}`), `file ${i}\n`);
      } });
      let sinceTurn = 0;
      const between: number[] = [];
      const append = rig.journal.append.bind(rig.journal);
      rig.journal.append = (r) => {
        mono += 0.25;
        sinceTurn++;
        return append(r);
      };
      let probing = true;
      const turn = () => {
        if (sinceTurn > 0) between.push(sinceTurn);
        sinceTurn = 0;
        if (probing) setImmediate(turn);
      };
      setImmediate(turn);
      await touch(rig, ...Array.from({ length: 600 }, (_, i) => `f${i}`));
      probing = false;
      expect(rig.journal.records.filter((r) => r.op === 'file')).toHaveLength(600);
      runs.push(between);
    }
    const [alone, waiting] = runs.map((b) => Math.max(...b));
    // Slices end at the first record past 5 ms (21 records) or past 1 ms (5 records).
    expect(alone).toBeGreaterThan(12);
    expect(alone).toBeLessThanOrEqual(24);
    expect(waiting).toBeLessThanOrEqual(6);
  });

  it('reads on while the batches before are made durable: several commits in flight, never unbounded', async () => {
    // A new file of 16 MiB, read in chunks that each fill a batch or more; the journal's commits
    // are held as a slow disk would hold their fdatasync. One commit at a time, capture stopped
    // at the second batch, and the file was journaled at the pace of one fdatasync per batch.
    const rig = await makeRig();
    fs.writeFileSync(path.join(rig.dir, 'big.bin'), crypto.randomBytes(16 << 20));
    rig.journal.holdCommits = true;
    try {
      rig.capture.hint('data', 'big.bin');
      await vi.waitFor(() => expect(rig.journal.commitsCalled).toBeGreaterThanOrEqual(4), { timeout: 10_000, interval: 10 });
      // Capture waits for the oldest before it cuts another: the journal's memory stays bounded.
      await new Promise((r) => setTimeout(r, 200));
      expect(rig.journal.commitsCalled).toBe(4);
    } finally {
      rig.journal.releaseCommits();
    }
    await rig.settle();
    expect(rig.journal.commitsCalled).toBeGreaterThan(5);
    expect(diffTrees(readTree(rig.dir), rig.model)).toBe('');
  });

  it('closes a batch by its records too', async () => {
    // A batch bound the records never reach by bytes: the count closes the batch.
    const rig = await makeRig({ batchBytes: 8 << 20 });
    fs.mkdirSync(path.join(rig.dir, 'many'));
    const names = Array.from({ length: 9000 }, (_, i) => `many/${i}`);
    for (const n of names) fs.writeFileSync(path.join(rig.dir, n), '');
    await touch(rig, 'many', ...names);
    const sizes = rig.journal.batches.map((b) => b.last - b.first + 1);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(1 + 2 * 9000);
    // Cut before the path that would pass the bound: one path's records at most beyond it.
    expect(Math.max(...sizes)).toBeGreaterThanOrEqual(BATCH_RECORDS_CUT);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(BATCH_RECORDS_CUT + 8);
  });

  it('closes a batch of removals at the batch bound as well', async () => {
    const rig = await makeRig();
    const names = Array.from({ length: 5000 }, (_, i) => `${i}`);
    for (const n of names) fs.writeFileSync(path.join(rig.dir, n), '');
    await touch(rig, ...names);
    const before = rig.journal.batches.length;
    for (const n of names) fs.rmSync(path.join(rig.dir, n));
    await touch(rig, ...names);
    await new Promise((r) => setTimeout(r, 100)); // the rename window, then the removals
    await touch(rig, ...names);
    const removals = rig.journal.batches.slice(before).map((b) => b.last - b.first + 1);
    expect(removals.reduce((a, b) => a + b, 0)).toBe(5000);
    // 256 KiB at 64 bytes a record in this rig's journal.
    expect(Math.max(...removals)).toBeLessThanOrEqual(4096 + 8);
    expect(diffTrees(readTree(rig.dir), rig.model)).toBe('');
  });

  it('journals only the block that changed in a file', async () => {
    const rig = await makeRig();
    const file = path.join(rig.dir, 'big.bin');
    fs.writeFileSync(file, Buffer.alloc(BS * 8, 1));
    await touch(rig, 'big.bin');
    rig.journal.clear();
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(100, 9), 0, 100, BS * 5 + 10);
    fs.closeSync(fd);
    await touch(rig, 'big.bin');
    const writes = rig.journal.recent().filter((r) => r.op === 'write');
    expect(writes.map((w) => (w.op === 'write' ? w.offset : -1))).toEqual([BS * 5]);
    expect(rig.journal.ops()).toEqual(['write big.bin', 'meta big.bin']);
    expect(diffTrees(readTree(rig.dir), rig.model)).toBe('');
  });

  it('journals appends and truncations with the new size before the blocks', async () => {
    const rig = await makeRig();
    const file = path.join(rig.dir, 'log.txt');
    fs.writeFileSync(file, 'x'.repeat(BS + 10));
    await touch(rig, 'log.txt');
    rig.journal.clear();
    fs.appendFileSync(file, 'y'.repeat(BS));
    await touch(rig, 'log.txt');
    expect(rig.journal.ops()).toEqual(['file log.txt', 'write log.txt', 'write log.txt', 'meta log.txt']);
    rig.journal.clear();
    fs.truncateSync(file, 100);
    await touch(rig, 'log.txt');
    expect(rig.journal.ops()).toEqual(['file log.txt', 'write log.txt', 'meta log.txt']);
    expect(diffTrees(readTree(rig.dir), rig.model)).toBe('');
  });

  it.each([
    ['read in one call', 20 * BS + 100, 7 * BS + 33],
    ['read in chunks', 600 * 1024 + 100, 300 * 1024 + 33],
  ])('journals a file cut shorter while it is %s at the size it was read, and its cut later', async (_how, grown, cut) => {
    const rig = await makeRig();
    const file = path.join(rig.dir, 'shrinks.bin');
    fs.writeFileSync(file, crypto.randomBytes(BS));
    await touch(rig, 'shrinks.bin');
    fs.appendFileSync(file, crypto.randomBytes(grown - BS));
    // Cut the file after capture opened it and took its size, before the first read: the read
    // comes back short, and the passive must not keep the size announced at the open.
    let armed = true;
    const cutOnce = () => {
      if (!armed) return;
      armed = false;
      fs.truncateSync(file, cut);
    };
    const readSync = fs.readSync;
    const spySync = vi.spyOn(fs, 'readSync').mockImplementation(((...args: Parameters<typeof fs.readSync>) => {
      cutOnce();
      return readSync(...args);
    }) as typeof fs.readSync);
    const probe = await fsp.open(file, 'r');
    const proto = Object.getPrototypeOf(probe) as { read: (...a: unknown[]) => Promise<unknown> };
    await probe.close();
    const read = proto.read;
    const spyAsync = vi.spyOn(proto, 'read').mockImplementation(function (this: unknown, ...args: unknown[]) {
      cutOnce();
      return read.apply(this, args);
    });
    try {
      await touch(rig, 'shrinks.bin');
    } finally {
      spySync.mockRestore();
      spyAsync.mockRestore();
    }
    expect(armed).toBe(false);
    expect(fs.statSync(file).size).toBe(cut);
    // The torn read is looked at again once the file is quiet; it then holds what is on disk.
    await rig.settle();
    expect(diffTrees(readTree(rig.dir), rig.model)).toBe('');
    expect(rig.manifest.get('data', 'shrinks.bin')).toMatchObject({ size: cut });
  });

  it.each(['removed', 'renamed'])('journals the removal of a new file %s between its read and its attributes', async (how) => {
    const rig = await makeRig();
    const file = path.join(rig.dir, 'brief.bin');
    fs.writeFileSync(file, crypto.randomBytes(3 * BS + 100));
    // The file goes right after capture read its bytes: reading its attributes then fails, after
    // its `file` and `write` records were journaled.
    let armed = true;
    const readSync = fs.readSync;
    const spy = vi.spyOn(fs, 'readSync').mockImplementation(((...args: Parameters<typeof fs.readSync>) => {
      const n = readSync(...args);
      if (armed) {
        armed = false;
        if (how === 'removed') fs.unlinkSync(file);
        else fs.renameSync(file, path.join(rig.dir, 'moved.bin'));
      }
      return n;
    }) as typeof fs.readSync);
    try {
      await touch(rig, 'brief.bin');
    } finally {
      spy.mockRestore();
    }
    expect(armed).toBe(false);
    expect(rig.journal.ops()).toContain('file brief.bin');
    // A file that went is no path that cannot be read: no alarm for it.
    expect(rig.capture.status().problems).toEqual([]);
    // What the watcher reports next: the name is gone (and another one came).
    await touch(rig, 'brief.bin', 'moved.bin');
    await rig.settle();
    expect(diffTrees(readTree(rig.dir), rig.model)).toBe('');
  });

  it('journals the removal of a link removed between its lstat and the read of its target, and raises no alarm for it', async () => {
    const rig = await makeRig();
    const link = path.join(rig.dir, 'lnk');
    fs.symlinkSync('somewhere', link);
    await touch(rig, 'lnk');
    expect(rig.journal.ops()).toContain('symlink lnk');
    const readlinkSync = fs.readlinkSync;
    let armed = true;
    const spy = vi.spyOn(fs, 'readlinkSync').mockImplementation(((...args: Parameters<typeof fs.readlinkSync>) => {
      if (armed && String(args[0]).endsWith('/lnk')) {
        armed = false;
        fs.unlinkSync(link);
      }
      return readlinkSync(...args);
    }) as typeof fs.readlinkSync);
    try {
      await touch(rig, 'lnk');
    } finally {
      spy.mockRestore();
    }
    expect(armed).toBe(false);
    expect(rig.capture.status().problems).toEqual([]);
    expect(rig.journal.ops()).toContain('unlink lnk');
    expect(diffTrees(readTree(rig.dir), rig.model)).toBe('');
  });

  it('keeps what it journals true to the disk when files are cut, grown, renamed or removed while they are read (random interleavings)', async () => {
    const rand = rng(20261205);
    const rig = await makeRig();
    const abs = (n: string) => path.join(rig.dir, n);
    const known = new Set<string>();
    let next = 0;
    const create = () => {
      const n = `f${next++}.bin`;
      fs.writeFileSync(abs(n), crypto.randomBytes(Math.floor(rand() * 300_000)));
      known.add(n);
      return n;
    };
    for (let i = 0; i < 8; i++) create();
    await touch(rig, ...known);
    // One change strikes the file being read, right before or right after a read of its bytes.
    const readSync = fs.readSync;
    const probe = await fsp.open(abs([...known][0]!), 'r');
    const proto = Object.getPrototypeOf(probe) as { read: (...a: unknown[]) => Promise<unknown> };
    await probe.close();
    const read = proto.read;
    let strike: (() => void) | undefined;
    let before = false;
    const fire = () => {
      const f = strike;
      strike = undefined;
      f?.();
    };
    const spySync = vi.spyOn(fs, 'readSync').mockImplementation(((...args: Parameters<typeof fs.readSync>) => {
      if (before) fire();
      const n = readSync(...args);
      if (!before) fire();
      return n;
    }) as typeof fs.readSync);
    const spyAsync = vi.spyOn(proto, 'read').mockImplementation(async function (this: unknown, ...args: unknown[]) {
      if (before) fire();
      const r = await read.apply(this, args);
      if (!before) fire();
      return r;
    });
    try {
      for (let round = 0; round < 40; round++) {
        const names = fs.readdirSync(rig.dir);
        const victim = names[Math.floor(rand() * names.length)] ?? create();
        fs.appendFileSync(abs(victim), crypto.randomBytes(1 + Math.floor(rand() * 100_000)));
        before = rand() < 0.5;
        const kind = Math.floor(rand() * 4);
        strike = () => {
          if (!fs.existsSync(abs(victim))) return;
          if (kind === 0) fs.truncateSync(abs(victim), Math.floor(rand() * fs.statSync(abs(victim)).size));
          else if (kind === 1) fs.appendFileSync(abs(victim), crypto.randomBytes(5000));
          else if (kind === 2) fs.unlinkSync(abs(victim));
          else {
            const to = `r${next++}.bin`;
            fs.renameSync(abs(victim), abs(to));
            known.add(to);
          }
        };
        if (rand() < 0.3) create();
        // The victim's change is hinted; then everything, as the watcher reports what the strike did.
        await touch(rig, victim);
        strike = undefined;
        await touch(rig, ...known);
        expect(`round ${round}: ${diffTrees(readTree(rig.dir), rig.model)}`).toBe(`round ${round}: `);
      }
    } finally {
      spySync.mockRestore();
      spyAsync.mockRestore();
    }
    await touch(rig, ...known);
    expect(diffTrees(readTree(rig.dir), rig.model)).toBe('');
    expect(rig.capture.status().problems).toEqual([]);
  });

  it('journals a renamed file as one rename record, whatever order the hints come in', async () => {
    const rig = await makeRig();
    fs.writeFileSync(path.join(rig.dir, 'a.txt'), 'hello');
    fs.writeFileSync(path.join(rig.dir, 'c.txt'), 'world');
    await touch(rig, 'a.txt', 'c.txt');
    rig.journal.clear();
    fs.renameSync(path.join(rig.dir, 'a.txt'), path.join(rig.dir, 'b.txt'));
    fs.renameSync(path.join(rig.dir, 'c.txt'), path.join(rig.dir, 'd.txt'));
    await touch(rig, 'a.txt', 'b.txt'); // old name first
    await touch(rig, 'd.txt', 'c.txt'); // new name first
    expect(rig.journal.ops()).toEqual(['rename a.txt>b.txt', 'rename c.txt>d.txt']);
    expect(diffTrees(readTree(rig.dir), rig.model)).toBe('');
  });

  it('journals a file or directory renamed to a name the protocol refuses as removed, and reports the new name', async () => {
    const rig = await makeRig();
    fs.writeFileSync(path.join(rig.dir, 'a.txt'), 'hello');
    fs.mkdirSync(path.join(rig.dir, 'd'));
    fs.writeFileSync(path.join(rig.dir, 'd/f'), 'inside');
    await touch(rig, 'a.txt', 'd', 'd/f');
    rig.journal.clear();
    fs.renameSync(path.join(rig.dir, 'a.txt'), path.join(rig.dir, 'a\\b.txt'));
    fs.renameSync(path.join(rig.dir, 'd'), path.join(rig.dir, 'odd\\dir'));
    await touch(rig, 'a\\b.txt', 'a.txt', 'odd\\dir', 'd');
    // A rename record to such a name would be refused, and the passive keep the old names for ever.
    expect(rig.journal.ops().sort()).toEqual(['rmdir d', 'unlink a.txt']);
    expect(rig.capture.status().problems.map((p) => p.path).sort()).toEqual(['a\\b.txt', 'odd\\dir']);
    expect(rig.model.has('a.txt') || rig.model.has('d') || rig.model.has('d/f')).toBe(false);
  });

  it('journals a renamed directory as one rename record, not one per file', async () => {
    const rig = await makeRig();
    fs.mkdirSync(path.join(rig.dir, 'd1/inner'), { recursive: true });
    for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(rig.dir, `d1/inner/f${i}`), `file ${i}`);
    await rig.capture.scanAll('test');
    await rig.settle();
    rig.journal.clear();
    fs.renameSync(path.join(rig.dir, 'd1'), path.join(rig.dir, 'd2'));
    await rig.capture.scanAll('test');
    await rig.settle();
    expect(rig.journal.ops()).toEqual(['rename d1>d2']);
    expect(diffTrees(readTree(rig.dir), rig.model)).toBe('');
  });

  it('journals a deleted tree as one rmdir and a deleted file as unlink', async () => {
    const rig = await makeRig();
    fs.mkdirSync(path.join(rig.dir, 'gone/deep'), { recursive: true });
    fs.writeFileSync(path.join(rig.dir, 'gone/deep/x'), 'x');
    fs.writeFileSync(path.join(rig.dir, 'y'), 'y');
    await rig.capture.scanAll('test');
    await rig.settle();
    rig.journal.clear();
    fs.rmSync(path.join(rig.dir, 'gone'), { recursive: true });
    fs.rmSync(path.join(rig.dir, 'y'));
    await touch(rig, 'gone/deep/x', 'gone/deep', 'gone', 'y');
    expect(rig.journal.ops().sort()).toEqual(['rmdir gone', 'unlink y']);
    expect(diffTrees(readTree(rig.dir), rig.model)).toBe('');
  });

  it('journals a symlink as a link, even one pointing outside the root, and never reads through it', async () => {
    const rig = await makeRig();
    fs.symlinkSync('/etc/passwd', path.join(rig.dir, 'outside'));
    fs.mkdirSync(path.join(rig.dir, 'real'));
    fs.symlinkSync('real', path.join(rig.dir, 'alias'));
    await rig.capture.scanAll('test');
    await rig.settle();
    const links = rig.journal.records.filter((r) => r.op === 'symlink');
    expect(links.map((l) => (l.op === 'symlink' ? `${l.path}->${l.target}` : ''))).toEqual(expect.arrayContaining(['outside->/etc/passwd', 'alias->real']));
    expect(rig.journal.records.some((r) => r.op === 'write')).toBe(false);
  });

  it('journals nothing for excluded paths', async () => {
    const rig = await makeRig({ exclude: ['*.tmp', 'cache/'] });
    fs.mkdirSync(path.join(rig.dir, 'cache'));
    fs.writeFileSync(path.join(rig.dir, 'cache/blob'), 'c');
    fs.writeFileSync(path.join(rig.dir, 'x.tmp'), 't');
    fs.writeFileSync(path.join(rig.dir, 'keep.txt'), 'k');
    await rig.capture.scanAll('test');
    await rig.settle();
    const paths = new Set(rig.journal.records.map((r) => ('path' in r ? r.path : '')));
    expect([...paths]).toEqual(['keep.txt']);
  });

  it('replicates a file replaced by an atomic save as a diff of its blocks', async () => {
    const rig = await makeRig();
    const file = path.join(rig.dir, 'doc.txt');
    fs.writeFileSync(file, Buffer.alloc(BS * 4, 3));
    await touch(rig, 'doc.txt');
    rig.journal.clear();
    const next = Buffer.alloc(BS * 4, 3);
    next.fill(4, BS, BS + 10);
    fs.writeFileSync(`${file}.swp`, next);
    fs.renameSync(`${file}.swp`, file);
    await touch(rig, 'doc.txt', 'doc.txt.swp');
    expect(rig.journal.recent().filter((r) => r.op === 'write').length).toBe(1);
    expect(diffTrees(readTree(rig.dir), rig.model)).toBe('');
  });

  it('hashes only the files whose stat changed while the agent was stopped', async () => {
    const populate = (dir: string) => {
      for (let i = 0; i < 50; i++) fs.writeFileSync(path.join(dir, `f${i}`), `content ${i}`);
    };
    const first = await makeRig({ populate });
    await first.capture.scanAll('test');
    await first.settle();
    await first.capture.stop();
    // Make every entry old enough not to be "racy", as it would be after a real restart.
    for (const [p, e] of first.manifest.entries('data')) if (e.kind === 'file') first.manifest.set('data', p, { ...e, readAt: e.mtimeMs + 1000 });
    fs.writeFileSync(path.join(first.dir, 'f7'), 'changed while stopped');
    fs.writeFileSync(path.join(first.dir, 'new'), 'new while stopped');
    const journal = new MemoryJournal();
    const second = new Capture({
      roots: [{ name: 'data', path: first.dir, exclude: [] }],
      manifest: first.manifest,
      journal,
      blockSize: BS,
      batchBytes: 1 << 20,
      batchDelayMs: 2,
      settleMs: 40,
      scanIntervalMs: 0,
      renameWindowMs: 60,
      baseline: false,
      afterCommit: async () => {},
      log: silentLogger(),
      clock: systemClock,
      watch: false,
    });
    await second.start();
    // Everything pending done, the look again at files just written included: each of the two
    // is read once (a file is read once its mtime can prove its content, not twice).
    const deadline = Date.now() + 10_000;
    do {
      await second.whenIdle();
      await new Promise((r) => setTimeout(r, 20));
      if (Date.now() > deadline) throw new Error(`capture did not settle: ${JSON.stringify(second.status())}`);
    } while (second.status().pendingPaths > 0);
    expect(second.status().filesHashed).toBe(2);
    expect(new Set(journal.records.map((r) => ('path' in r ? r.path : '')))).toEqual(new Set(['f7', 'new']));
    await second.stop();
  });

  it('hashes an existing tree into the manifest on first start and journals nothing', async () => {
    const rig = await makeRig({
      baseline: true,
      populate: (dir) => {
        fs.mkdirSync(path.join(dir, 'a'));
        fs.writeFileSync(path.join(dir, 'a/b'), 'bee');
      },
    });
    expect(rig.journal.records).toEqual([]);
    expect(rig.journal.skippedTo).toBe(1);
    expect(rig.manifest.get('data', 'a/b')?.kind).toBe('file');
    fs.writeFileSync(path.join(rig.dir, 'a/c'), 'sea');
    await touch(rig, 'a/c');
    expect(rig.journal.ops()).toEqual(['file a/c', 'write a/c', 'meta a/c']);
  });

  it('waits for room when the journal is at its bound and loses nothing', async () => {
    const rig = await makeRig();
    rig.journal.maxBytes = BS * 4;
    for (let i = 0; i < 6; i++) fs.writeFileSync(path.join(rig.dir, `f${i}`), Buffer.alloc(BS * 2, i));
    for (let i = 0; i < 6; i++) rig.capture.hint('data', `f${i}`);
    await new Promise((r) => setTimeout(r, 100));
    expect(rig.capture.status().waitingForSpace).toBe(true);
    const timer = setInterval(() => rig.journal.release(), 20);
    try {
      await rig.settle();
    } finally {
      clearInterval(timer);
    }
    expect(diffTrees(readTree(rig.dir), rig.model)).toBe('');
  });

  it('starts even when the changes found at start-up need more room than the journal has', async () => {
    // Room comes from the passive's acknowledgements, which need the channel, which the agent
    // opens only once capture has started: start() must not wait for those changes.
    const started = makeRig({
      journalMaxBytes: BS * 4,
      populate: (dir) => {
        for (let i = 0; i < 6; i++) fs.writeFileSync(path.join(dir, `f${i}`), Buffer.alloc(BS * 2, i));
      },
    });
    const rig = await Promise.race([started, new Promise<undefined>((r) => setTimeout(() => r(undefined), 2_000))]);
    expect(rig, 'start() returned').toBeDefined();
    const deadline = Date.now() + 2_000;
    while (!rig!.capture.status().waitingForSpace && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(rig!.capture.status().waitingForSpace).toBe(true);
    const timer = setInterval(() => rig!.journal.release(), 20);
    try {
      await rig!.settle();
    } finally {
      clearInterval(timer);
    }
    expect(diffTrees(readTree(rig!.dir), rig!.model)).toBe('');
  });

  it('stops while it waits for room in a full journal', async () => {
    // A demotion or a SIGTERM stops capture before the journal closes: no acknowledgement may
    // be needed for that.
    const rig = await makeRig();
    rig.journal.maxBytes = BS * 4;
    for (let i = 0; i < 6; i++) fs.writeFileSync(path.join(rig.dir, `f${i}`), Buffer.alloc(BS * 2, i));
    for (let i = 0; i < 6; i++) rig.capture.hint('data', `f${i}`);
    const deadline = Date.now() + 2_000;
    while (!rig.capture.status().waitingForSpace && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(rig.capture.status().waitingForSpace).toBe(true);
    const stopped = await Promise.race([rig.capture.stop().then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 2_000))]);
    expect(stopped, 'stop() returned').toBe(true);
    // Nothing half-journaled is left pending.
    expect(rig.journal.pendingBytes).toBe(0);
  });

  it('catches the end of a burst of 200 appends in 10 ms that the watcher reports once', async () => {
    const rig = await makeRig({ watch: true });
    const file = path.join(rig.dir, 'burst.log');
    fs.writeFileSync(file, '');
    const fd = fs.openSync(file, 'a');
    const t0 = Date.now();
    for (let i = 0; i < 200; i++) fs.writeSync(fd, `line ${i} ${'z'.repeat(50)}\n`);
    fs.closeSync(fd);
    expect(Date.now() - t0).toBeLessThan(1000);
    // Wait until the watcher has said something, then until capture is quiet.
    const deadline = Date.now() + 5000;
    while (rig.journal.records.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await rig.settle();
    await new Promise((r) => setTimeout(r, 150));
    await rig.settle();
    expect(diffTrees(readTree(rig.dir), rig.model)).toBe('');
  });

  it('sees files created at once in several new directories, with no scan to help', async () => {
    const rig = await makeRig({ watch: true });
    for (let d = 0; d < 4; d++) {
      fs.mkdirSync(path.join(rig.dir, `new${d}/deeper`), { recursive: true });
      for (let i = 0; i < 25; i++) fs.writeFileSync(path.join(rig.dir, `new${d}/deeper/f${i}`), `file ${d}/${i}`);
    }
    const deadline = Date.now() + 5000;
    while (rig.journal.records.filter((r) => r.op === 'meta').length < 100 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await rig.settle();
    expect(diffTrees(readTree(rig.dir), rig.model)).toBe('');
  });

  it('keeps watching a renamed directory under its new name', async () => {
    const rig = await makeRig({ watch: true });
    fs.mkdirSync(path.join(rig.dir, 'before'));
    fs.writeFileSync(path.join(rig.dir, 'before/a'), 'a');
    let deadline = Date.now() + 5000;
    while (rig.journal.records.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await rig.settle();
    fs.renameSync(path.join(rig.dir, 'before'), path.join(rig.dir, 'after'));
    await new Promise((r) => setTimeout(r, 300));
    await rig.settle();
    fs.writeFileSync(path.join(rig.dir, 'after/b'), 'written after the rename');
    deadline = Date.now() + 5000;
    while (!rig.journal.records.some((r) => 'path' in r && r.path === 'after/b') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await rig.settle();
    expect(rig.journal.ops()).toContain('rename before>after');
    expect(diffTrees(readTree(rig.dir), rig.model)).toBe('');
  });

  it('never reads a file through a directory swapped for a link, and reports the swap', async () => {
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-capture-outside-'));
    try {
      const marker = `SECRET-${crypto.randomBytes(8).toString('hex')}`;
      fs.writeFileSync(path.join(outside, 'f'), marker);
      const rig = await makeRig();
      fs.mkdirSync(path.join(rig.dir, 'd'));
      fs.writeFileSync(path.join(rig.dir, 'd/f'), 'inside');
      await touch(rig, 'd/f');
      rig.journal.clear();
      // The directory becomes a link after capture was told to look at a path below it.
      fs.renameSync(path.join(rig.dir, 'd'), path.join(rig.dir, 'd.old'));
      fs.symlinkSync(outside, path.join(rig.dir, 'd'));
      await touch(rig, 'd/f');
      const journaled = rig.journal.recent();
      expect(journaled.some((r) => r.op === 'write' && Buffer.from(r.data).includes(marker))).toBe(false);
      expect(journaled.some((r) => 'path' in r && r.path === 'd/f' && r.op !== 'unlink')).toBe(false);
      // The link itself is journaled, as a link.
      expect(rig.journal.ops()).toContain('symlink d');
      const notice = rig.capture.status().notices.find((n) => n.code === 'TANDEM_ERR_PATH_SWAPPED');
      expect(notice?.message).toMatch(/d\/f: not read: "d" is a symbolic link/);
    } finally {
      fs.rmSync(outside, { recursive: true, force: true });
    }
  });

  it('settles when a path waiting to be journaled as removed ends up below a directory swapped for a link', async () => {
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-capture-outside-'));
    try {
      const rig = await makeRig();
      fs.mkdirSync(path.join(rig.dir, 'd'));
      fs.writeFileSync(path.join(rig.dir, 'd/f'), 'inside');
      await touch(rig, 'd/f');
      fs.rmSync(path.join(rig.dir, 'd/f'));
      rig.capture.hint('data', 'd/f');
      // Seen gone: its removal waits renameWindow for a new name to show up…
      await rig.capture.whenIdle();
      expect(rig.capture.status().pendingPaths).toBe(1);
      // …and meanwhile its directory is swapped for a link.
      fs.renameSync(path.join(rig.dir, 'd'), path.join(rig.dir, 'd.old'));
      fs.symlinkSync(outside, path.join(rig.dir, 'd'));
      await touch(rig, 'd', 'd.old');
      expect(rig.capture.status().pendingPaths).toBe(0);
      expect(diffTrees(readTree(rig.dir), rig.model)).toBe('');
    } finally {
      fs.rmSync(outside, { recursive: true, force: true });
    }
  });

  it('journals a second name of a file as a hard link, and a name given its own inode again as unlinked first', async () => {
    const rig = await makeRig();
    const f = (rel: string) => path.join(rig.dir, rel);
    fs.writeFileSync(f('a'), Buffer.alloc(BS * 2, 3));
    await touch(rig, 'a');
    rig.journal.clear();
    fs.mkdirSync(f('d'));
    fs.linkSync(f('a'), f('d/b'));
    await touch(rig, 'd/b');
    expect(rig.journal.ops()).toEqual(['mkdir d', 'hardlink d/b']);
    expect(rig.journal.recent().find((r) => r.op === 'hardlink')).toMatchObject({ target: 'a' });
    // A change through one name is journaled once, for one of the names, not once for each.
    rig.journal.clear();
    fs.writeFileSync(f('d/b'), Buffer.alloc(BS * 2, 4));
    await touch(rig, 'd/b', 'a');
    const writes = rig.journal.ops().filter((o) => o.startsWith('write'));
    expect(writes).toHaveLength(2);
    expect(new Set(writes).size).toBe(1);
    // A save by rename gives `a` an inode of its own: the passive must not write into the shared one.
    rig.journal.clear();
    fs.writeFileSync(f('a.tmp'), 'own content');
    fs.renameSync(f('a.tmp'), f('a'));
    await touch(rig, 'a', 'a.tmp');
    expect(rig.journal.ops().slice(0, 2)).toEqual(['unlink a', 'file a']);
    expect(diffTrees(readTree(rig.dir), rig.model)).toBe('');
  });

  it('journals blocks of zeros as holes, and nothing for those past the size the passive had', async () => {
    const rig = await makeRig();
    const file = path.join(rig.dir, 'sparse');
    fs.writeFileSync(file, '');
    fs.truncateSync(file, BS * 64);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(BS, 7), 0, BS, BS * 10);
    fs.closeSync(fd);
    await touch(rig, 'sparse');
    expect(rig.journal.ops()).toEqual(['file sparse', 'write sparse', 'meta sparse']);
    rig.journal.clear();
    // The data block zeroed again: a hole record, no bytes.
    const fd2 = fs.openSync(file, 'r+');
    fs.writeSync(fd2, Buffer.alloc(BS, 0), 0, BS, BS * 10);
    fs.closeSync(fd2);
    await touch(rig, 'sparse');
    expect(rig.journal.ops()).toEqual(['hole sparse', 'meta sparse']);
    expect(rig.journal.recent()[0]).toMatchObject({ op: 'hole', offset: BS * 10, length: BS });
    expect(diffTrees(readTree(rig.dir), rig.model)).toBe('');
  });

  it('does not take attributes read within their ctime\'s timestamp tick as proven by that ctime, and reads them again after', async () => {
    // A kernel that stamps ctimes from a 4 ms clock (before 6.13) leaves the ctime as it was for
    // a second setfacl right after capture read the first: only a ctime older than the read by
    // more than a tick proves the attributes. The read is made to happen within the tick by a
    // clock that says so (this kernel stamps a change after a stat finer, so it cannot be staged).
    let frozen: number | undefined;
    const rig = await makeRig({ clock: { ...systemClock, now: () => frozen ?? Date.now() } });
    const file = path.join(rig.dir, 'f');
    const dir = path.join(rig.dir, 'd');
    fs.writeFileSync(file, 'content');
    fs.mkdirSync(dir);
    const old = new Date(Date.now() - 3600_000);
    fs.utimesSync(file, old, old);
    await touch(rig, 'f', 'd');
    for (const [p, rel] of [[file, 'f'], [dir, 'd']] as const) {
      rig.journal.clear();
      execFileSync('setfattr', ['-n', 'user.acl', '-v', 'bob', p]);
      const ctimeMs = fs.lstatSync(p).ctimeMs;
      frozen = ctimeMs + 2;
      rig.capture.hint('data', rel);
      // (Not settled: while the clock stands in the tick, capture keeps looking again.)
      const until = async (what: string, ok: () => boolean) => {
        const deadline = Date.now() + 10_000;
        while (!ok()) {
          if (Date.now() > deadline) throw new Error(`${rel}: timed out waiting for ${what}: ${JSON.stringify(rig.manifest.get('data', rel))}`);
          await new Promise((r) => setTimeout(r, 10));
        }
      };
      const ctimeOf = () => {
        const e = rig.manifest.get('data', rel);
        return e === undefined || e.kind === 'symlink' ? undefined : e.ctimeMs;
      };
      await until('the attributes journaled', () => rig.journal.ops().length > 0);
      await rig.capture.whenIdle();
      expect(rig.journal.ops()).toEqual([rel === 'f' ? 'meta f' : 'mkdir d']);
      // Read, and journaled, but not proven: the next look (a scan, an event) reads them again.
      expect(ctimeOf()).toBeUndefined();
      // Once the read is past the tick, a look of its own proves them; nothing more is journaled.
      frozen = undefined;
      await until('the attributes proven', () => ctimeOf() === ctimeMs);
      await rig.settle();
      expect(rig.journal.ops()).toEqual([rel === 'f' ? 'meta f' : 'mkdir d']);
    }
  });

  it('journals an owner or an extended attribute changed alone as one meta carrying both', async () => {
    const rig = await makeRig();
    const file = path.join(rig.dir, 'f');
    fs.writeFileSync(file, 'content');
    await touch(rig, 'f');
    rig.journal.clear();
    fs.chownSync(file, 65534, 65534);
    await touch(rig, 'f');
    expect(rig.journal.ops()).toEqual(['meta f']);
    expect(rig.journal.recent()[0]).toMatchObject({ op: 'meta', uid: 65534, gid: 65534, xattrs: [] });
    rig.journal.clear();
    execFileSync('setfattr', ['-n', 'user.kind', '-v', 'report', file]);
    await touch(rig, 'f');
    const meta = rig.journal.recent()[0];
    expect(meta?.op === 'meta' ? meta.xattrs?.map(([n, v]) => `${n}=${Buffer.from(v).toString()}`) : undefined).toEqual(['user.kind=report']);
    rig.journal.clear();
    await touch(rig, 'f');
    expect(rig.journal.ops()).toEqual([]);
  });
});
