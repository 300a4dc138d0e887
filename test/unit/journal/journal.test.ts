import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Journal, batchProblem as batchProblemOf, segmentName, type BatchInfo, type JournalOptions } from '../../../agent/journal/index.ts';
import { FakeClock } from '../../../shared/clock.ts';
import { hash64 } from '../../../shared/hash.ts';
import { silentLogger } from '../../../shared/log.ts';
import { compressWrite, decompressWrite, encodeFrame, parseFrames, type DataRecord, type WriteRecord } from '../../../shared/protocol/index.ts';
import { captureLogger, fileRecord, journalTestHooks, readSegment, segmentFiles, tempDir, writeRecord } from './helpers.ts';

const open = journalTestHooks();

async function openJournal(dir: string, extra: Partial<JournalOptions> = {}): Promise<Journal> {
  const j = await Journal.open({ dir, segmentBytes: 1 << 20, maxBytes: 1 << 30, generation: 'gen-1', log: silentLogger(), clock: new FakeClock(), ...extra });
  open.push(j);
  return j;
}

async function closeJournal(j: Journal): Promise<void> {
  open.splice(open.indexOf(j), 1);
  await j.close();
}

function allBatches(j: Journal): BatchInfo[] {
  const out: BatchInfo[] = [];
  for (let b = j.batchStartingAt(j.firstSeq); b !== undefined; b = j.batchAfter(b)) out.push(b);
  return out;
}

const ranges = (bs: BatchInfo[]): [number, number][] => bs.map((b) => [b.first, b.last]);

