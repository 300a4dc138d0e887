// The active's write log: capture appends records, commits them in batches, and the sender
// ships each durable batch as the exact bytes framed (on disk, but for a large file's blocks,
// whose bytes the file holds: "Referenced blocks", docs/journal.md). Sequence numbers are stamped here and
// are never used twice, across restarts, skips and damaged segments alike: a passive that
// holds record N must never be sent a different record N.
import type { Clock } from '../../shared/clock.ts';
import { systemClock } from '../../shared/clock.ts';
import { TandemError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { hash64 } from '../../shared/hash.ts';
import {
  FRAME_HEADER_BYTES,
  MAX_BATCH_RAW_BYTES,
  MAX_ENTRY_BYTES,
  encodeFrameInto,
  entryProblem,
  parseFramesWith,
  parseStoredFrames,
  payloadBytes,
  storedEntryProblem,
  type CommitEntry,
  type CommitPoint,
  type DataRecord,
  type NewRecord,
  type LogEntry,
  type StoredEntry,
  type WriteRefRecord,
} from '../../shared/protocol/index.ts';
import { BatchIndex, type BatchInfo } from './batch-index.ts';
import { Waiters } from './waiters.ts';
import { SegmentLog, type FramePosition, type ScanSummary } from './segment-log.ts';
import type { RefSource } from './ref-source.ts';
import { withSeq } from '../../shared/copy-with.ts';




/** Recent batches kept in memory for the sender, so a connected passive never costs a disk read. */
export const DEFAULT_JOURNAL_CACHE_BYTES = 64 * 1024 * 1024;

/** Size of the frame arenas, and the room a batch needs left in one to start there. */
const ARENA_BYTES = 16 * 1024 * 1024;
const ARENA_BATCH_ROOM = 8 * 1024 * 1024;
/** Arenas kept for reuse, at most (their memory stays with the process). */
const SPARE_ARENAS = 2;
/**
 * Arenas left behind that are held for reuse, at most: older ones are let go for the collector.
 * Without a bound, a passive that stops acknowledging (away, or a trim held back by the
 * manifest) would keep every arena of the journal alive (measured: 1.1 GiB during a 1 GiB
 * file). Six: the send cache (64 MiB) spans about four of them.
 */
const RETIRED_ARENAS = 6;

/** The frames of a batch as one buffer: a view when they lie side by side in one arena, else a copy. */
function joinFrames(parts: Buffer[], length: number): Buffer {
  const first = parts[0];
  if (first === undefined) return Buffer.alloc(0);
  let end = first.byteOffset + first.length;
  for (let i = 1; i < parts.length; i++) {
    const p = parts[i]!;
    if (p.buffer !== first.buffer || p.byteOffset !== end) return Buffer.concat(parts, length);
    end += p.length;
  }
  return Buffer.from(first.buffer, first.byteOffset, length);
}

export interface JournalOptions {
  dir: string;
  /** A new segment starts at the first batch boundary after a segment reaches this size. */
  segmentBytes: number;
  /** Size bound: hasSpace() is false from here until trimming frees room. */
  maxBytes: number;
  /** Written into every commit entry. */
  generation: string;
  log: Logger;
  clock?: Clock;
  /** Bound of the in-memory cache of recent batches. */
  cacheBytes?: number;
  /**
   * Where referenced writes are read back when their batch is not in the cache. Without it,
   * append() journals every write with its bytes.
   */
  refs?: RefSource;
}

/**
 * A batch read back from disk holds a referenced write whose file no longer has those bytes (it
 * changed, went, or is another inode now): the batch can never be sent. The sender brings the
 * passive back by a synchronisation instead.
 */
export const REF_LOST = 'TANDEM_ERR_JOURNAL_REF_LOST' as const;

export interface JournalScan extends ScanSummary {
  /** Segments dropped at open because a sequence gap separates them from the newest ones
   * (an interrupted skipTo, or the skip made after corruption). */
  droppedBeforeGap: string[];
}

interface CachedBatch {
  last: number;
  /** Bytes of the frames as sent (referenced writes with their bytes). */
  length: number;
  /** The frames as appended; joined into one buffer the first time the batch is read. */
  data: Buffer[] | Buffer;
}

export class Journal {
  readonly scan: JournalScan;
  private readonly index: BatchIndex;
  /** Highest committed sequence per segment, set when the commit is appended. */
  private readonly segLast: Map<string, number>;
  private readonly cache = new Map<number, CachedBatch>();
  private cachedBytes = 0;
  private readonly cacheBytes: number;
  private readonly clock: Clock;
  private readonly listeners = new Set<(b: BatchInfo) => void>();
  private readonly spaceWaiters = new Waiters();
  private head: number;
  /** Sequence the next appended record gets. */
  private nextSeq: number;
  private pendingCount = 0;
  /** The pending frames as sent (referenced writes with their bytes; as stored, they lie between pendingAt and the store's end). */
  private pendingWire = 0;
  private pendingPayload = 0;
  /** Referenced writes may be appended (a passive is streaming: setRefsWanted). */
  private refsWanted = false;
  private readonly ackWaiters = new Waiters();
  private pendingAt: FramePosition | undefined;
  /** Frames of the open batch for the cache; dropped when the batch outgrows it. */
  private pendingFrames: Buffer[] | undefined = [];
  /**
   * Frames are written into this arena, one batch after another, so that a batch's frames are
   * one contiguous view (sent and cached without a copy) and 64 KiB records cost no allocation
   * each. A batch starts a new arena when the old one may not hold it whole.
   */
  private arena: Buffer = Buffer.alloc(0);
  private arenaUsed = 0;
  /** Highest sequence with a frame in the current arena (a commit counts as its batch's last). */
  private arenaMaxSeq = 0;
  /** Arenas left behind, oldest first, with the highest sequence framed in each. */
  private readonly retired: { buf: Buffer; maxSeq: number }[] = [];
  /** Arenas whose frames nobody can read any more, ready to be written again. */
  private readonly spare: Buffer[] = [];
  /** The passive's last acknowledgement (acknowledged()), and the sequence up to which no batch is left in the cache (trimmed, or evicted for room). */
  private peerAcked = 0;
  private evictedThrough = 0;
  /** Settles when every commit and skip called so far has updated the in-memory state. */
  private published: Promise<void> = Promise.resolve();
  /** Trims and skips, one at a time. */
  private maintenance: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly opts: JournalOptions,
    private readonly store: SegmentLog,
    index: BatchIndex,
    segLast: Map<string, number>,
    scan: JournalScan,
  ) {
    this.index = index;
    this.segLast = segLast;
    this.scan = scan;
    this.clock = opts.clock ?? systemClock;
    this.cacheBytes = opts.cacheBytes ?? DEFAULT_JOURNAL_CACHE_BYTES;
    const segs = store.segments();
    const lastSeg = segs[segs.length - 1]!;
    let head = lastSeg.firstSeq - 1;
    for (const v of segLast.values()) head = Math.max(head, v);
    this.head = head;
    this.nextSeq = head + 1;
  }

  /** Opens the journal in `opts.dir`, rebuilding the batch index by scanning its segments. */
  static async open(opts: JournalOptions): Promise<Journal> {
    const index = new BatchIndex();
    const segLast = new Map<string, number>();
    let start: FramePosition | undefined;
    let payload = 0;
    let referenced = 0;
    const visit = (entry: LogEntry, at: FramePosition): void => {
      const e = entry as StoredEntry; // the scan checks with storedEntryProblem
      if (e.op === 'commit') {
        const s = start ?? at;
        index.push({
          first: e.first,
          last: e.last,
          consistent: e.consistent,
          ts: e.ts,
          generation: e.generation,
          // Referenced bytes travel with their write: counted as their length (the frame's
          // fields differ by a few bytes, which the window does not need).
          bytes: at.offset + at.length - s.offset + referenced,
          payloadBytes: payload,
          segment: at.segment,
          offset: s.offset,
          length: at.offset + at.length - s.offset,
        });
        segLast.set(at.segment, e.last);
        start = undefined;
        payload = 0;
        referenced = 0;
      } else if (e.op !== 'applied') {
        start ??= at;
        payload += payloadBytes(e);
        if (e.op === 'write-ref') referenced += e.length;
      }
    };
    if (opts.maxBytes < 2 * opts.segmentBytes) {
      opts.log.warn(
        { maxBytes: opts.maxBytes, segmentBytes: opts.segmentBytes },
        'journal: journal.maxBytes is under twice journal.segmentBytes: trimming frees space in whole segments, so the bound is coarse',
      );
    }
    const log = await SegmentLog.open({ dir: opts.dir, segmentBytes: opts.segmentBytes, log: opts.log, name: 'journal', firstSeq: 1, visit, entryProblem: storedEntryProblem });
    const scan: JournalScan = { ...log.scan, droppedBeforeGap: [] };
    const j = new Journal(opts, log, index, segLast, scan);
    try {
      await j.afterScan();
    } catch (err) {
      await log.close().catch(() => undefined);
      throw err;
    }
    return j;
  }

  /** Last committed (durable) sequence. */
  get headSeq(): number {
    return this.head;
  }

  /** Oldest sequence still readable; headSeq + 1 when the journal holds no batch. */
  get firstSeq(): number {
    return this.index.oldest()?.first ?? this.head + 1;
  }

  /** Bytes of frames appended since the last commit, as sent (referenced writes with their bytes): batches are cut by it. */
  get pendingBytes(): number {
    return this.pendingWire;
  }

  /** Bytes of file data appended since the last commit, blocks counted inflated. */
  get pendingPayloadBytes(): number {
    return this.pendingPayload;
  }

  get pendingRecords(): number {
    return this.pendingCount;
  }

  /** Bytes on disk (and buffered), pending records included. */
  get totalBytes(): number {
    return this.store.totalBytes;
  }

  get batchCount(): number {
    return this.index.count;
  }

  /** fdatasync calls made so far (for metrics: commits share them). */
  get syncCount(): number {
    return this.store.syncCount;
  }

  /** Memory held for frames: the batches cached for the sender, and the arenas (current, spare, left behind). */
  get frameMemory(): { cachedBytes: number; arenaBytes: number } {
    let arenaBytes = this.arena.length;
    for (const b of this.spare) arenaBytes += b.length;
    for (const r of this.retired) arenaBytes += r.buf.length;
    return { cachedBytes: this.cachedBytes, arenaBytes };
  }

  segments(): { name: string; firstSeq: number; bytes: number }[] {
    return this.store.segments();
  }

  /**
   * Stamps the next sequence on `record`, frames and buffers it. Returns the sequence.
   * `ref`: the record is an uncompressed write of bytes read from its file, inode `ino`; while a
   * passive streams (setRefsWanted) the journal stores only where they are (a `write-ref`) and
   * keeps the whole write for the sender in memory (docs/journal.md, "Referenced blocks").
   */
  append(record: NewRecord, ref?: { ino: number }): number {
    this.throwIfClosed('append');
    const seq = this.nextSeq;
    const entry = withSeq(record, seq) as DataRecord;
    // A record the scan would refuse must never reach the disk: it would read back as damage.
    const problem = entryProblem(entry);
    if (problem !== undefined) {
      throw new TandemError({ code: 'TANDEM_ERR_INTERNAL', op: 'journal: append', reason: `invalid record: ${problem}`, details: { seq } });
    }
    // Framing copies the record, so the caller may reuse its buffers at once.
    if (this.pendingCount === 0 && this.arena.length - this.arenaUsed < ARENA_BATCH_ROOM) this.newArena(0);
    const frame = encodeFrameInto(entry, (n) => this.arenaSlice(n));
    if (frame.length - FRAME_HEADER_BYTES > MAX_ENTRY_BYTES) {
      throw new TandemError({ code: 'TANDEM_ERR_INTERNAL', op: 'journal: append', reason: `record of ${frame.length} bytes exceeds ${MAX_ENTRY_BYTES}`, details: { seq } });
    }
    const stored = ref !== undefined && this.refsWanted && this.opts.refs !== undefined && entry.op === 'write' && entry.encoding === undefined ? refFrame(entry, ref.ino) : frame;
    const at = this.store.append(stored);
    this.arenaMaxSeq = seq;
    this.nextSeq++;
    this.pendingAt ??= at;
    this.pendingCount++;
    this.pendingWire += frame.length;
    this.pendingPayload += payloadBytes(entry);
    if (this.pendingFrames !== undefined) {
      if (this.pendingWire <= this.cacheBytes) this.pendingFrames.push(frame);
      else this.pendingFrames = undefined;
    }
    return seq;
  }

  /**
   * Whether writes appended with a `ref` are stored as references: set by the sender while a
   * passive streams, so their bytes go out from the cache before it must let them go. With no
   * passive, nothing would take them soon, and a file changed meanwhile would cost a
   * synchronisation: they are journaled whole. Turning it off wakes waitForAcks().
   */
  setRefsWanted(on: boolean): void {
    this.refsWanted = on && this.opts.refs !== undefined;
    if (!this.refsWanted) this.ackWaiters.resolveAll();
  }

  /** Whether a write appended with a `ref` now would be stored as one. */
  get refsStored(): boolean {
    return this.refsWanted;
  }

  /** Wire bytes journaled (pending included) that the passive has not acknowledged. */
  get unackedBytes(): number {
    return this.index.lengthAfter(this.peerAcked) + this.pendingWire;
  }

  /**
   * Resolves once at most `limit` wire bytes are unacknowledged, or references are no longer
   * wanted (the passive went): capture reading a large file waits here, so that everything it
   * stored as references is still in the cache when the sender gets to it.
   */
  async waitForAcks(limit: number, signal?: AbortSignal): Promise<void> {
    // Only published batches can be sent and acknowledged: with none left to acknowledge, the
    // open batch alone (journal.batchBytes over the limit) must not wait for itself.
    while (this.refsWanted && this.unackedBytes > limit && this.index.lengthAfter(this.peerAcked) > 0) {
      this.throwIfClosed('wait for acknowledgements');
      await this.ackWaiters.wait(signal);
    }
  }

  /**
   * Closes the pending records into a batch and makes it durable; then indexes it, caches its
   * bytes and tells the listeners. Resolves with the batch, or undefined when nothing was
   * pending (after earlier commits settled). Batches are committed and published in call order.
   */
  commit(consistent: boolean, point?: CommitPoint): Promise<BatchInfo | undefined> {
    try {
      this.throwIfClosed('commit');
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.pendingCount === 0) return this.published.then(() => undefined);
    const first = this.nextSeq - this.pendingCount;
    const last = this.nextSeq - 1;
    const entry: CommitEntry = { op: 'commit', first, last, consistent, ts: Math.floor(this.clock.now()), generation: this.opts.generation, ...(point === undefined ? {} : { point }) };
    const frame = encodeFrameInto(entry, (n) => this.arenaSlice(n));
    let at: FramePosition;
    try {
      at = this.store.append(frame);
    } catch (err) {
      return Promise.reject(err);
    }
    const start = this.pendingAt!;
    const info: BatchInfo = {
      first,
      last,
      consistent,
      ts: entry.ts,
      generation: entry.generation,
      bytes: this.pendingWire + frame.length,
      payloadBytes: this.pendingPayload,
      segment: at.segment,
      offset: start.offset,
      length: at.offset + frame.length - start.offset,
    };
    const frames = this.pendingFrames !== undefined && info.bytes <= this.cacheBytes ? [...this.pendingFrames, frame] : undefined;
    this.pendingCount = 0;
    this.pendingWire = 0;
    this.pendingPayload = 0;
    this.pendingAt = undefined;
    this.pendingFrames = [];
    this.segLast.set(at.segment, last);
    // Rotate now, at the boundary, so that records appended while this commit syncs already
    // go to the new segment: a batch never spans two segments.
    if (this.store.isFull()) this.store.rotate(last + 1);
    const synced = this.store.sync();
    synced.catch(noop);
    const done = this.published.then(() => synced).then(() => this.publish(info, frames));
    this.published = done.then(noop, noop);
    return done;
  }

  private newArena(atLeast: number): void {
    if (this.arena.length > 0) {
      this.retired.push({ buf: this.arena, maxSeq: this.arenaMaxSeq });
      if (this.retired.length > RETIRED_ARENAS) this.retired.shift();
    }
    const spare = atLeast <= ARENA_BYTES ? this.spare.pop() : undefined;
    this.arena = spare ?? Buffer.allocUnsafe(Math.max(ARENA_BYTES, atLeast));
    this.arenaUsed = 0;
  }

  /**
   * The passive acknowledged every record up to `seq` (the sender calls this on each ack). With
   * trimming, it is what lets an arena be written again: a frame acknowledged was written to the
   * socket to the end, and one trimmed is no longer in the cache, so no view of it is left to
   * send or to read. Reusing arenas instead of allocating 16 MiB each time spares the collector
   * a gigabyte of buffers per gigabyte journaled (measured: a third of the active's CPU time
   * during a 1 GiB file went to garbage collection).
   * An acknowledged batch also leaves the cache at once: the passive holds it durably, so no
   * sender asks for it again but one resuming below an acknowledgement (then from disk), and
   * the trim that used to evict it is held back by the manifest's persisted sequence during a
   * synchronisation, which kept the whole cache and its arenas alive (measured: ~130 MiB
   * of arenas held on the active through a 100,000-file synchronisation).
   */
  acknowledged(seq: number): void {
    this.peerAcked = Math.max(this.peerAcked, seq);
    this.evictAcked(seq);
    this.ackWaiters.resolveAll();
  }

  private recycleArenas(): void {
    const through = Math.min(this.peerAcked, this.evictedThrough);
    while (this.retired.length > 0 && this.retired[0]!.maxSeq <= through) {
      const a = this.retired.shift()!;
      if (a.buf.length === ARENA_BYTES && this.spare.length < SPARE_ARENAS) this.spare.push(a.buf);
    }
  }

  private arenaSlice(bytes: number): Buffer {
    if (this.arena.length - this.arenaUsed < bytes) this.newArena(bytes);
    const slice = this.arena.subarray(this.arenaUsed, this.arenaUsed + bytes);
    this.arenaUsed += bytes;
    return slice;
  }

  /** Calls `cb` with every batch once it is durable, in order. Returns the unsubscribe. */
  onBatch(cb: (b: BatchInfo) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** The batch whose first record is `seq`, if the journal still holds it. */
  batchStartingAt(seq: number): BatchInfo | undefined {
    return this.index.startingAt(seq);
  }

  /** The batch that follows `b` without a gap, if committed. */
  batchAfter(b: BatchInfo): BatchInfo | undefined {
    return this.index.startingAt(b.last + 1);
  }

  /** The oldest batch holding a record above `seq`: its `ts` gives the lag behind an ack of `seq`. */
  oldestBatchAfter(seq: number): BatchInfo | undefined {
    return this.index.oldestAfter(seq);
  }

  /** Bytes of the batches not wholly acknowledged by an ack of `seq`. */
  bytesAfter(seq: number): number {
    return this.index.lengthAfter(seq);
  }

  /**
   * The batch's frames as sent (records then commit): exactly as journaled, from memory, else
   * from disk, where a referenced write is read back from its file. Throws REF_LOST when that
   * file no longer holds the bytes journaled.
   */
  async readBatch(b: BatchInfo): Promise<Buffer> {
    const c = this.cache.get(b.first);
    if (c !== undefined && c.last === b.last) {
      if (Array.isArray(c.data)) c.data = joinFrames(c.data, c.length);
      return c.data;
    }
    const buf = await this.readStored(b);
    return b.bytes === b.length ? buf : this.withReferencedBytes(buf, b);
  }

  /**
   * The records of a batch, for the manifest (its replay after a crash): from the frames as
   * stored, so a referenced write's file is not read. Such a write comes back without its bytes,
   * as a write of its length whose data is not there (as capture keeps what it journaled).
   */
  async readRecords(b: BatchInfo): Promise<DataRecord[]> {
    const c = this.cache.get(b.first);
    const buf = c !== undefined && c.last === b.last ? await this.readBatch(b) : await this.readStored(b);
    const out: DataRecord[] = [];
    for (const f of parseStoredFrames(buf).frames) {
      const e = f.entry;
      if (e.op === 'commit' || e.op === 'applied') continue;
      out.push(e.op === 'write-ref' ? { op: 'write', seq: e.seq, root: e.root, path: e.path, offset: e.offset, hash: e.hash, data: NO_DATA, encoding: 'deflate-raw', rawLength: e.length } : e);
    }
    return out;
  }

  /** A stored batch with its referenced writes made whole again from their files. */
  private withReferencedBytes(buf: Buffer, b: BatchInfo): Buffer {
    const frames = parseStoredFrames(buf).frames;
    // What the references ask for is known before anything is read: never more than a batch
    // may carry (capture cuts batches far below it), whatever the disk says.
    let referenced = 0;
    for (const f of frames) if (f.entry.op === 'write-ref') referenced += f.entry.length;
    if (referenced > MAX_BATCH_RAW_BYTES) {
      throw new TandemError({
        code: 'TANDEM_ERR_JOURNAL_CORRUPT',
        op: `journal: read batch ${b.first}..${b.last} from ${b.segment}`,
        reason: `its referenced blocks add up to ${referenced} bytes, over the ${MAX_BATCH_RAW_BYTES} a batch may carry`,
        hint: 'the journal segment was damaged after it was written; check the disk. The passive catches up by synchronisation',
        details: { segment: b.segment, offset: b.offset, first: b.first, last: b.last },
      });
    }
    const source = this.opts.refs;
    const parts: Buffer[] = [];
    let total = 0;
    const session = source?.open();
    try {
      for (const f of frames) {
        const e = f.entry;
        let frame = buf.subarray(f.offset, f.offset + f.length);
        if (e.op === 'write-ref') {
          const data = Buffer.allocUnsafe(e.length);
          if (session === undefined || !session.read(e, data) || !hash64(data).equals(e.hash)) throw refLost(b, e);
          // Fields in the order capture builds a write and append() stamps its seq: the very
          // frame the batch had in memory.
          frame = encodeFrameInto({ op: 'write', root: e.root, path: e.path, offset: e.offset, data, hash: e.hash, seq: e.seq }, (n) => Buffer.allocUnsafe(n));
        }
        parts.push(frame);
        total += frame.length;
      }
    } finally {
      session?.close();
    }
    return Buffer.concat(parts, total);
  }

  /** The batch's frames as stored on disk, checked. */
  private async readStored(b: BatchInfo): Promise<Buffer> {
    const buf = await this.store.read(b.segment, b.offset, b.length);
    // A disk read is checked before it leaves: the passive would refuse a damaged batch anyway,
    // and the operator must learn that it is this disk.
    const problem = batchProblem(buf, b, storedEntryProblem);
    if (problem !== undefined) {
      throw new TandemError({
        code: 'TANDEM_ERR_JOURNAL_CORRUPT',
        op: `journal: read batch ${b.first}..${b.last} from ${b.segment}`,
        reason: problem,
        hint: 'the journal segment was damaged after it was written; check the disk. The passive catches up by synchronisation',
        details: { segment: b.segment, offset: b.offset, first: b.first, last: b.last },
      });
    }
    return buf;
  }

  /** False once the journal holds maxBytes: capture must wait (waitForSpace) before reading more. */
  hasSpace(): boolean {
    return this.store.totalBytes < this.opts.maxBytes;
  }

  /** Resolves when trimming made room (at once if there is room). Nothing is ever dropped. */
  waitForSpace(signal?: AbortSignal): Promise<void> {
    if (this.hasSpace()) return Promise.resolve();
    if (this.closed) return Promise.reject(closedError('wait for space'));
    return this.spaceWaiters.wait(signal);
  }

  /**
   * The passive applied every record up to `ackedSeq`: deletes the segments that hold nothing
   * above it (never the current one) and wakes capture if that made room.
   */
  trim(ackedSeq: number): Promise<void> {
    return this.maintain(async () => {
      const segs = this.store.segments();
      let freed = 0;
      for (const s of segs.slice(0, -1)) {
        const last = this.segLast.get(s.name) ?? (s.bytes === 0 ? 0 : Infinity);
        if (last > ackedSeq) break;
        await this.store.deleteSegment(s.name);
        this.segLast.delete(s.name);
        this.index.dropFrontOfSegment(s.name);
        freed += s.bytes;
      }
      // A wholly acknowledged journal must have room whatever the sizes configured: close the
      // current segment early so that it can go too (capture would otherwise wait forever).
      if (!this.hasSpace() && this.pendingCount === 0 && ackedSeq >= this.nextSeq - 1 && this.store.currentBytes > 0) {
        const cur = this.store.currentSegment;
        await this.store.startSegment(this.nextSeq);
        await this.store.deleteSegment(cur.name);
        this.segLast.delete(cur.name);
        this.index.dropFrontOfSegment(cur.name);
        freed += cur.bytes;
      }
      this.evictAcked(ackedSeq);
      if (freed > 0) this.opts.log.debug({ seq: ackedSeq, bytesFreed: freed, totalBytes: this.store.totalBytes }, 'journal: trimmed');
      this.wakeSpaceWaiters();
    });
  }

  /**
   * Declares that records up to `seq` will never be available from this journal (a baseline
   * scan or a synchronisation replaces them): deletes every segment and continues at seq + 1.
   * Only between batches. Appends made after the call already get sequences above `seq`.
   */
  skipTo(seq: number): Promise<void> {
    try {
      this.throwIfClosed('skip');
      if (this.pendingCount > 0) {
        throw new TandemError({ code: 'TANDEM_ERR_INTERNAL', op: `journal: skip to ${seq}`, reason: `${this.pendingCount} records are not committed` });
      }
      if (seq < this.nextSeq - 1) {
        throw new TandemError({ code: 'TANDEM_ERR_INTERNAL', op: `journal: skip to ${seq}`, reason: `sequences up to ${this.nextSeq - 1} are already used` });
      }
      this.store.rotate(seq + 1);
    } catch (err) {
      return Promise.reject(err);
    }
    this.nextSeq = seq + 1;
    const newest = this.store.currentSegment.name;
    const obsolete = this.store.segments().filter((s) => s.name !== newest).map((s) => s.name);
    const before = this.published;
    const done = this.maintain(async () => {
      await before;
      await this.store.sync();
      for (const name of obsolete) {
        await this.store.deleteSegment(name);
        this.segLast.delete(name);
        this.index.dropFrontOfSegment(name);
      }
      this.evictAcked(seq);
      this.head = Math.max(this.head, seq);
      this.opts.log.info({ seq, segments: obsolete.length }, 'journal: skipped: records up to seq will never be sent');
      this.wakeSpaceWaiters();
    });
    // Commits called after this must publish after the skip emptied the index.
    this.published = done.then(noop, noop);
    return done;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.published;
    await this.maintenance;
    this.spaceWaiters.rejectAll(closedError('wait for space'));
    this.ackWaiters.rejectAll(closedError('wait for acknowledgements'));
    await this.store.close();
  }

  private publish(info: BatchInfo, frames: Buffer[] | undefined): BatchInfo {
    this.head = info.last;
    this.index.push(info);
    if (frames !== undefined) {
      this.cache.set(info.first, { last: info.last, length: info.bytes, data: frames });
      this.cachedBytes += info.bytes;
      for (const [first, c] of this.cache) {
        if (this.cachedBytes <= this.cacheBytes) break;
        this.cache.delete(first);
        this.cachedBytes -= c.length;
        // Batches leave the cache in order: none up to this one is left in it.
        this.evictedThrough = Math.max(this.evictedThrough, c.last);
      }
      this.recycleArenas();
    }
    for (const cb of this.listeners) {
      try {
        cb(info);
      } catch (err) {
        this.opts.log.error({ err, seq: info.last }, 'journal: a batch listener failed');
      }
    }
    return info;
  }

  /** At open: enforce "one contiguous run of batches" and never reuse a lost sequence. */
  private async afterScan(): Promise<void> {
    const segs = this.store.segments();
    // A segment named above everything before it marks a skip: what precedes it is obsolete.
    let cut = 0;
    let head = 0;
    segs.forEach((s, k) => {
      if (k > 0 && s.firstSeq > head + 1) cut = k;
      head = Math.max(head, s.firstSeq - 1, this.segLast.get(s.name) ?? 0);
    });
    let obsolete = segs.slice(0, cut).map((s) => s.name);
    const corruption = this.scan.corruption;
    if (corruption !== undefined && corruption.lostThroughSeq > this.head) {
      // Records after the damage may have reached the passive: continue above all of them, and
      // drop the kept prefix too, since a journal with a hole cannot feed a passive in order.
      this.store.rotate(corruption.lostThroughSeq + 1);
      this.nextSeq = corruption.lostThroughSeq + 1;
      this.head = corruption.lostThroughSeq;
      obsolete = segs.map((s) => s.name);
      await this.store.sync();
    }
    for (const name of obsolete) {
      await this.store.deleteSegment(name);
      this.segLast.delete(name);
      this.index.dropFrontOfSegment(name);
    }
    this.scan.droppedBeforeGap = obsolete;
    if (obsolete.length > 0) this.opts.log.info({ segments: obsolete }, 'journal: dropped segments before a sequence gap');
    this.opts.log.info(
      { headSeq: this.head, firstSeq: this.firstSeq, batches: this.index.count, bytes: this.store.totalBytes, generation: this.opts.generation },
      'journal: opened',
    );
  }

  private maintain(fn: () => Promise<void>): Promise<void> {
    const run = this.maintenance.then(fn);
    this.maintenance = run.then(noop, noop);
    return run;
  }

  private evictAcked(seq: number): void {
    for (const [first, c] of this.cache) {
      if (c.last > seq) break;
      this.cache.delete(first);
      this.cachedBytes -= c.length;
    }
    this.evictedThrough = Math.max(this.evictedThrough, seq);
    this.recycleArenas();
  }

  private wakeSpaceWaiters(): void {
    if (!this.hasSpace()) return;
    this.spaceWaiters.resolveAll();
  }

  private throwIfClosed(what: string): void {
    if (this.closed) throw closedError(what);
  }
}

/**
 * Why `buf` is not exactly the frames of batch `b` (records first..last, then its commit).
 * `problem`: which entries are valid (storedEntryProblem for the journal as stored).
 */
export function batchProblem(buf: Uint8Array, b: { first: number; last: number }, problem: (e: unknown) => string | undefined = entryProblem): string | undefined {
  const { frames, stop } = parseFramesWith<StoredEntry>(buf, 0, problem);
  if (stop.kind !== 'end') return `${stop.kind} frame at offset ${stop.offset}`;
  if (frames.length !== b.last - b.first + 2) return `${frames.length} frames for records ${b.first}..${b.last}`;
  for (let i = 0; i < frames.length - 1; i++) {
    const e = frames[i]!.entry;
    if (e.op === 'commit' || e.op === 'applied' || e.seq !== b.first + i) return `frame ${i} is not record ${b.first + i}`;
  }
  const c = frames[frames.length - 1]!.entry;
  if (c.op !== 'commit' || c.first !== b.first || c.last !== b.last) return 'the last frame is not the batch commit';
  return undefined;
}

/** The frame a referenced write is stored as: where its bytes are, and their hash. */
function refFrame(w: Extract<DataRecord, { op: 'write' }>, ino: number): Buffer {
  const ref: WriteRefRecord = { op: 'write-ref', seq: w.seq, root: w.root, path: w.path, offset: w.offset, length: w.data.length, hash: w.hash, ino };
  return encodeFrameInto(ref, (n) => Buffer.allocUnsafe(n));
}

const NO_DATA = new Uint8Array(0);

function refLost(b: BatchInfo, e: WriteRefRecord): TandemError {
  return new TandemError({
    code: REF_LOST,
    op: `journal: read batch ${b.first}..${b.last}`,
    reason: `${e.root}/${e.path} no longer holds the ${e.length} bytes at offset ${e.offset} that record ${e.seq} refers to (it changed, went, or is another file now)`,
    hint: 'nothing to do: the passive is brought back by a synchronisation, which sends what differs',
    details: { seq: e.seq, root: e.root, path: e.path, offset: e.offset },
  });
}

function closedError(what: string): TandemError {
  return new TandemError({ code: 'TANDEM_ERR_INTERNAL', op: `journal: ${what}`, reason: 'the journal is closed' });
}

function noop(): void {}
