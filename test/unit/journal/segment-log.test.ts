import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BatchGrammar, SegmentLog, segmentName, type FramePosition, type SegmentLogOptions } from '../../../agent/journal/index.ts';
import { silentLogger } from '../../../shared/log.ts';
import { initHash } from '../../../shared/hash.ts';
import { encodeFrame, parseFrames, type LogEntry } from '../../../shared/protocol/index.ts';
import { captureLogger, readSegment, removeTempDirs, segmentFiles, tempDir } from './helpers.ts';

beforeAll(async () => {
  await initHash();
});
afterEach(removeTempDirs);

function recordFrame(seq: number): Buffer {
  return encodeFrame({ op: 'file', seq, root: 'data', path: `f${seq}`, size: seq });
}

function commitFrame(first: number, last: number): Buffer {
  return encodeFrame({ op: 'commit', first, last, consistent: true, ts: 1_700_000_000_000, generation: 'g1' });
}

/** The frames of batch first..last, records then commit. */
function batchFrames(first: number, last: number): Buffer[] {
  const out: Buffer[] = [];
  for (let s = first; s <= last; s++) out.push(recordFrame(s));
  out.push(commitFrame(first, last));
  return out;
}

interface Visited {
  entry: LogEntry;
  at: FramePosition;
}

async function openLog(dir: string, extra: Partial<SegmentLogOptions> = {}): Promise<{ log: SegmentLog; visited: Visited[] }> {
  const visited: Visited[] = [];
  const log = await SegmentLog.open({
    dir,
    segmentBytes: 1 << 20,
    log: silentLogger(),
    name: 'journal',
    visit: (entry, at) => visited.push({ entry, at }),
    ...extra,
  });
  return { log, visited };
}

async function writeBatches(dir: string, batches: [number, number][]): Promise<void> {
  const { log } = await openLog(dir);
  for (const [f, l] of batches) for (const fr of batchFrames(f, l)) log.append(fr);
  await log.close();
}

const commits = (v: Visited[]): [number, number][] => v.flatMap((x) => (x.entry.op === 'commit' ? [[x.entry.first, x.entry.last] as [number, number]] : []));

