import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReceiveLog, type StoredBatch } from '../../../agent/apply/receive-log.ts';
import { Journal, segmentName } from '../../../agent/journal/index.ts';
import { FakeClock } from '../../../shared/clock.ts';
import { initHash } from '../../../shared/hash.ts';
import { silentLogger } from '../../../shared/log.ts';
import { encodeFrame, parseFrames, type CommitEntry } from '../../../shared/protocol/index.ts';
import { captureLogger, fileRecord, readSegment, removeTempDirs, segmentFiles, tempDir, writeRecord } from '../journal/helpers.ts';

beforeAll(async () => {
  await initHash();
});

const opened: ReceiveLog[] = [];
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close().catch(() => undefined);
  await removeTempDirs();
});

async function openRl(dir: string, segmentBytes = 1 << 20, log = silentLogger()): Promise<ReceiveLog> {
  const rl = await ReceiveLog.open({ dir, segmentBytes, log });
  opened.push(rl);
  return rl;
}

async function closeRl(rl: ReceiveLog): Promise<void> {
  opened.splice(opened.indexOf(rl), 1);
  await rl.close();
}

/** Batch first..last as the active sends it: journal frames, records then commit. */
function batchBytes(first: number, last: number, payload = 0): Buffer {
  const parts: Buffer[] = [];
  for (let s = first; s <= last; s++) {
    const data = Buffer.alloc(payload, s & 0xff);
    parts.push(payload > 0 ? encodeFrame({ op: 'write', seq: s, root: 'data', path: `f${s}`, offset: 0, data, hash: Buffer.alloc(8) }) : encodeFrame({ op: 'file', seq: s, root: 'data', path: `f${s}`, size: s }));
  }
  parts.push(encodeFrame({ op: 'commit', first, last, consistent: first % 2 === 1, ts: 1_700_000_000_000 + first, generation: 'gen-1' }));
  return Buffer.concat(parts);
}

async function pending(rl: ReceiveLog): Promise<StoredBatch[]> {
  const out: StoredBatch[] = [];
  for await (const b of rl.pendingBatches()) out.push(b);
  return out;
}

const shape = (bs: StoredBatch[]): [number, number, number[]][] => bs.map((b) => [b.first, b.last, b.records.map((r) => r.seq)]);

