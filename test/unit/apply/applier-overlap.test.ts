// A durable point running behind the caller (ApplyOptions.overlap): the next records are applied
// while the last call's syncfs runs, points report in order, a failure of one fails the call
// that came after it, and nothing is reported durable before its syncfs returned.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { initHash } from '../../../shared/hash.ts';
import { TandemError } from '../../../shared/errors.ts';
import { silentLogger } from '../../../shared/log.ts';
import { FakeClock } from '../../../shared/clock.ts';
import type { DataRecord } from '../../../shared/protocol/index.ts';
import { Manifest } from '../../../agent/manifest/index.ts';
import { Applier, FSYNC_BEHIND_BYTES, type ApplierSeams } from '../../../agent/apply/applier.ts';
import { ROOT, RecordBuilder, manifestDifferences, tmpDir } from './helpers.ts';

const BS = 4096;

let base: string;
let rootDir: string;

beforeAll(async () => {
  await initHash();
});

beforeEach(() => {
  base = tmpDir();
  rootDir = path.join(base, 'root');
  fs.mkdirSync(rootDir);
});

afterEach(() => {
  fs.rmSync(base, { recursive: true, force: true });
});

/** `n` new small files from sequence `seq` on, in three directories. */
function files(seq: number, n: number, tag: string): DataRecord[] {
  const b = new RecordBuilder(seq);
  for (let i = 0; i < n; i++) b.write(`d${i % 3}/${tag}${i}`, 0, `${tag} ${i}`);
  return b.records;
}

/** A syncfs that waits until the test lets it go, and runs the real `sync -f` then (or fails). */
class GatedSyncfs {
  readonly calls: { root: string; release: (fail?: Error) => void }[] = [];
  private arrived: (() => void)[] = [];

  readonly seam = (root: string): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      this.calls.push({
        root,
        release: (fail) => {
          if (fail !== undefined) return reject(fail);
          execFileSync('sync', ['-f', root]);
          resolve();
        },
      });
      for (const w of this.arrived.splice(0)) w();
    });

  /** Resolves once `n` syncfs calls were made. */
  async waitFor(n: number): Promise<void> {
    while (this.calls.length < n) await new Promise<void>((r) => this.arrived.push(r));
  }
}

async function setup(seams: ApplierSeams) {
  const manifest = new Manifest([ROOT]);
  const applier = new Applier({ roots: [{ name: ROOT, path: rootDir, exclude: [] }], manifest, blockSize: BS, log: silentLogger(), clock: new FakeClock(1_700_000_000_000), seams });
  await applier.init();
  return { applier, manifest };
}

const caught = async (p: Promise<unknown> | undefined): Promise<TandemError> => {
  try {
    await p;
  } catch (err) {
    return err as TandemError;
  }
  throw new Error('expected a failure');
};