describe('SegmentLog', () => {
  it('creates its directory and a first segment named by the first sequence, zero-padded to 20 digits', async () => {
    const dir = path.join(await tempDir(), 'nested', 'journal');
    const { log } = await openLog(dir, { firstSeq: 42 });
    expect(segmentFiles(dir)).toEqual([{ name: '00000000000000000042.seg', size: 0 }]);
    expect(log.segments()).toEqual([{ name: segmentName(42), firstSeq: 42, bytes: 0 }]);
    await log.close();
  });

  it('visits every kept frame in order with its position, and reads the same bytes back', async () => {
    const dir = await tempDir();
    await writeBatches(dir, [
      [1, 3],
      [4, 4],
    ]);
    const onDisk = readSegment(dir, segmentName(1));
    const { log, visited } = await openLog(dir);
    expect(visited.map((v) => (v.entry.op === 'commit' ? 'c' : v.entry.op === 'applied' ? 'a' : v.entry.seq))).toEqual([1, 2, 3, 'c', 4, 'c']);
    for (const v of visited) {
      const parsed = parseFrames(onDisk.subarray(v.at.offset, v.at.offset + v.at.length));
      expect(parsed.stop.kind).toBe('end');
      expect(parsed.frames).toHaveLength(1);
    }
    const last = visited[visited.length - 1]!.at;
    expect(last.offset + last.length).toBe(onDisk.length);
    expect(await log.read(segmentName(1), 0, onDisk.length)).toEqual(onDisk);
    expect(log.scan).toMatchObject({ segments: 1, frames: 6, bytes: onDisk.length });
    expect(log.scan.tornTail).toBeUndefined();
    expect(log.scan.corruption).toBeUndefined();
    await log.close();
  });

  it('reads back bytes that are still buffered', async () => {
    const dir = await tempDir();
    const { log } = await openLog(dir);
    const frames = batchFrames(1, 2);
    const positions = frames.map((f) => log.append(f));
    const at = positions[1]!;
    expect(await log.read(at.segment, at.offset, at.length)).toEqual(frames[1]);
    await log.close();
  });

  it('cuts a tail torn at any offset inside the last frame and reopens at the last commit', async () => {
    const base = await tempDir();
    const frames2 = batchFrames(4, 5);
    const lastFrame = frames2[frames2.length - 1]!;
    for (const keep of [1, 4, 7, 8, 9, Math.floor(lastFrame.length / 2), lastFrame.length - 1]) {
      const dir = path.join(base, `cut-${keep}`);
      await writeBatches(dir, [
        [1, 3],
        [4, 5],
      ]);
      const file = path.join(dir, segmentName(1));
      const full = fs.statSync(file).size;
      const endOfFirst = full - frames2.reduce((n, f) => n + f.length, 0);
      fs.truncateSync(file, full - lastFrame.length + keep);
      const { log: logger, lines } = captureLogger();
      const { log, visited } = await openLog(dir, { log: logger });
      // The commit of 4..5 is torn, so records 4 and 5 are an incomplete batch: cut too.
      expect(commits(visited)).toEqual([[1, 3]]);
      expect(visited.some((v) => v.entry.op !== 'commit' && v.entry.op !== 'applied' && v.entry.seq >= 4)).toBe(false);
      expect(fs.statSync(file).size).toBe(endOfFirst);
      expect(log.scan.tornTail).toMatchObject({ segment: segmentName(1), offset: endOfFirst, bytesCut: full - lastFrame.length + keep - endOfFirst, discardedRecords: 2 });
      const warns = lines.filter((l) => l.level === 'warn');
      expect(warns).toHaveLength(1);
      expect(warns[0]).toMatchObject({ segment: segmentName(1), offset: endOfFirst, bytesCut: full - lastFrame.length + keep - endOfFirst });
      // Appends continue right after the last commit, and a reopen finds them.
      for (const fr of batchFrames(4, 4)) log.append(fr);
      await log.close();
      const again = await openLog(dir);
      expect(commits(again.visited)).toEqual([
        [1, 3],
        [4, 4],
      ]);
      expect(again.log.scan.tornTail).toBeUndefined();
      await again.log.close();
    }
  });

  it('treats a flipped byte in the last frame as a torn write', async () => {
    const dir = await tempDir();
    await writeBatches(dir, [
      [1, 2],
      [3, 4],
    ]);
    const file = path.join(dir, segmentName(1));
    const buf = fs.readFileSync(file);
    const endOfFirst = batchFrames(1, 2).reduce((n, f) => n + f.length, 0);
    buf[buf.length - 3]! ^= 0xff;
    fs.writeFileSync(file, buf);
    const { log: logger, lines } = captureLogger();
    const { log, visited } = await openLog(dir, { log: logger });
    expect(commits(visited)).toEqual([[1, 2]]);
    expect(log.scan.tornTail).toMatchObject({ stop: 'checksum', offset: endOfFirst });
    expect(log.scan.corruption).toBeUndefined();
    expect(fs.statSync(file).size).toBe(endOfFirst);
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    await log.close();
  });

  it('cuts garbage appended after the last commit', async () => {
    const dir = await tempDir();
    await writeBatches(dir, [[1, 2]]);
    const file = path.join(dir, segmentName(1));
    const good = fs.statSync(file).size;
    for (const garbage of [Buffer.from('not a frame at all'), Buffer.alloc(4096), Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5])]) {
      fs.appendFileSync(file, garbage);
      const { log: logger, lines } = captureLogger();
      const { log, visited } = await openLog(dir, { log: logger });
      expect(commits(visited)).toEqual([[1, 2]]);
      expect(fs.statSync(file).size).toBe(good);
      expect(log.scan.tornTail).toMatchObject({ offset: good, bytesCut: garbage.length });
      expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1);
      await log.close();
    }
  });

  it('discards an incomplete batch (records without a commit)', async () => {
    const dir = await tempDir();
    const { log } = await openLog(dir);
    for (const fr of batchFrames(1, 2)) log.append(fr);
    await log.sync();
    const durable = log.currentBytes;
    log.append(recordFrame(3));
    log.append(recordFrame(4));
    await log.close();
    const file = path.join(dir, segmentName(1));
    expect(fs.statSync(file).size).toBeGreaterThan(durable);
    const { log: logger, lines } = captureLogger();
    const again = await openLog(dir, { log: logger });
    expect(again.visited.map((v) => (v.entry.op === 'commit' ? 'c' : v.entry.op === 'applied' ? 'a' : v.entry.seq))).toEqual([1, 2, 'c']);
    expect(again.log.scan.tornTail).toMatchObject({ stop: 'end', offset: durable, discardedRecords: 2 });
    expect(fs.statSync(file).size).toBe(durable);
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    await again.log.close();
  });

  it('reports damage in a non-last segment as TANDEM_ERR_JOURNAL_CORRUPT, keeps the batches before it and deletes later segments', async () => {
    const dir = await tempDir();
    const { log } = await openLog(dir);
    for (const fr of batchFrames(1, 2)) log.append(fr);
    for (const fr of batchFrames(3, 4)) log.append(fr);
    await log.startSegment(5);
    for (const fr of batchFrames(5, 6)) log.append(fr);
    await log.startSegment(7);
    for (const fr of batchFrames(7, 9)) log.append(fr);
    await log.close();
    // Damage record 3 in the first segment.
    const first = path.join(dir, segmentName(1));
    const buf = fs.readFileSync(first);
    const endOfFirst = batchFrames(1, 2).reduce((n, f) => n + f.length, 0);
    buf[endOfFirst + 10]! ^= 0x55;
    fs.writeFileSync(first, buf);

    const { log: logger, lines } = captureLogger();
    const { log: reopened, visited } = await openLog(dir, { log: logger });
    expect(commits(visited)).toEqual([[1, 2]]);
    expect(segmentFiles(dir)).toEqual([{ name: segmentName(1), size: endOfFirst }]);
    const c = reopened.scan.corruption!;
    expect(c).toMatchObject({ segment: segmentName(1), offset: endOfFirst, droppedSegments: [segmentName(5), segmentName(7)], keptThroughSeq: 2, lostThroughSeq: 9 });
    expect(c.error.code).toBe('TANDEM_ERR_JOURNAL_CORRUPT');
    expect(c.error.hint).toContain('3..9');
    const errors = lines.filter((l) => l.level === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ keptThroughSeq: 2, lostThroughSeq: 9, err: { code: 'TANDEM_ERR_JOURNAL_CORRUPT' } });
    // What remains is a consistent log: it takes appends and reopens cleanly.
    for (const fr of batchFrames(10, 10)) reopened.append(fr);
    await reopened.close();
    const again = await openLog(dir);
    expect(commits(again.visited)).toEqual([
      [1, 2],
      [10, 10],
    ]);
    expect(again.log.scan.corruption).toBeUndefined();
    await again.log.close();
  });

  it('treats a bad frame followed by valid frames in the last segment as corruption, not a torn write', async () => {
    const dir = await tempDir();
    await writeBatches(dir, [
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    const file = path.join(dir, segmentName(1));
    const buf = fs.readFileSync(file);
    const endOfFirst = batchFrames(1, 2).reduce((n, f) => n + f.length, 0);
    buf[endOfFirst + 12]! ^= 0x01;
    fs.writeFileSync(file, buf);
    const { log, visited } = await openLog(dir);
    expect(commits(visited)).toEqual([[1, 2]]);
    expect(log.scan.tornTail).toBeUndefined();
    expect(log.scan.corruption).toMatchObject({ keptThroughSeq: 2, lostThroughSeq: 6 });
    expect(fs.statSync(file).size).toBe(endOfFirst);
    await log.close();
  });

  it('treats an incomplete batch at the end of a non-last segment as corruption', async () => {
    const dir = await tempDir();
    await writeBatches(dir, [[1, 2]]);
    fs.appendFileSync(path.join(dir, segmentName(1)), recordFrame(3));
    fs.writeFileSync(path.join(dir, segmentName(4)), Buffer.concat(batchFrames(4, 4)));
    const { log, visited } = await openLog(dir);
    expect(commits(visited)).toEqual([[1, 2]]);
    expect(log.scan.corruption).toMatchObject({ reason: 'the segment ends inside a batch', droppedSegments: [segmentName(4)], lostThroughSeq: 4 });
    await log.close();
  });

  it('lets concurrent syncs share fdatasyncs and keeps appends in order on disk', async () => {
    const dir = await tempDir();
    const { log } = await openLog(dir);
    const before = log.syncCount;
    const waits: Promise<void>[] = [];
    for (let b = 0; b < 50; b++) {
      for (const fr of batchFrames(b * 3 + 1, b * 3 + 3)) log.append(fr);
      waits.push(log.sync());
    }
    await Promise.all(waits);
    const used = log.syncCount - before;
    expect(used).toBeGreaterThanOrEqual(1);
    expect(used).toBeLessThanOrEqual(3);
    await log.close();
    const { log: again, visited } = await openLog(dir);
    expect(commits(visited)).toEqual(Array.from({ length: 50 }, (_, b) => [b * 3 + 1, b * 3 + 3]));
    await again.close();
  });

  it('writes frames that lie side by side in one buffer, and frames that do not, exactly as appended', async () => {
    const dir = await tempDir();
    const { log } = await openLog(dir);
    const frames = batchFrames(1, 400);
    // The journal frames into arenas: most frames follow the one before in memory. Some here
    // do not: after a gap of bytes that are not a frame, in a buffer of their own, or earlier in
    // the arena than the frame before (each must be written where it comes, and the gap not at all).
    const arena = Buffer.alloc(1 << 20, 0xee);
    let at = 64 * 1024;
    let low = 0;
    const placed: Buffer[] = [];
    frames.forEach((fr, i) => {
      let view: Buffer;
      if (i % 7 === 3) view = Buffer.from(fr);
      else if (i % 11 === 5) {
        view = arena.subarray(low, low + fr.length);
        low += fr.length + 3;
      } else {
        if (i % 13 === 0) at += 5;
        view = arena.subarray(at, at + fr.length);
        at += fr.length;
      }
      fr.copy(view);
      placed.push(view);
    });
    for (const v of placed) log.append(v);
    await log.sync();
    await log.close();
    expect(readSegment(dir, segmentName(1)).equals(Buffer.concat(frames))).toBe(true);
    const { log: again, visited } = await openLog(dir);
    expect(visited.map((v) => (v.entry.op === 'file' ? v.entry.seq : v.entry.op))).toEqual([...Array.from({ length: 400 }, (_, k) => k + 1), 'commit']);
    await again.close();
  });

  it('writes through once more than 1 MiB is buffered', async () => {
    const dir = await tempDir();
    const { log } = await openLog(dir);
    const big = encodeFrame({ op: 'write', seq: 1, root: 'data', path: 'big', offset: 0, data: Buffer.alloc(600 * 1024, 1), hash: Buffer.alloc(8) });
    log.append(big);
    log.append(encodeFrame({ op: 'write', seq: 2, root: 'data', path: 'big', offset: 0, data: Buffer.alloc(600 * 1024, 2), hash: Buffer.alloc(8) }));
    // No sync yet: the bytes reach the file because the buffer passed 1 MiB.
    await new Promise((r) => setTimeout(r, 50));
    expect(fs.statSync(path.join(dir, segmentName(1))).size).toBe(log.currentBytes);
    await log.close();
  });

  it('starts a new segment, syncs the old one, and replaces a current segment that is still empty', async () => {
    const dir = await tempDir();
    const { log } = await openLog(dir);
    await log.startSegment(100);
    expect(segmentFiles(dir).map((s) => s.name)).toEqual([segmentName(100)]);
    for (const fr of batchFrames(100, 101)) log.append(fr);
    const p = log.startSegment(102);
    // Appends made while the rotation runs go to the new segment.
    for (const fr of batchFrames(102, 102)) log.append(fr);
    await p;
    await log.sync();
    expect(log.segments().map((s) => s.name)).toEqual([segmentName(100), segmentName(102)]);
    expect(segmentFiles(dir).map((s) => s.size)).toEqual(log.segments().map((s) => s.bytes));
    await expect(log.startSegment(50)).rejects.toMatchObject({ code: 'TANDEM_ERR_INTERNAL' });
    await expect(log.deleteSegment(segmentName(102))).rejects.toMatchObject({ code: 'TANDEM_ERR_INTERNAL' });
    await log.deleteSegment(segmentName(100));
    expect(segmentFiles(dir).map((s) => s.name)).toEqual([segmentName(102)]);
    expect(log.totalBytes).toBe(segmentFiles(dir)[0]!.size);
    await log.close();
  });
});