describe('Journal', () => {
  it('starts an empty journal at headSeq 0 and gives the first record seq 1', async () => {
    const j = await openJournal(await tempDir());
    expect(j.headSeq).toBe(0);
    expect(j.firstSeq).toBe(1);
    expect(j.append(fileRecord('a', 1))).toBe(1);
    expect(j.append(fileRecord('b', 2))).toBe(2);
    expect(j.pendingRecords).toBe(2);
    expect(j.headSeq).toBe(0);
    const b = await j.commit(true);
    expect(b).toMatchObject({ first: 1, last: 2, consistent: true, generation: 'gen-1', ts: 1_700_000_000_000 });
    expect(j.headSeq).toBe(2);
    expect(j.pendingRecords).toBe(0);
    expect(j.pendingBytes).toBe(0);
  });

  it('keeps compressed blocks as they were appended, counts their raw bytes, and reads journals written without them', async () => {
    const dir = await tempDir();
    const plain = await openJournal(dir);
    plain.append(writeRecord('old', 65536, 0x61));
    await plain.commit(true);
    await closeJournal(plain);
    const j = await openJournal(dir);
    j.append(compressWrite(writeRecord('text', 65536, 0x62) as WriteRecord, 1));
    const random = crypto.randomBytes(65536);
    j.append(compressWrite({ op: 'write' as const, root: 'data', path: 'random', offset: 0, data: random, hash: hash64(random) }, 1));
    const b = (await j.commit(true))!;
    expect(b.payloadBytes).toBe(2 * 65536); // progress counts the file's bytes
    expect(b.bytes).toBeLessThan(65536 + 2000); // the text block shrank to almost nothing
    await closeJournal(j);
    const again = await openJournal(dir);
    const batches = allBatches(again);
    expect(batches.map((x) => x.payloadBytes)).toEqual([65536, 2 * 65536]);
    const entries = (await Promise.all(batches.map(async (x) => parseFrames(await again.readBatch(x)).frames.map((f) => f.entry)))).flat();
    const writes = entries.filter((e): e is WriteRecord => e.op === 'write');
    expect(writes.map((w) => [w.path, w.encoding])).toEqual([['old', undefined], ['text', 'deflate-raw'], ['random', undefined]]);
    expect(Buffer.from(decompressWrite(writes[1]!).data).equals(Buffer.alloc(65536, 0x62))).toBe(true);
    expect(Buffer.from(writes[2]!.data).equals(random)).toBe(true);
  });

  it('returns undefined from a commit with nothing pending', async () => {
    const j = await openJournal(await tempDir());
    expect(await j.commit(false)).toBeUndefined();
    expect(j.headSeq).toBe(0);
  });

  it('keeps every batch and headSeq across a reopen', async () => {
    const dir = await tempDir();
    const j = await openJournal(dir);
    const made: BatchInfo[] = [];
    for (let b = 0; b < 20; b++) {
      for (let r = 0; r <= b % 4; r++) j.append(writeRecord(`f${b}`, 100 + r, 0x41 + (b % 26), r * 1000));
      made.push((await j.commit(b % 2 === 0))!);
    }
    const head = j.headSeq;
    await closeJournal(j);

    const again = await openJournal(dir);
    expect(again.headSeq).toBe(head);
    expect(again.firstSeq).toBe(1);
    expect(allBatches(again)).toEqual(made);
    expect(again.append(fileRecord('next', 0))).toBe(head + 1);
  });

  it('reads back exactly the bytes parseFrames accepts as the records and the commit, from memory and from disk', async () => {
    const dir = await tempDir();
    const j = await openJournal(dir);
    const records = [writeRecord('a', 3000, 0x61), fileRecord('a', 3000), { op: 'meta', root: 'data', path: 'a', mode: 0o644, mtimeMs: 1234.5 } as const];
    for (const r of records) j.append(r);
    const b = (await j.commit(true))!;
    const fromMemory = await j.readBatch(b);
    const onDisk = readSegment(dir, b.segment).subarray(b.offset, b.offset + b.length);
    expect(fromMemory.equals(onDisk)).toBe(true);
    // `bytes` is what the window counts (the wire), `payloadBytes` the file data carried.
    expect(b.bytes).toBe(fromMemory.length);
    expect(b.length).toBe(fromMemory.length);
    expect(b.payloadBytes).toBe(3000);
    const { frames, stop } = parseFrames(fromMemory);
    expect(stop.kind).toBe('end');
    expect(frames.map((f) => f.entry.op)).toEqual(['write', 'file', 'meta', 'commit']);
    expect((frames[0]!.entry as DataRecord & { op: 'write' }).data).toEqual(Buffer.alloc(3000, 0x61));
    expect(frames[3]!.entry).toEqual({ op: 'commit', first: 1, last: 3, consistent: true, ts: b.ts, generation: 'gen-1' });
    await closeJournal(j);

    const again = await openJournal(dir);
    const b2 = again.batchStartingAt(1)!;
    expect(b2).toEqual(b);
    expect((await again.readBatch(b2)).equals(onDisk)).toBe(true);
  });

  it('writes frames again into the memory of batches only once they are acknowledged and trimmed, never while they can still be sent or read', async () => {
    const j = await openJournal(await tempDir(), { segmentBytes: 256 << 20 });
    const block = 1 << 20;
    // 4 MiB batches: one 16 MiB arena holds four of them.
    const batchOf = async (fill: number): Promise<{ b: BatchInfo; view: Buffer }> => {
      for (let i = 0; i < 4; i++) j.append(writeRecord(`f${fill}`, block, fill, i * block));
      const b = (await j.commit(false))!;
      return { b, view: await j.readBatch(b) };
    };
    const first = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((k) => batchOf(0x10 + k)));
    // Trimmed but never acknowledged (a synchronisation discarding what is in flight): the
    // memory of what may still be on its way to the passive is left alone.
    await j.trim(first[9]!.b.last);
    const unacked = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((k) => batchOf(0x30 + k)));
    for (const { b, view } of first) expect(batchProblemOf(view, b)).toBeUndefined();
    const firstBuffers = new Set(first.map((x) => x.view.buffer));
    expect(unacked.some((x) => firstBuffers.has(x.view.buffer))).toBe(false);
    // Acknowledged (durable on the passive): they leave the cache, so a sender resuming below
    // the acknowledgement reads them from disk, intact; the memory of the first batches, now
    // acknowledged and trimmed, is written again.
    j.acknowledged(unacked[7]!.b.last);
    const mid = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((k) => batchOf(0x40 + k)));
    expect(mid.some((x) => firstBuffers.has(x.view.buffer))).toBe(true);
    for (const { b } of unacked) {
      const again = await j.readBatch(b);
      expect(batchProblemOf(again, b)).toBeUndefined();
      expect(mid.some((x) => x.view.buffer === again.buffer)).toBe(false);
    }
    // Acknowledged and trimmed: the next batches are framed into that memory, and read back right.
    j.acknowledged(mid[7]!.b.last);
    await j.trim(mid[7]!.b.last);
    const later = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((k) => batchOf(0x50 + k)));
    const earlier = new Set([...unacked, ...mid].map((x) => x.view.buffer));
    expect(later.some((x) => earlier.has(x.view.buffer))).toBe(true);
    for (const { b, view } of later) {
      expect(batchProblemOf(view, b)).toBeUndefined();
      const { frames } = parseFrames(view);
      expect((frames[0]!.entry as WriteRecord).data[0]).toBe(0x50 + later.findIndex((x) => x.b === b));
    }
  });

  it('writes frames again into the memory of batches acknowledged and pushed out of the cache for room, though not trimmed', async () => {
    // The trim can be held back (by the manifest's persisted sequence) while a big file streams:
    // memory acknowledged and no longer cached is reused all the same.
    const j = await openJournal(await tempDir(), { segmentBytes: 256 << 20, cacheBytes: 32 << 20 });
    const block = 1 << 20;
    const batchOf = async (fill: number): Promise<{ b: BatchInfo; view: Buffer }> => {
      for (let i = 0; i < 4; i++) j.append(writeRecord(`f${fill}`, block, fill, i * block));
      const b = (await j.commit(false))!;
      return { b, view: await j.readBatch(b) };
    };
    const first: { b: BatchInfo; view: Buffer }[] = [];
    for (let k = 0; k < 8; k++) first.push(await batchOf(0x10 + k));
    const second: { b: BatchInfo; view: Buffer }[] = [];
    for (let k = 0; k < 8; k++) second.push(await batchOf(0x30 + k));
    // The cache (32 MiB) now holds only the last batches of `second`; nothing acknowledged yet.
    const firstBuffers = new Set(first.map((x) => x.view.buffer));
    expect(second.some((x) => firstBuffers.has(x.view.buffer))).toBe(false);
    j.acknowledged(second[7]!.b.last);
    const third: { b: BatchInfo; view: Buffer }[] = [];
    for (let k = 0; k < 4; k++) third.push(await batchOf(0x50 + k));
    expect(third.some((x) => firstBuffers.has(x.view.buffer))).toBe(true);
    for (const [k, { b, view }] of third.entries()) {
      expect(batchProblemOf(view, b)).toBeUndefined();
      expect((parseFrames(view).frames[0]!.entry as WriteRecord).data[0]).toBe(0x50 + k);
    }
    // Acknowledged batches are read back intact (from disk) whatever memory was reused.
    for (const { b } of second) expect(batchProblemOf(await j.readBatch(b), b)).toBeUndefined();
  });

  it('lets go of acknowledged batches at once, though the trim is held back: frame memory stays at a few arenas', async () => {
    // A synchronisation holds the trim back (the manifest's persisted sequence) while the
    // passive acknowledges as it goes: acknowledged batches must not fill the cache and keep
    // its arenas alive (~130 MiB on the active during 100,000 small files).
    const j = await openJournal(await tempDir(), { segmentBytes: 1 << 30 });
    const block = 1 << 20;
    let most = 0;
    for (let k = 0; k < 40; k++) {
      for (let i = 0; i < 4; i++) j.append(writeRecord(`f${k}`, block, k, i * block));
      const b = (await j.commit(false))!;
      const view = await j.readBatch(b);
      expect(batchProblemOf(view, b)).toBeUndefined();
      j.acknowledged(b.last);
      const m = j.frameMemory;
      expect(m.cachedBytes).toBe(0);
      most = Math.max(most, m.arenaBytes);
    }
    // 160 MiB journaled: the current arena and two spares at most, never the 64 MiB cache's worth.
    expect(most).toBeLessThanOrEqual(3 * 16 * 1024 * 1024);
    // Not acknowledged: the cache keeps them for the sender (bounded by cacheBytes).
    for (let i = 0; i < 4; i++) j.append(writeRecord('g', block, 0x77, i * block));
    await j.commit(false);
    expect(j.frameMemory.cachedBytes).toBeGreaterThan(4 * block);
  });

  it('copies a record when it is appended, so capture may reuse its buffers', async () => {
    const j = await openJournal(await tempDir());
    const r = writeRecord('a', 100, 0x61);
    j.append(r);
    if (r.op === 'write') (r.data as Buffer).fill(0x7a);
    const b = (await j.commit(true))!;
    const { frames } = parseFrames(await j.readBatch(b));
    expect((frames[0]!.entry as DataRecord & { op: 'write' }).data).toEqual(Buffer.alloc(100, 0x61));
  });

  it('refuses a record the log could not read back', async () => {
    const j = await openJournal(await tempDir());
    expect(() => j.append({ op: 'file', root: 'data', path: '../escape', size: 1 })).toThrow(expect.objectContaining({ code: 'TANDEM_ERR_INTERNAL' }));
    expect(j.pendingRecords).toBe(0);
    expect(j.append(fileRecord('ok', 1))).toBe(1);
  });

  it('reports a batch damaged on disk before sending it', async () => {
    const dir = await tempDir();
    const j = await openJournal(dir, { cacheBytes: 0 });
    j.append(fileRecord('a', 1));
    const b = (await j.commit(true))!;
    const file = path.join(dir, b.segment);
    const buf = fs.readFileSync(file);
    buf[b.offset + 12]! ^= 0xff;
    fs.writeFileSync(file, buf);
    await expect(j.readBatch(b)).rejects.toMatchObject({ code: 'TANDEM_ERR_JOURNAL_CORRUPT' });
  });

  it('discards an incomplete batch at reopen and stamps its sequences again', async () => {
    const dir = await tempDir();
    const j = await openJournal(dir);
    j.append(fileRecord('a', 1));
    j.append(fileRecord('b', 1));
    await j.commit(true);
    j.append(fileRecord('c', 1));
    j.append(fileRecord('d', 1));
    await closeJournal(j);
    const { log, lines } = captureLogger();
    const again = await openJournal(dir, { log });
    expect(again.scan.tornTail).toMatchObject({ discardedRecords: 2 });
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    expect(again.headSeq).toBe(2);
    expect(ranges(allBatches(again))).toEqual([[1, 2]]);
    expect(again.append(fileRecord('c', 1))).toBe(3);
  });

  it('reopens at the last commit after a torn last frame', async () => {
    const dir = await tempDir();
    const j = await openJournal(dir);
    j.append(fileRecord('a', 1));
    await j.commit(true);
    j.append(fileRecord('b', 1));
    const b2 = (await j.commit(true))!;
    await closeJournal(j);
    const file = path.join(dir, b2.segment);
    fs.truncateSync(file, b2.offset + b2.length - 5);
    const again = await openJournal(dir);
    expect(again.headSeq).toBe(1);
    expect(fs.statSync(file).size).toBe(b2.offset);
    expect(again.append(fileRecord('b', 1))).toBe(2);
  });

  it('rotates to a new segment named by the next sequence once a segment reaches segmentBytes', async () => {
    const dir = await tempDir();
    const j = await openJournal(dir, { segmentBytes: 16 * 1024 });
    const batches: BatchInfo[] = [];
    for (let b = 0; b < 12; b++) {
      j.append(writeRecord(`f${b}`, 3000));
      j.append(writeRecord(`f${b}`, 3000, 0x62, 3000));
      batches.push((await j.commit(true))!);
    }
    const files = segmentFiles(dir);
    expect(files.length).toBeGreaterThan(1);
    // Each segment closes at the first batch boundary at or past 16 KiB, and the next one is
    // named by the first record it holds.
    for (let k = 0; k < files.length; k++) {
      const inSeg = batches.filter((b) => b.segment === files[k]!.name);
      // The last commit may have filled its segment: the next one then exists, still empty.
      if (inSeg.length === 0) {
        expect(k).toBe(files.length - 1);
        expect(files[k]).toEqual({ name: segmentName(batches[batches.length - 1]!.last + 1), size: 0 });
        continue;
      }
      expect(inSeg[0]!.first).toBe(Number(files[k]!.name.slice(0, 20)));
      if (k < files.length - 1) {
        expect(files[k]!.size).toBeGreaterThanOrEqual(16 * 1024);
        expect(files[k]!.size - inSeg[inSeg.length - 1]!.length).toBeLessThan(16 * 1024);
      }
      expect(files[k]!.size).toBe(inSeg.reduce((n, b) => n + b.length, 0));
    }
    expect(j.segments().map((s) => ({ name: s.name, size: s.bytes }))).toEqual(files);
    await closeJournal(j);
    const again = await openJournal(dir);
    expect(allBatches(again)).toEqual(batches);
  });

  it('trims only segments every record of which is acknowledged, never the current one', async () => {
    const dir = await tempDir();
    const j = await openJournal(dir, { segmentBytes: 8 * 1024 });
    const batches: BatchInfo[] = [];
    for (let b = 0; b < 10; b++) {
      j.append(writeRecord(`f${b}`, 5000));
      batches.push((await j.commit(true))!);
    }
    const segs = segmentFiles(dir).map((s) => s.name);
    expect(segs.length).toBeGreaterThanOrEqual(4);
    // Acknowledge up to the middle of the third segment's records.
    const third = batches.filter((b) => b.segment === segs[2]);
    const acked = third[0]!.last;
    await j.trim(acked);
    const left = segmentFiles(dir).map((s) => s.name);
    expect(left[0]).toBe(segs[0] === segs[2] ? segs[0] : batches.find((b) => b.last > acked)!.segment);
    for (const b of batches) {
      const kept = left.includes(b.segment);
      if (!kept) expect(b.last).toBeLessThanOrEqual(acked);
      expect(j.batchStartingAt(b.first) !== undefined).toBe(kept);
    }
    expect(j.firstSeq).toBe(batches.find((b) => b.segment === left[0])!.first);
    // Everything acknowledged: all but the current segment go.
    await j.trim(j.headSeq);
    expect(segmentFiles(dir).map((s) => s.name)).toEqual([segs[segs.length - 1]]);
    expect(j.batchCount).toBe(batches.filter((b) => b.segment === segs[segs.length - 1]).length);
    await closeJournal(j);
    const again = await openJournal(dir);
    expect(again.headSeq).toBe(10);
    const kept = allBatches(again);
    expect(again.firstSeq).toBe(kept[0]?.first ?? 11);
    expect(kept).toEqual(batches.filter((b) => b.segment === segs[segs.length - 1]));
  });

  it('goes out of space at maxBytes and lets waiters continue once trimming frees room', async () => {
    const dir = await tempDir();
    const j = await openJournal(dir, { segmentBytes: 8 * 1024, maxBytes: 32 * 1024 });
    let n = 0;
    while (j.hasSpace()) {
      j.append(writeRecord(`f${n++}`, 4000));
      if (j.pendingBytes > 4000) await j.commit(true);
    }
    await j.commit(true);
    expect(j.totalBytes).toBeGreaterThanOrEqual(32 * 1024);
    expect(fs.readdirSync(dir).reduce((s, f) => s + fs.statSync(path.join(dir, f)).size, 0)).toBe(j.totalBytes);
    let resolved = false;
    const waiting = j.waitForSpace().then(() => (resolved = true));
    await j.trim(0);
    await new Promise((r) => setTimeout(r, 10));
    expect(resolved).toBe(false);
    await j.trim(j.headSeq);
    await waiting;
    expect(resolved).toBe(true);
    expect(j.hasSpace()).toBe(true);
    // Nothing was dropped to make room: every sequence is still accounted for.
    expect(j.headSeq).toBe(n);
  });

  it('has room once everything is acknowledged, even when maxBytes is below one segment', async () => {
    const dir = await tempDir();
    const j = await openJournal(dir, { segmentBytes: 1 << 20, maxBytes: 16 * 1024 });
    while (j.hasSpace()) {
      j.append(writeRecord(`f${j.headSeq}`, 4000));
      await j.commit(true);
    }
    const waiting = j.waitForSpace();
    await j.trim(j.headSeq - 1);
    expect(j.hasSpace()).toBe(false);
    await j.trim(j.headSeq);
    await waiting;
    expect(segmentFiles(dir)).toEqual([{ name: segmentName(j.headSeq + 1), size: 0 }]);
    expect(j.firstSeq).toBe(j.headSeq + 1);
    const head = j.headSeq;
    await closeJournal(j);
    expect((await openJournal(dir)).headSeq).toBe(head);
  });

  it('rejects a space waiter when its signal aborts', async () => {
    const j = await openJournal(await tempDir(), { maxBytes: 100 });
    j.append(writeRecord('a', 200));
    await j.commit(true);
    const ac = new AbortController();
    const p = j.waitForSpace(ac.signal);
    ac.abort(new Error('stopping'));
    await expect(p).rejects.toThrow('stopping');
  });

  it('counts the bytes not yet acknowledged and finds the oldest unacknowledged batch', async () => {
    const clock = new FakeClock(1000);
    const j = await openJournal(await tempDir(), { clock });
    const bs: BatchInfo[] = [];
    for (let b = 0; b < 3; b++) {
      j.append(fileRecord(`a${b}`, 1));
      j.append(fileRecord(`b${b}`, 1));
      clock.advance(100);
      bs.push((await j.commit(true))!);
    }
    const total = bs.reduce((n, b) => n + b.length, 0);
    expect(j.bytesAfter(0)).toBe(total);
    expect(j.bytesAfter(2)).toBe(total - bs[0]!.length);
    expect(j.bytesAfter(3)).toBe(total - bs[0]!.length);
    expect(j.bytesAfter(6)).toBe(0);
    expect(j.oldestBatchAfter(3)).toEqual(bs[1]);
    expect(j.oldestBatchAfter(3)!.ts).toBe(1200);
    expect(j.oldestBatchAfter(6)).toBeUndefined();
  });

  it('tells listeners about every durable batch, in order, until they unsubscribe', async () => {
    const j = await openJournal(await tempDir());
    const seen: number[] = [];
    const off = j.onBatch((b) => seen.push(b.last));
    j.append(fileRecord('a', 1));
    await j.commit(true);
    j.append(fileRecord('b', 1));
    await j.commit(true);
    off();
    j.append(fileRecord('c', 1));
    await j.commit(true);
    expect(seen).toEqual([1, 2]);
  });

  it('lets concurrent commits share fdatasyncs while keeping batches in order', async () => {
    const dir = await tempDir();
    const j = await openJournal(dir);
    const before = j.syncCount;
    const commits: Promise<BatchInfo | undefined>[] = [];
    const published: number[] = [];
    j.onBatch((b) => published.push(b.first));
    for (let b = 0; b < 40; b++) {
      j.append(fileRecord(`a${b}`, b));
      j.append(fileRecord(`b${b}`, b));
      commits.push(j.commit(b % 3 === 0));
    }
    const infos = (await Promise.all(commits)).map((b) => b!);
    expect(infos.map((b) => b.first)).toEqual(Array.from({ length: 40 }, (_, b) => b * 2 + 1));
    expect(published).toEqual(infos.map((b) => b.first));
    expect(j.syncCount - before).toBeLessThanOrEqual(3);
    expect(j.headSeq).toBe(80);
    // On disk: the batches follow each other, each frame run ending with its commit.
    const disk = readSegment(dir, segmentName(1));
    const { frames, stop } = parseFrames(disk);
    expect(stop.kind).toBe('end');
    const commitsOnDisk = frames.flatMap((f) => (f.entry.op === 'commit' ? [[f.entry.first, f.entry.last, f.entry.consistent]] : []));
    expect(commitsOnDisk).toEqual(infos.map((b) => [b.first, b.last, b.consistent]));
  });

  it('skips to a sequence: empty journal, sequences continue above it, also after a reopen', async () => {
    const dir = await tempDir();
    const j = await openJournal(dir);
    j.append(fileRecord('a', 1));
    await j.commit(true);
    await j.skipTo(500);
    expect(j.headSeq).toBe(500);
    expect(j.firstSeq).toBe(501);
    expect(j.batchCount).toBe(0);
    expect(segmentFiles(dir)).toEqual([{ name: segmentName(501), size: 0 }]);
    await closeJournal(j);

    const again = await openJournal(dir);
    expect(again.headSeq).toBe(500);
    expect(again.firstSeq).toBe(501);
    expect(again.append(fileRecord('b', 1))).toBe(501);
    await again.commit(true);
    await again.skipTo(again.headSeq);
    expect(again.firstSeq).toBe(502);
    await closeJournal(again);
    const third = await openJournal(dir);
    expect(third.headSeq).toBe(501);
    expect(third.append(fileRecord('c', 1))).toBe(502);
  });

  it('refuses to skip back or over records that are not committed', async () => {
    const j = await openJournal(await tempDir());
    j.append(fileRecord('a', 1));
    await expect(j.skipTo(10)).rejects.toMatchObject({ code: 'TANDEM_ERR_INTERNAL' });
    await j.commit(true);
    await expect(j.skipTo(0)).rejects.toMatchObject({ code: 'TANDEM_ERR_INTERNAL' });
  });

  it('gives records appended during a skip sequences above it, and keeps their batch', async () => {
    const j = await openJournal(await tempDir());
    j.append(fileRecord('a', 1));
    await j.commit(true);
    const skipping = j.skipTo(100);
    expect(j.append(fileRecord('b', 1))).toBe(101);
    const committing = j.commit(true);
    await skipping;
    expect(await committing).toMatchObject({ first: 101, last: 101 });
    expect(ranges(allBatches(j))).toEqual([[101, 101]]);
    expect(j.firstSeq).toBe(101);
  });

  it('finishes an interrupted skip at open: segments before the sequence gap are dropped', async () => {
    const dir = await tempDir();
    const j = await openJournal(dir);
    j.append(fileRecord('a', 1));
    await j.commit(true);
    await closeJournal(j);
    // A crash after the new segment was created and before the old ones were deleted.
    fs.writeFileSync(path.join(dir, segmentName(301)), Buffer.alloc(0));
    const again = await openJournal(dir);
    expect(again.scan.droppedBeforeGap).toEqual([segmentName(1)]);
    expect(segmentFiles(dir).map((s) => s.name)).toEqual([segmentName(301)]);
    expect(again.headSeq).toBe(300);
    expect(again.firstSeq).toBe(301);
  });

  it('reports corruption before the tail as TANDEM_ERR_JOURNAL_CORRUPT and never reuses a lost sequence', async () => {
    const dir = await tempDir();
    const j = await openJournal(dir, { segmentBytes: 4 * 1024 });
    for (let b = 0; b < 6; b++) {
      j.append(writeRecord(`f${b}`, 3000));
      await j.commit(true);
    }
    const head = j.headSeq;
    const segs = j.segments();
    expect(segs.length).toBeGreaterThan(2);
    const b1 = j.batchStartingAt(1)!;
    await closeJournal(j);
    const file = path.join(dir, b1.segment);
    const buf = fs.readFileSync(file);
    buf[b1.offset + 100]! ^= 0xff;
    fs.writeFileSync(file, buf);

    const { log, lines } = captureLogger();
    const again = await openJournal(dir, { log });
    expect(again.scan.corruption?.error.code).toBe('TANDEM_ERR_JOURNAL_CORRUPT');
    expect(again.scan.corruption?.lostThroughSeq).toBe(head);
    expect(lines.some((l) => l.level === 'error' && (l.err as { code?: string } | undefined)?.code === 'TANDEM_ERR_JOURNAL_CORRUPT')).toBe(true);
    // What remains is consistent: no batch with a hole before it, and new records above all lost ones.
    expect(again.headSeq).toBe(head);
    expect(again.firstSeq).toBe(head + 1);
    expect(again.batchCount).toBe(0);
    expect(segmentFiles(dir)).toEqual([{ name: segmentName(head + 1), size: 0 }]);
    expect(again.append(fileRecord('x', 1))).toBe(head + 1);
    await again.commit(true);
    await closeJournal(again);
    const third = await openJournal(dir);
    expect(third.scan.corruption).toBeUndefined();
    expect(ranges(allBatches(third))).toEqual([[head + 1, head + 1]]);
  });

  it('reads a batch evicted from the memory cache back from disk', async () => {
    const j = await openJournal(await tempDir(), { cacheBytes: 10_000 });
    const bs: BatchInfo[] = [];
    for (let b = 0; b < 5; b++) {
      j.append(writeRecord(`f${b}`, 4000, 0x30 + b));
      bs.push((await j.commit(true))!);
    }
    for (const b of bs) {
      const { frames, stop } = parseFrames(await j.readBatch(b));
      expect(stop.kind).toBe('end');
      expect((frames[0]!.entry as DataRecord & { op: 'write' }).data).toEqual(Buffer.alloc(4000, 0x30 + bs.indexOf(b)));
    }
  });

  it('writes commit entries whose frames are the shared framing of the protocol', async () => {
    const dir = await tempDir();
    const j = await openJournal(dir);
    j.append(fileRecord('a', 1));
    const b = (await j.commit(false))!;
    const disk = readSegment(dir, b.segment);
    const commit = encodeFrame({ op: 'commit', first: 1, last: 1, consistent: false, ts: b.ts, generation: 'gen-1' });
    expect(disk.subarray(disk.length - commit.length).equals(commit)).toBe(true);
  });

  it('keeps every batch a killed writer saw committed, and continues without reusing a sequence', async () => {
    const dir = await tempDir();
    const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'crash-writer.ts');
    const runTs = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/run-ts.mjs');
    let lastDurable = 0;
    for (let round = 0; round < 3; round++) {
      // The writer carries the suite's process marker, so another test run's teardown may kill
      // it early: that is just one more crash, so start it again until it committed something.
      let out = '';
      for (let attempt = 0; attempt < 5 && !/\d+\n/.test(out); attempt++) {
        const child = spawn(process.execPath, [runTs, script, dir, 'tandem-test-marker'], { stdio: ['ignore', 'pipe', 'pipe'] });
        let err = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        const exited = new Promise((r) => child.once('exit', r));
        // Let it reach full speed, then kill it in the middle of whatever it is doing.
        await Promise.race([
          exited,
          new Promise<void>((resolve, reject) => {
            const t = setTimeout(() => reject(new Error(`round ${round}: no durable commit from the writer: ${err}`)), 30_000);
            child.stdout.once('data', () => {
              clearTimeout(t);
              setTimeout(resolve, 300 + round * 170);
            });
            void exited.then(() => clearTimeout(t));
          }),
        ]);
        child.kill('SIGKILL');
        await exited;
      }
      const durable = out.split('\n').filter((l) => /^\d+$/.test(l)).map(Number);
      expect(durable.length).toBeGreaterThan(0);
      const seen = Math.max(...durable);
      expect(seen).toBeGreaterThan(lastDurable);

      const j = await openJournal(dir);
      // Every batch reported durable is there, whole, and the batches run without a gap.
      expect(j.headSeq).toBeGreaterThanOrEqual(seen);
      const bs = allBatches(j);
      expect(bs[0]!.first).toBe(1);
      expect(bs[bs.length - 1]!.last).toBe(j.headSeq);
      for (const b of bs.filter((_, k) => k % 25 === 0 || k === bs.length - 1)) {
        const { frames, stop } = parseFrames(await j.readBatch(b));
        expect(stop.kind).toBe('end');
        expect(frames.length).toBe(b.last - b.first + 2);
      }
      expect(j.scan.corruption).toBeUndefined();
      lastDurable = j.headSeq;
      await closeJournal(j);
    }
  }, 90_000);
});