describe('ReceiveLog', () => {
  it('starts empty with nothing received, applied or pending', async () => {
    const rl = await openRl(await tempDir());
    expect(rl.appliedSeq).toBe(0);
    expect(rl.receivedSeq).toBe(0);
    expect(await pending(rl)).toEqual([]);
  });

  it('writes each batch verbatim and keeps it across a reopen', async () => {
    const dir = await tempDir();
    const rl = await openRl(dir);
    const b1 = batchBytes(1, 3);
    const b2 = batchBytes(4, 5, 5000);
    await rl.appendBatch(b1);
    await rl.appendBatch(b2);
    expect(rl.receivedSeq).toBe(5);
    expect(readSegment(dir, segmentName(1)).equals(Buffer.concat([b1, b2]))).toBe(true);
    await closeRl(rl);

    const again = await openRl(dir);
    expect(again.receivedSeq).toBe(5);
    expect(again.appliedSeq).toBe(0);
    const redo = await pending(again);
    expect(shape(redo)).toEqual([
      [1, 3, [1, 2, 3]],
      [4, 5, [4, 5]],
    ]);
    expect(redo[1]).toMatchObject({ consistent: false, ts: 1_700_000_000_004, generation: 'gen-1' });
    const w = redo[1]!.records[0]!;
    expect(w.op === 'write' && Buffer.from(w.data).equals(Buffer.alloc(5000, 4))).toBe(true);
  });

  it('accepts the exact bytes a journal commits', async () => {
    const jdir = await tempDir();
    const j = await Journal.open({ dir: jdir, segmentBytes: 1 << 20, maxBytes: 1 << 30, generation: 'gen-7', log: silentLogger(), clock: new FakeClock() });
    j.append(writeRecord('a', 1000));
    j.append(fileRecord('a', 1000));
    const info = (await j.commit(true))!;
    const frames = await j.readBatch(info);
    await j.close();
    const dir = await tempDir();
    const rl = await openRl(dir);
    await rl.appendBatch(frames);
    expect(rl.receivedSeq).toBe(2);
    expect(readSegment(dir, segmentName(1)).equals(frames)).toBe(true);
  });

  it('redoes the batches after the applied mark, including the one the mark cuts through', async () => {
    const dir = await tempDir();
    const rl = await openRl(dir);
    await rl.appendBatch(batchBytes(1, 3));
    await rl.appendBatch(batchBytes(4, 6));
    await rl.appendBatch(batchBytes(7, 9));
    await rl.markApplied(3);
    await rl.markApplied(5);
    expect(rl.appliedSeq).toBe(5);
    await closeRl(rl);
    const again = await openRl(dir);
    expect(again.appliedSeq).toBe(5);
    expect(again.receivedSeq).toBe(9);
    expect(shape(await pending(again))).toEqual([
      [4, 6, [4, 5, 6]],
      [7, 9, [7, 8, 9]],
    ]);
    await again.markApplied(9);
    expect(await pending(again)).toEqual([]);
  });

  it('never moves the applied mark back', async () => {
    const dir = await tempDir();
    const rl = await openRl(dir);
    await rl.appendBatch(batchBytes(1, 5));
    await rl.markApplied(4);
    const size = fs.statSync(path.join(dir, segmentName(1))).size;
    await rl.markApplied(2);
    expect(rl.appliedSeq).toBe(4);
    expect(fs.statSync(path.join(dir, segmentName(1))).size).toBe(size);
    await expect(rl.markApplied(6)).rejects.toMatchObject({ code: 'TANDEM_ERR_INTERNAL' });
  });

  it('refuses a batch at or below receivedSeq with TANDEM_ERR_PROTOCOL and writes nothing', async () => {
    const dir = await tempDir();
    const rl = await openRl(dir);
    await rl.appendBatch(batchBytes(1, 5));
    const size = fs.statSync(path.join(dir, segmentName(1))).size;
    await expect(rl.appendBatch(batchBytes(5, 6))).rejects.toMatchObject({ code: 'TANDEM_ERR_PROTOCOL' });
    await expect(rl.appendBatch(batchBytes(1, 5))).rejects.toMatchObject({ code: 'TANDEM_ERR_PROTOCOL' });
    await expect(rl.appendBatch(batchBytes(3, 3))).rejects.toMatchObject({ code: 'TANDEM_ERR_PROTOCOL' });
    expect(fs.statSync(path.join(dir, segmentName(1))).size).toBe(size);
    expect(rl.receivedSeq).toBe(5);
    await closeRl(rl);
    // Also after a reopen.
    const again = await openRl(dir);
    await expect(again.appendBatch(batchBytes(4, 8))).rejects.toMatchObject({ code: 'TANDEM_ERR_PROTOCOL' });
  });

  it('refuses frames that are not a well-formed batch', async () => {
    const rl = await openRl(await tempDir());
    const good = batchBytes(1, 2);
    const flipped = Buffer.from(good);
    flipped[12]! ^= 0xff;
    await expect(rl.appendBatch(flipped)).rejects.toMatchObject({ code: 'TANDEM_ERR_CHECKSUM' });
    await expect(rl.appendBatch(good.subarray(0, good.length - 3))).rejects.toMatchObject({ code: 'TANDEM_ERR_FRAME_MALFORMED' });
    const noCommit = parseFrames(good).frames[0]!;
    await expect(rl.appendBatch(good.subarray(0, noCommit.length))).rejects.toMatchObject({ code: 'TANDEM_ERR_PROTOCOL' });
    const wrongCommit = Buffer.concat([good.subarray(0, noCommit.length), encodeFrame({ op: 'commit', first: 1, last: 2, consistent: true, ts: 0, generation: 'g' })]);
    await expect(rl.appendBatch(wrongCommit)).rejects.toMatchObject({ code: 'TANDEM_ERR_PROTOCOL' });
    expect(rl.receivedSeq).toBe(0);
    expect(rl.totalBytes).toBe(0);
  });

  it('accepts a forward jump (a synchronisation) and keeps it across a reopen', async () => {
    const dir = await tempDir();
    const rl = await openRl(dir);
    await rl.appendBatch(batchBytes(1, 2));
    await rl.markApplied(2);
    await rl.appendBatch(batchBytes(1000, 1001));
    expect(rl.receivedSeq).toBe(1001);
    await closeRl(rl);
    const again = await openRl(dir);
    expect(again.receivedSeq).toBe(1001);
    expect(shape(await pending(again))).toEqual([[1000, 1001, [1000, 1001]]]);
    await expect(again.appendBatch(batchBytes(500, 501))).rejects.toMatchObject({ code: 'TANDEM_ERR_PROTOCOL' });
  });

  it('takes the commit from the caller when the frames were already parsed', async () => {
    const dir = await tempDir();
    const rl = await openRl(dir);
    const bytes = batchBytes(1, 2);
    const commit = parseFrames(bytes).frames[2]!.entry as CommitEntry;
    await rl.appendBatch(bytes, commit);
    expect(rl.receivedSeq).toBe(2);
    await closeRl(rl);
    expect((await openRl(dir)).receivedSeq).toBe(2);
  });

  it('lets concurrent batches and marks share fdatasyncs while keeping their order on disk', async () => {
    const dir = await tempDir();
    const rl = await openRl(dir);
    const before = rl.syncCount;
    const batches = Array.from({ length: 30 }, (_, k) => batchBytes(k * 2 + 1, k * 2 + 2));
    const calls: Promise<void>[] = [];
    for (let k = 0; k < batches.length; k++) {
      calls.push(rl.appendBatch(batches[k]!));
      if (k > 0) calls.push(rl.markApplied(k * 2));
    }
    await Promise.all(calls);
    expect(rl.syncCount - before).toBeLessThanOrEqual(3);
    expect(rl.receivedSeq).toBe(60);
    expect(rl.appliedSeq).toBe(58);
    const disk = readSegment(dir, segmentName(1));
    const { frames, stop } = parseFrames(disk);
    expect(stop.kind).toBe('end');
    const order = frames.flatMap((f) => (f.entry.op === 'commit' ? [`c${f.entry.last}`] : f.entry.op === 'applied' ? [`a${f.entry.seq}`] : []));
    const expected: string[] = [];
    for (let k = 0; k < 30; k++) {
      expected.push(`c${k * 2 + 2}`);
      if (k > 0) expected.push(`a${k * 2}`);
    }
    expect(order).toEqual(expected);
  });

  it('keeps the latest applied mark when the segments before it are trimmed', async () => {
    const dir = await tempDir();
    const rl = await openRl(dir, 8 * 1024);
    let seq = 1;
    for (let k = 0; k < 12; k++) {
      await rl.appendBatch(batchBytes(seq, seq + 1, 2000));
      await rl.markApplied(seq + 1);
      seq += 2;
    }
    await rl.appendBatch(batchBytes(seq, seq + 1, 2000));
    const segsBefore = segmentFiles(dir);
    expect(segsBefore.length).toBeGreaterThan(2);
    // Every new segment opens with the mark carried over.
    for (const s of segsBefore.slice(1)) {
      const first = parseFrames(readSegment(dir, s.name)).frames[0]!.entry;
      expect(first.op).toBe('applied');
    }
    await rl.trim();
    const left = segmentFiles(dir);
    expect(left.length).toBe(1);
    expect(rl.totalBytes).toBe(left[0]!.size);
    await closeRl(rl);
    const again = await openRl(dir, 8 * 1024);
    expect(again.appliedSeq).toBe(24);
    expect(again.receivedSeq).toBe(26);
    expect(shape(await pending(again))).toEqual([[25, 26, [25, 26]]]);
  });

  it('stays bounded when batches are applied from memory and only their marks are written', async () => {
    const dir = await tempDir();
    const rl = await openRl(dir, 1024);
    for (let seq = 1; seq <= 2000; seq++) {
      rl.skip(seq);
      await rl.markApplied(seq);
      if (seq % 100 === 0) await rl.trim();
    }
    // ~20 bytes a mark: 40 KB of marks, in 1 KiB segments, trimmed down to the last one or two.
    expect(segmentFiles(dir).length).toBeLessThanOrEqual(2);
    expect(rl.totalBytes).toBeLessThan(2048);
    expect(rl.receivedSeq).toBe(2000);
    // A batch stored after them starts above them, and a reopen finds the mark and the batch.
    await expect(rl.appendBatch(batchBytes(2000, 2001))).rejects.toThrow(/does not start above/);
    await rl.appendBatch(batchBytes(2001, 2002));
    await closeRl(rl);
    const again = await openRl(dir, 1024);
    expect(again.appliedSeq).toBe(2000);
    expect(again.receivedSeq).toBe(2002);
    expect(shape(await pending(again)).map(([f, l]) => [f, l])).toEqual([[2001, 2002]]);
  });

  it('keeps segments that still hold unapplied records', async () => {
    const dir = await tempDir();
    const rl = await openRl(dir, 4 * 1024);
    for (let k = 0; k < 6; k++) await rl.appendBatch(batchBytes(k * 2 + 1, k * 2 + 2, 2000));
    await rl.markApplied(3);
    const before = segmentFiles(dir).map((s) => s.name);
    await rl.trim();
    const after = segmentFiles(dir).map((s) => s.name);
    expect(after.length).toBeLessThan(before.length);
    await closeRl(rl);
    const again = await openRl(dir, 4 * 1024);
    // Batch 3..4 holds record 4, not applied: it is still there to redo.
    expect(shape(await pending(again)).map(([f, l]) => [f, l])).toEqual([
      [3, 4],
      [5, 6],
      [7, 8],
      [9, 10],
      [11, 12],
    ]);
  });

  it('cuts a batch torn by a crash and reopens at the last complete batch or mark', async () => {
    const dir = await tempDir();
    const rl = await openRl(dir);
    await rl.appendBatch(batchBytes(1, 2));
    await rl.markApplied(2);
    const durable = rl.totalBytes;
    await rl.appendBatch(batchBytes(3, 4, 3000));
    await closeRl(rl);
    const file = path.join(dir, segmentName(1));
    fs.truncateSync(file, durable + 2000);
    const { log, lines } = captureLogger();
    const again = await openRl(dir, 1 << 20, log);
    expect(fs.statSync(file).size).toBe(durable);
    expect(again.receivedSeq).toBe(2);
    expect(again.appliedSeq).toBe(2);
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    // The active sends 3..4 again; it is accepted.
    await again.appendBatch(batchBytes(3, 4, 3000));
    expect(again.receivedSeq).toBe(4);
  });
});