describe('BatchGrammar', () => {
  const rec = (seq: number): LogEntry => ({ op: 'file', seq, root: 'data', path: 'x', size: 0 });
  const commit = (first: number, last: number): LogEntry => ({ op: 'commit', first, last, consistent: false, ts: 0, generation: 'g' });

  it('accepts batches of consecutive records that start above the previous batch', () => {
    const g = new BatchGrammar();
    for (const e of [rec(1), rec(2), commit(1, 2), { op: 'applied', seq: 2 } as LogEntry, rec(10), commit(10, 10)]) expect(g.accept(e)).toBeUndefined();
    expect(g.lastBatchSeq).toBe(10);
  });

  it('refuses gaps, mismatched commits, marks inside a batch and batches that go back', () => {
    const g = new BatchGrammar();
    expect(g.accept(commit(1, 1))).toMatch(/without records/);
    expect(g.accept(rec(5))).toBeUndefined();
    expect(g.accept(rec(7))).toMatch(/6 was due/);
    expect(g.accept({ op: 'applied', seq: 1 })).toMatch(/inside a batch/);
    expect(g.accept(commit(5, 6))).toMatch(/does not match/);
    expect(g.accept(commit(5, 5))).toBeUndefined();
    expect(g.accept(rec(5))).toMatch(/not above/);
  });
});