describe('a durable point behind the caller', () => {
  it('returns once applied, reports after its syncfs, and the next call applies meanwhile; points report in order', async () => {
    const gate = new GatedSyncfs();
    const { applier, manifest } = await setup({ syncfs: gate.seam });
    const reported: number[] = [];
    const events: string[] = [];
    const durable = async (seq: number) => void reported.push(seq);
    const first = files(1, 40, 'a');
    const second = files(41, 40, 'b');

    const behind1 = await applier.apply(first, durable, { overlap: true, applied: () => events.push('applied 1') });
    expect(behind1).toBeDefined();
    await gate.waitFor(1);
    // Applied (on disk, in the manifest) and not reported: its syncfs has not returned.
    expect(fs.readFileSync(path.join(rootDir, 'd0/a0'), 'utf8')).toBe('a 0');
    expect(reported).toEqual([]);
    expect(events).toEqual(['applied 1']);

    // The next call applies its records while the first point is held; its own point waits.
    const second$ = applier.apply(second, durable, { overlap: true, after: behind1!.done, applied: () => events.push('applied 2') });
    // Its records are written while the first syncfs is still held...
    await gate.waitFor(1);
    for (let i = 0; i < 500 && !fs.existsSync(path.join(rootDir, 'd0/b39')); i++) await new Promise((r) => setTimeout(r, 10));
    expect(fs.readFileSync(path.join(rootDir, 'd0/b39'), 'utf8')).toBe('b 39');
    expect(gate.calls).toHaveLength(1);
    // ...and it returns only once the first point reported: at most one runs behind.
    gate.calls[0]!.release();
    const behind2 = await second$;
    expect(reported).toEqual([first.at(-1)!.seq]);
    expect(events).toEqual(['applied 1', 'applied 2']);
    await gate.waitFor(2);
    expect(reported).toEqual([first.at(-1)!.seq]);
    gate.calls[1]!.release();
    await behind2!.done;
    expect(reported).toEqual([first.at(-1)!.seq, second.at(-1)!.seq]);
    expect(manifestDifferences(manifest, ROOT, rootDir, BS)).toEqual([]);
    await applier.close();
  });

  it('a point of a file into which its group wrote FSYNC_BEHIND_BYTES runs behind, fsyncing the file through its own descriptor, while the next group is written; a point of a few small writes is made in the call', async () => {
    // fsyncs held while `held`, each run for real once let go.
    let held = false;
    const waiting: (() => void)[] = [];
    const heldFds: number[] = [];
    const fsync = (fd: number) =>
      new Promise<void>((resolve, reject) => {
        const run = () => fs.fsync(fd, (err) => (err ? reject(err) : resolve()));
        if (!held) return run();
        heldFds.push(fd);
        waiting.push(run);
      });
    const { applier, manifest } = await setup({ fsync });
    const reported: number[] = [];
    const durable = async (seq: number) => void reported.push(seq);
    const parts = [0, 1, 2, 3, 4].map((k) => Buffer.alloc(FSYNC_BEHIND_BYTES, k));
    const part = (k: number) => parts[k]!;
    // Created: its directory changed too, so this point is made in the call.
    const first = new RecordBuilder(1);
    first.content('big', part(1), BS);
    expect(await applier.apply(first.records, durable, { overlap: true })).toBeUndefined();
    expect(reported).toEqual([first.records.at(-1)!.seq]);

    held = true;
    const second = new RecordBuilder(first.records.length + 1);
    for (let off = 0; off < FSYNC_BEHIND_BYTES; off += BS) second.write('big', FSYNC_BEHIND_BYTES + off, part(2).subarray(0, BS));
    let returned = false;
    const second$ = applier.apply(second.records, durable, { overlap: true }).then((r) => {
      returned = true;
      return r;
    });
    for (let i = 0; i < 3000 && waiting.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(waiting).toHaveLength(1);
    // The file's own descriptor, still open while its fsync is held.
    expect(fs.fstatSync(heldFds[0]!).ino).toBe(fs.statSync(path.join(rootDir, 'big')).ino);
    // The call returned with that fsync still held: its point runs behind.
    for (let i = 0; i < 3000 && !returned; i++) await new Promise((r) => setTimeout(r, 10));
    expect(returned).toBe(true);
    const point = await second$;
    expect(point).toBeDefined();
    expect(reported).toEqual([first.records.at(-1)!.seq]);

    // The next group is written while that fsync is held; its own point waits for it.
    const third = new RecordBuilder(first.records.length + second.records.length + 1);
    for (let off = 0; off < FSYNC_BEHIND_BYTES; off += BS) third.write('big', 2 * FSYNC_BEHIND_BYTES + off, part(3).subarray(0, BS));
    const third$ = applier.apply(third.records, durable, { overlap: true, after: point!.done });
    const size = () => fs.statSync(path.join(rootDir, 'big')).size;
    for (let i = 0; i < 3000 && size() < 3 * FSYNC_BEHIND_BYTES; i++) await new Promise((r) => setTimeout(r, 10));
    expect(size()).toBe(3 * FSYNC_BEHIND_BYTES);
    expect(reported).toEqual([first.records.at(-1)!.seq]);
    held = false;
    for (const run of waiting.splice(0)) run();
    const point3 = await third$;
    await point3?.done;
    expect(reported).toEqual([first, second, third].map((b) => b.records.at(-1)!.seq));

    // One block: the file's own fsync, in the call.
    const small = new RecordBuilder(first.records.length + second.records.length + third.records.length + 1);
    small.write('big', 0, part(4).subarray(0, BS));
    expect(await applier.apply(small.records, durable, { overlap: true, after: point3?.done })).toBeUndefined();
    expect(reported.at(-1)).toBe(small.records.at(-1)!.seq);
    const want = Buffer.concat([part(4).subarray(0, BS), part(1).subarray(BS), part(2), part(3)]);
    expect(fs.readFileSync(path.join(rootDir, 'big')).equals(want)).toBe(true);
    expect(manifestDifferences(manifest, ROOT, rootDir, BS)).toEqual([]);
    await applier.close();
  });

  it('a point of a few files is made in the call, after the point behind it', async () => {
    const gate = new GatedSyncfs();
    const { applier } = await setup({ syncfs: gate.seam });
    const reported: number[] = [];
    const durable = async (seq: number) => void reported.push(seq);
    const many = files(1, 40, 'a');
    const few = new RecordBuilder(41);
    few.write('few', 0, 'few');
    const behind = await applier.apply(many, durable, { overlap: true });
    await gate.waitFor(1);
    let done = false;
    const call = applier.apply(few.records, durable, { overlap: true, after: behind!.done }).then((r) => {
      done = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 50));
    // Held by the point behind it: nothing of the second call is reported before the first.
    expect(done).toBe(false);
    expect(reported).toEqual([]);
    gate.calls[0]!.release();
    expect(await call).toBeUndefined();
    expect(reported).toEqual([40, 41]);
    expect(gate.calls).toHaveLength(1);
    await applier.close();
  });

  it('a failed point behind fails the call after it; nothing is reported past the last syncfs that returned, and the redo completes', async () => {
    const gate = new GatedSyncfs();
    const { applier, manifest } = await setup({ syncfs: gate.seam });
    const reported: number[] = [];
    const durable = async (seq: number) => void reported.push(seq);
    const first = files(1, 40, 'a');
    const second = files(41, 40, 'b');
    const behind = await applier.apply(first, durable, { overlap: true });
    await gate.waitFor(1);
    const second$ = applier.apply(second, durable, { overlap: true, after: behind!.done });
    gate.calls[0]!.release(Object.assign(new Error('EIO: i/o error, syncfs'), { code: 'EIO' }));
    expect((await caught(behind!.done)).code).toBe('TANDEM_ERR_APPLY_FAILED');
    const err = await caught(second$);
    expect(err.code).toBe('TANDEM_ERR_APPLY_FAILED');
    expect(err.message).toMatch(/EIO/);
    expect(reported).toEqual([]);
    expect(gate.calls).toHaveLength(1);

    // The caller redoes both from the last durable point, in the call this time.
    const redo = applier.apply([...first, ...second], durable);
    await gate.waitFor(2);
    gate.calls[1]!.release();
    expect(await redo).toBeUndefined();
    expect(reported).toEqual([second.at(-1)!.seq]);
    expect(manifestDifferences(manifest, ROOT, rootDir, BS)).toEqual([]);
    await applier.close();
  });

  it('close() waits for the point behind', async () => {
    const gate = new GatedSyncfs();
    const { applier } = await setup({ syncfs: gate.seam });
    const reported: number[] = [];
    await applier.apply(files(1, 40, 'a'), async (seq) => void reported.push(seq), { overlap: true });
    await gate.waitFor(1);
    let closed = false;
    const close = applier.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(false);
    gate.calls[0]!.release();
    await close;
    expect(reported).toEqual([40]);
  });
});
