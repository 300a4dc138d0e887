// The disk layer under the active's journal and the passive's receive log: a directory of
// append-only segment files, each named by the first sequence it holds, holding framed log
// entries (shared/protocol/frames.ts). It decides what on disk is durable and valid; what the
// entries mean is its owner's business, except for the batch grammar every log obeys:
//
//   log   = (applied | batch)*
//   batch = record{n>=1} commit       records numbered first..last without a gap,
//                                     each batch starting above the previous one
//
// A crash can only tear the end of the last segment (writes are in order and a batch is
// synced before anything depends on it), so damage there is cut away; damage anywhere else
// is corruption, reported and never silently skipped over.
import fsp, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../../shared/constants.ts';
import { TandemError, errnoOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { ioCounters } from '../../shared/io-counters.ts';
import {
  FRAME_HEADER_BYTES,
  MAX_ENTRY_BYTES,
  entryProblem,
  parseFramesWith,
  storedEntryProblem,
  type FrameStop,
  type LogEntry,
  type ParsedFrameOf,
  type StoredEntry,
} from '../../shared/protocol/index.ts';

export const SEGMENT_SUFFIX = '.seg';
const SEGMENT_NAME = /^\d{20}\.seg$/;
/** Buffered appends are handed to the kernel once they reach this much. */
export const WRITE_THROUGH_BYTES = 1024 * 1024;
/** Segments are scanned in chunks of this size, so a large segment never sits in memory whole. */
const SCAN_CHUNK_BYTES = 8 * 1024 * 1024;
/** Above this many buffered frames one copy into a single buffer beats a long iovec. */
const WRITEV_MAX_CHUNKS = 64;

/** The file name of the segment whose first sequence is `firstSeq`. */
export function segmentName(firstSeq: number): string {
  return `${String(firstSeq).padStart(20, '0')}${SEGMENT_SUFFIX}`;
}

export interface FramePosition {
  segment: string;
  offset: number;
  length: number;
}

export interface SegmentInfo {
  name: string;
  firstSeq: number;
  bytes: number;
}

/** What opening the log found and repaired. */
export interface ScanSummary {
  /** Segments kept. */
  segments: number;
  /** Valid frames visited. */
  frames: number;
  /** Bytes kept, all segments together. */
  bytes: number;
  /** The last segment ended in a torn write or an incomplete batch: cut there (a crash). */
  tornTail?: TornTail | undefined;
  /** Damage before the tail: valid entries after it were lost. */
  corruption?: Corruption | undefined;
}

export interface TornTail {
  segment: string;
  /** Where the file now ends. */
  offset: number;
  bytesCut: number;
  /** What ended the valid frames: 'end' when only an incomplete batch was cut. */
  stop: FrameStop['kind'] | 'grammar';
  /** Records of the incomplete batch that were discarded with the tail. */
  discardedRecords: number;
}

export interface Corruption {
  segment: string;
  /** Where the damage starts; the segment now ends at the last batch before it. */
  offset: number;
  reason: string;
  /** Later segments deleted with it. */
  droppedSegments: string[];
  /** Last sequence of the last complete batch kept. */
  keptThroughSeq: number;
  /** Highest sequence known to have been in the lost part (>= keptThroughSeq). */
  lostThroughSeq: number;
  error: TandemError;
}

export interface SegmentLogOptions {
  dir: string;
  /** Size at which the owner should start a new segment at its next batch boundary. */
  segmentBytes: number;
  log: Logger;
  /** 'journal' or 'receive-log': prefixes log lines and error operations. */
  name: string;
  /** Name of the first segment when the directory holds none. */
  firstSeq?: number;
  /**
   * Called for every valid entry that is kept, in order, at open. Entries of an incomplete
   * batch are visited only once its commit is seen. Binary fields are views into a scan
   * buffer: copy what you keep.
   */
  visit: (entry: LogEntry, at: FramePosition) => void;
  /**
   * Which entries are valid in this log: log entries (the default: the receive log), or also the
   * journal's referenced writes (storedEntryProblem), which are then visited too.
   */
  entryProblem?: (e: unknown) => string | undefined;
}

interface Segment {
  readonly name: string;
  readonly firstSeq: number;
  readonly file: string;
  /** Bytes appended, buffered ones included. */
  size: number;
  /** Bytes handed to the write chain. */
  flushed: number;
  fh: FileHandle | undefined;
  /** Open, then every write, in order. Never rejects: failures poison the log instead. */
  tail: Promise<void>;
}

/**
 * The batch grammar as a state machine. `accept` returns why an entry may not come next (and
 * then leaves the state as it was), or undefined and advances.
 */
export class BatchGrammar {
  private open: { first: number; next: number } | undefined;
  /** Last sequence of the last complete batch. */
  lastBatchSeq = 0;

  get inBatch(): boolean {
    return this.open !== undefined;
  }

  accept(e: StoredEntry): string | undefined {
    if (e.op === 'commit') {
      const o = this.open;
      if (o === undefined) return 'commit without records';
      if (e.first !== o.first || e.last !== o.next - 1) return `commit ${e.first}..${e.last} does not match its records ${o.first}..${o.next - 1}`;
      this.open = undefined;
      this.lastBatchSeq = e.last;
      return undefined;
    }
    if (e.op === 'applied') return this.open === undefined ? undefined : 'applied mark inside a batch';
    if (this.open === undefined) {
      if (e.seq <= this.lastBatchSeq) return `record ${e.seq} is not above the previous batch ${this.lastBatchSeq}`;
      this.open = { first: e.seq, next: e.seq + 1 };
      return undefined;
    }
    if (e.seq !== this.open.next) return `record ${e.seq} where ${this.open.next} was due`;
    this.open.next++;
    return undefined;
  }
}

/** The highest sequence an entry names. */
export function seqOf(e: StoredEntry): number {
  return e.op === 'commit' ? e.last : e.seq;
}

export class SegmentLog {
  /** What open found and repaired. */
  readonly scan: ScanSummary;
  private readonly segs: Segment[];
  private current: Segment;
  private chunks: Buffer[] = [];
  private chunkBytes = 0;
  /**
   * The frames appended since the last chunk that lie side by side in one buffer (the journal
   * frames into arenas): one chunk for all of them, made when the next one does not follow or
   * at the flush. A flush of 1 MiB of small files' frames was ~1,000 chunks copied into one new
   * buffer; now it is a few views.
   */
  private run: { buf: ArrayBufferLike; start: number; end: number } | undefined;
  private total: number;
  /** Settles when every segment before `current` is synced and closed, and `current` exists. */
  private rotation: Promise<void> = Promise.resolve();
  private inflightSync: Promise<void> | undefined;
  private queuedSync: Promise<void> | undefined;
  private failure: TandemError | undefined;
  private closed = false;
  private fdatasyncs = 0;

  private constructor(
    private readonly opts: SegmentLogOptions,
    segs: Segment[],
    scan: ScanSummary,
  ) {
    this.segs = segs;
    this.current = segs[segs.length - 1]!;
    this.scan = scan;
    this.total = segs.reduce((n, s) => n + s.size, 0);
  }

  /** Opens (creating if needed) the log in `opts.dir`, repairing a torn tail; see ScanSummary. */
  static async open(opts: SegmentLogOptions): Promise<SegmentLog> {
    const { dir, log, name } = opts;
    const op = `${name}: open ${dir}`;
    try {
      await fsp.mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
      const names = (await fsp.readdir(dir)).filter((n) => SEGMENT_NAME.test(n)).sort();
      const grammar = new BatchGrammar();
      const summary: ScanSummary = { segments: 0, frames: 0, bytes: 0 };
      const kept: Segment[] = [];
      for (let k = 0; k < names.length; k++) {
        const segName = names[k]!;
        const file = path.join(dir, segName);
        const isLast = k === names.length - 1;
        const res = await scanSegment(file, segName, grammar, opts.visit as (entry: StoredEntry, at: FramePosition) => void, opts.entryProblem ?? entryProblem);
        summary.frames += res.visited;
        const damaged = res.stop.kind !== 'end' || res.boundary < res.size;
        if (damaged && isLast && res.beyondMaxSeq === undefined) {
          await truncateFile(file, res.boundary);
          const tornTail: TornTail = {
            segment: segName,
            offset: res.boundary,
            bytesCut: res.size - res.boundary,
            stop: res.stop.kind,
            discardedRecords: res.pendingRecords,
          };
          summary.tornTail = tornTail;
          log.warn(
            { segment: segName, offset: res.boundary, bytesCut: tornTail.bytesCut, stop: res.stop.kind, stopOffset: stopOffset(res.stop, res.size), discardedRecords: res.pendingRecords },
            `${name}: torn tail cut (an interrupted write)`,
          );
        } else if (damaged) {
          // Valid entries may follow the damage (or later segments do): whatever they held is
          // lost, and the owner must know how far, so that no sequence is ever used twice.
          const dropped = names.slice(k + 1);
          let lostThroughSeq = Math.max(res.maxSeq, res.beyondMaxSeq ?? 0);
          for (const later of dropped) {
            lostThroughSeq = Math.max(lostThroughSeq, firstSeqOf(later) - 1, await highestSeqIn(path.join(dir, later)));
          }
          await truncateFile(file, res.boundary);
          for (const later of dropped) await fsp.rm(path.join(dir, later), { force: true });
          if (dropped.length > 0) await fsyncDir(dir);
          const reason = res.stop.kind === 'end' ? 'the segment ends inside a batch' : `${stopReason(res.stop)} at offset ${res.stop.offset}`;
          const keptThroughSeq = grammar.lastBatchSeq;
          const error = new TandemError({
            code: 'TANDEM_ERR_JOURNAL_CORRUPT',
            op: `${name}: read segment ${file}`,
            reason,
            hint:
              lostThroughSeq > keptThroughSeq
                ? `records ${keptThroughSeq + 1}..${lostThroughSeq} were lost; the peers catch up by synchronisation. Check the disk (dmesg, SMART) before trusting this node`
                : 'no record was lost (only a mark); check the disk (dmesg, SMART)',
            details: { segment: segName, offset: stopOffset(res.stop, res.size), droppedSegments: dropped, keptThroughSeq, lostThroughSeq },
          });
          summary.corruption = {
            segment: segName,
            offset: stopOffset(res.stop, res.size),
            reason,
            droppedSegments: dropped,
            keptThroughSeq,
            lostThroughSeq,
            error,
          };
          log.error(
            { err: error, segment: segName, offset: stopOffset(res.stop, res.size), droppedSegments: dropped, keptThroughSeq, lostThroughSeq },
            `${name}: damaged segment, entries after the damage dropped`,
          );
        }
        kept.push(newSegment(dir, segName, damaged ? res.boundary : res.size));
        if (damaged) break;
      }
      if (kept.length === 0) {
        const seg = newSegment(dir, segmentName(opts.firstSeq ?? 1), 0);
        seg.fh = await fsp.open(seg.file, 'wx', PRIVATE_FILE_MODE);
        await fsyncDir(dir);
        kept.push(seg);
      } else {
        const last = kept[kept.length - 1]!;
        last.fh = await fsp.open(last.file, 'r+');
      }
      summary.segments = kept.length;
      summary.bytes = kept.reduce((n, s) => n + s.size, 0);
      log.debug({ segments: summary.segments, frames: summary.frames, bytes: summary.bytes }, `${name}: opened`);
      return new SegmentLog(opts, kept, summary);
    } catch (err) {
      throw TandemError.wrap(err, {
        code: 'TANDEM_ERR_STATE_IO',
        op,
        hint: 'check that the state directory exists, is writable by the agent and has free space',
      });
    }
  }

  /** Bytes in all segments, buffered appends included. */
  get totalBytes(): number {
    return this.total;
  }

  /** Bytes in the segment being appended to. */
  get currentBytes(): number {
    return this.current.size;
  }

  get currentSegment(): SegmentInfo {
    return info(this.current);
  }

  /** fdatasync calls made so far (group commit shares one between concurrent callers). */
  get syncCount(): number {
    return this.fdatasyncs;
  }

  /** The segment reached `segmentBytes`: the owner starts a new one at its next batch boundary. */
  isFull(): boolean {
    return this.current.size >= this.opts.segmentBytes;
  }

  segments(): SegmentInfo[] {
    return this.segs.map(info);
  }

  /**
   * Appends one or more whole frames to the current segment. The log keeps a reference to
   * `frame` until it is written: do not change its bytes before the next sync settles.
   */
  append(frame: Buffer): FramePosition {
    this.throwIfUnusable(`append to ${this.current.name}`);
    const seg = this.current;
    const at: FramePosition = { segment: seg.name, offset: seg.size, length: frame.length };
    const run = this.run;
    if (run !== undefined && run.buf === frame.buffer && run.end === frame.byteOffset) run.end += frame.length;
    else {
      this.closeRun();
      this.run = { buf: frame.buffer, start: frame.byteOffset, end: frame.byteOffset + frame.length };
    }
    this.chunkBytes += frame.length;
    seg.size += frame.length;
    this.total += frame.length;
    if (this.chunkBytes >= WRITE_THROUGH_BYTES) this.flushBuffer();
    return at;
  }

  /**
   * Makes everything appended before the call durable (write + fdatasync). Concurrent callers
   * share fdatasyncs: a call made while one runs waits for the next, which covers it.
   */
  sync(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(this.closedError('sync'));
    this.flushBuffer();
    if (this.queuedSync !== undefined) return this.queuedSync;
    if (this.inflightSync !== undefined) {
      const queued = this.inflightSync.then(noop, noop).then(() => {
        this.queuedSync = undefined;
        return this.startSync();
      });
      this.queuedSync = queued;
      return queued;
    }
    return this.startSync();
  }

  /**
   * Ends the current segment and starts `segmentName(firstSeq)`. Appends made after the call
   * go to the new segment at once; the promise settles when the old one is synced and closed
   * and the new one exists durably. A current segment that is still empty is deleted.
   */
  startSegment(firstSeq: number): Promise<void> {
    try {
      this.rotate(firstSeq);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.rotation.then(() => this.throwIfUnusable(`start segment ${segmentName(firstSeq)}`));
  }

  /** The synchronous part of startSegment; `sync()` waits for the rest. */
  rotate(firstSeq: number): void {
    this.throwIfUnusable(`start segment ${segmentName(firstSeq)}`);
    const old = this.current;
    if (firstSeq === old.firstSeq && old.size === 0) return;
    if (firstSeq <= old.firstSeq) {
      throw new TandemError({
        code: 'TANDEM_ERR_INTERNAL',
        op: `${this.opts.name}: start segment ${segmentName(firstSeq)}`,
        reason: `not above the current segment ${old.name}`,
      });
    }
    this.flushBuffer();
    const seg = newSegment(this.opts.dir, segmentName(firstSeq), 0);
    const dropOld = old.size === 0;
    if (dropOld) this.segs.splice(this.segs.indexOf(old), 1);
    this.segs.push(seg);
    this.current = seg;
    const before = this.rotation;
    const inflight = this.inflightSync;
    // The new file is created only once every segment before it is durable: a segment named N
    // on disk then proves that records below N were committed, which is what open relies on
    // to tell a skip (a gap) from a crash, and to never reuse a sequence.
    const closed = this.guard(`close ${old.name}`, async () => {
      await before;
      await old.tail;
      // A sync still running on the old segment must finish before its handle is closed.
      await inflight?.then(noop, noop);
      try {
        if (this.failure === undefined && old.fh !== undefined) {
          await old.fh.datasync();
          this.fdatasyncs++;
          ioCounters.fsyncs++;
        }
      } finally {
        await old.fh?.close().catch(noop);
        old.fh = undefined;
      }
    });
    seg.tail = this.guard(`create ${seg.name}`, async () => {
      await closed;
      if (this.failure !== undefined) return;
      seg.fh = await fsp.open(seg.file, 'wx', PRIVATE_FILE_MODE);
      await fsyncDir(this.opts.dir);
    });
    // An empty segment goes only after its successor exists, so the directory is never
    // without a segment to name the next sequence.
    this.rotation = this.guard(`delete ${old.name}`, async () => {
      await seg.tail;
      if (!dropOld || this.failure !== undefined) return;
      await fsp.rm(old.file, { force: true });
      await fsyncDir(this.opts.dir);
    });
  }

  /** Reads bytes back (a batch for the sender, or for redo at start-up). */
  async read(segment: string, offset: number, length: number): Promise<Buffer> {
    const seg = this.segs.find((s) => s.name === segment);
    const op = `${this.opts.name}: read ${segment} at ${offset}`;
    if (seg === undefined || offset < 0 || offset + length > seg.size) {
      throw new TandemError({
        code: 'TANDEM_ERR_INTERNAL',
        op,
        reason: seg === undefined ? 'no such segment (trimmed?)' : `range ends at ${offset + length}, beyond ${seg.size}`,
      });
    }
    if (seg === this.current && offset + length > seg.flushed) this.flushBuffer();
    await seg.tail;
    try {
      const fh = await fsp.open(seg.file, 'r');
      try {
        const buf = Buffer.allocUnsafe(length);
        const n = await readFully(fh, buf, offset);
        if (n < length) {
          throw new TandemError({ code: 'TANDEM_ERR_JOURNAL_CORRUPT', op, reason: `the file ends after ${n} of ${length} bytes`, hint: 'check the disk; the peers catch up by synchronisation' });
        }
        return buf;
      } finally {
        await fh.close();
      }
    } catch (err) {
      throw TandemError.wrap(err, { code: 'TANDEM_ERR_STATE_IO', op, hint: 'check the state directory' });
    }
  }

  /** Deletes a segment that is not the current one (trimming). Unknown names are ignored. */
  async deleteSegment(name: string): Promise<void> {
    const i = this.segs.findIndex((s) => s.name === name);
    if (i < 0) return;
    const seg = this.segs[i]!;
    if (seg === this.current) {
      throw new TandemError({ code: 'TANDEM_ERR_INTERNAL', op: `${this.opts.name}: delete ${name}`, reason: 'it is the current segment' });
    }
    this.segs.splice(i, 1);
    this.total -= seg.size;
    try {
      await seg.tail;
      await fsp.rm(seg.file, { force: true });
      await fsyncDir(this.opts.dir);
    } catch (err) {
      throw TandemError.wrap(err, { code: 'TANDEM_ERR_STATE_IO', op: `${this.opts.name}: delete ${seg.file}`, hint: 'check the state directory' });
    }
  }

  /** Syncs and closes. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      if (this.failure === undefined) await this.sync();
    } finally {
      this.closed = true;
      await this.rotation;
      await this.current.tail;
      await this.current.fh?.close().catch(noop);
      this.current.fh = undefined;
    }
  }

  private startSync(): Promise<void> {
    const p = this.runSync();
    this.inflightSync = p;
    const clear = (): void => {
      if (this.inflightSync === p) this.inflightSync = undefined;
    };
    p.then(clear, clear);
    return p;
  }

  private async runSync(): Promise<void> {
    this.flushBuffer();
    // Captured now: a later rotation waits for this sync, so waiting for it here would deadlock.
    const seg = this.current;
    await this.rotation;
    await seg.tail;
    this.throwIfUnusable('sync');
    try {
      await seg.fh!.datasync();
      this.fdatasyncs++;
      ioCounters.fsyncs++;
    } catch (err) {
      // Never retry a failed fdatasync: the kernel may have dropped the dirty pages already,
      // and a second call would report success for data that is gone.
      this.fail(err, `fdatasync ${seg.name}`);
      throw this.failure!;
    }
  }

  private flushBuffer(): void {
    if (this.chunkBytes === 0) return;
    this.closeRun();
    const seg = this.current;
    const bufs = this.chunks.length > WRITEV_MAX_CHUNKS ? [Buffer.concat(this.chunks, this.chunkBytes)] : this.chunks;
    const at = seg.flushed;
    seg.flushed += this.chunkBytes;
    this.chunks = [];
    this.chunkBytes = 0;
    const prev = seg.tail;
    seg.tail = this.guard(`write ${seg.name}`, async () => {
      await prev;
      if (this.failure !== undefined) return;
      await writevFully(seg.fh!, bufs, at);
    });
  }

  private closeRun(): void {
    const run = this.run;
    if (run === undefined) return;
    this.chunks.push(Buffer.from(run.buf, run.start, run.end - run.start));
    this.run = undefined;
  }

  /** Runs `fn`; a failure poisons the log (every later call fails) instead of rejecting. */
  private guard(what: string, fn: () => Promise<void>): Promise<void> {
    return fn().catch((err: unknown) => this.fail(err, what));
  }

  private fail(err: unknown, what: string): void {
    if (this.failure !== undefined) return;
    this.failure = TandemError.wrap(err, {
      code: 'TANDEM_ERR_STATE_IO',
      op: `${this.opts.name}: ${what}`,
      hint: 'check free space and the disk; restart the agent: it reopens the log and cuts what was not written',
    });
    this.opts.log.error({ err: this.failure }, `${this.opts.name}: write failed, the log refuses further writes`);
  }

  private throwIfUnusable(what: string): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.closed) throw this.closedError(what);
  }

  private closedError(what: string): TandemError {
    return new TandemError({ code: 'TANDEM_ERR_INTERNAL', op: `${this.opts.name}: ${what}`, reason: 'the log is closed' });
  }
}

function newSegment(dir: string, name: string, size: number): Segment {
  return { name, firstSeq: firstSeqOf(name), file: path.join(dir, name), size, flushed: size, fh: undefined, tail: Promise.resolve() };
}

function info(s: Segment): SegmentInfo {
  return { name: s.name, firstSeq: s.firstSeq, bytes: s.size };
}

function firstSeqOf(name: string): number {
  return Number(name.slice(0, name.length - SEGMENT_SUFFIX.length));
}

function noop(): void {}

type Stop = FrameStop | { kind: 'grammar'; offset: number; reason: string };

function stopOffset(stop: Stop, size: number): number {
  return stop.kind === 'end' ? size : stop.offset;
}

function stopReason(stop: Stop): string {
  switch (stop.kind) {
    case 'truncated':
      return 'truncated frame';
    case 'checksum':
      return 'checksum mismatch';
    case 'malformed':
      return `malformed frame (${stop.reason})`;
    case 'grammar':
      return `out-of-order entry (${stop.reason})`;
    default:
      return 'end';
  }
}

interface SegmentScan {
  size: number;
  /** End of the last commit or applied entry: where a damaged segment is cut. */
  boundary: number;
  stop: Stop;
  visited: number;
  /** Records after the last boundary (an incomplete batch). */
  pendingRecords: number;
  /** Highest sequence among the valid entries read, discarded ones included. */
  maxSeq: number;
  /** Highest sequence among valid frames found after the damage, if any were. */
  beyondMaxSeq: number | undefined;
}

async function scanSegment(file: string, name: string, grammar: BatchGrammar, visit: (entry: StoredEntry, at: FramePosition) => void, problem: (e: unknown) => string | undefined): Promise<SegmentScan> {
  const fh = await fsp.open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    let pending: { entry: StoredEntry; at: FramePosition }[] = [];
    let boundary = 0;
    let visited = 0;
    let maxSeq = 0;
    const stop = await forEachFrame(fh, size, 0, problem, (f) => {
      const problem = grammar.accept(f.entry);
      if (problem !== undefined) return problem;
      const at: FramePosition = { segment: name, offset: f.offset, length: f.length };
      if (f.entry.op !== 'applied') maxSeq = Math.max(maxSeq, seqOf(f.entry));
      if (f.entry.op === 'commit' || f.entry.op === 'applied') {
        for (const p of pending) visit(p.entry, p.at);
        visit(f.entry, at);
        visited += pending.length + 1;
        pending = [];
        boundary = f.offset + f.length;
      } else {
        pending.push({ entry: f.entry, at });
      }
      return undefined;
    });
    // After a bad frame, look for valid ones beyond it: if there are any, the damage is not a
    // torn write at the end but a hole in data that may have been durable and sent.
    const beyondMaxSeq = stop.kind === 'checksum' || stop.kind === 'malformed' || stop.kind === 'grammar' ? await probeBeyond(fh, size, stop.offset, problem) : undefined;
    return { size, boundary, stop, visited, pendingRecords: pending.length, maxSeq, beyondMaxSeq };
  } finally {
    await fh.close();
  }
}

/**
 * Calls `onFrame` for each valid frame from `from` on, reading in chunks. `onFrame` returns a
 * reason to stop at that frame. Offsets are absolute.
 */
async function forEachFrame(fh: FileHandle, size: number, from: number, problem: (e: unknown) => string | undefined, onFrame: (f: ParsedFrameOf<StoredEntry>) => string | undefined): Promise<Stop> {
  let base = from;
  let carry: Buffer = Buffer.alloc(0);
  let need = 0;
  for (;;) {
    const toRead = Math.min(Math.max(SCAN_CHUNK_BYTES, need - carry.length), size - base - carry.length);
    let buf = carry;
    let short = toRead <= 0;
    if (toRead > 0) {
      const chunk = Buffer.allocUnsafe(toRead);
      const n = await readFully(fh, chunk, base + carry.length);
      short = n < toRead;
      buf = carry.length === 0 ? chunk.subarray(0, n) : Buffer.concat([carry, chunk.subarray(0, n)]);
    }
    const atEnd = short || base + buf.length >= size;
    const { frames, stop } = parseFramesWith<StoredEntry>(buf, 0, problem);
    for (const f of frames) {
      const abs: ParsedFrameOf<StoredEntry> = { entry: f.entry, offset: base + f.offset, length: f.length };
      const problem = onFrame(abs);
      if (problem !== undefined) return { kind: 'grammar', offset: abs.offset, reason: problem };
    }
    if (stop.kind === 'end') {
      if (atEnd) return stop;
      base += buf.length;
      carry = Buffer.alloc(0);
      need = 0;
      continue;
    }
    if (stop.kind === 'truncated' && !atEnd) {
      carry = buf.subarray(stop.offset);
      base += stop.offset;
      need = carry.length >= FRAME_HEADER_BYTES ? FRAME_HEADER_BYTES + carry.readUInt32LE(0) : FRAME_HEADER_BYTES;
      continue;
    }
    return { ...stop, offset: base + stop.offset };
  }
}

/**
 * Hops over bad frames by their length field and returns the highest sequence of any valid
 * frame found after `offset`, or undefined when none is (garbage or zeros to the end: a torn
 * write). Reads the rest of the segment, which is at most about one segment.
 */
async function probeBeyond(fh: FileHandle, size: number, offset: number, problem: (e: unknown) => string | undefined = storedEntryProblem): Promise<number | undefined> {
  const rest = Buffer.allocUnsafe(size - offset);
  const n = await readFully(fh, rest, offset);
  const buf = rest.subarray(0, n);
  let found: number | undefined;
  let off = 0;
  while (off + FRAME_HEADER_BYTES <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len > MAX_ENTRY_BYTES || off + FRAME_HEADER_BYTES + len > buf.length) break;
    off += FRAME_HEADER_BYTES + len;
    const { frames, stop } = parseFramesWith<StoredEntry>(buf, off, problem);
    for (const f of frames) found = Math.max(found ?? 0, f.entry.op === 'applied' ? f.entry.seq : seqOf(f.entry));
    if (stop.kind === 'end' || stop.kind === 'truncated') break;
    off = stop.offset;
  }
  return found;
}

/** Highest sequence in a segment that is being dropped, read as far as it is readable. */
async function highestSeqIn(file: string): Promise<number> {
  let fh: FileHandle;
  try {
    fh = await fsp.open(file, 'r');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return 0;
    throw err;
  }
  try {
    const size = (await fh.stat()).size;
    let max = 0;
    const stop = await forEachFrame(fh, size, 0, storedEntryProblem, (f) => {
      max = Math.max(max, f.entry.op === 'applied' ? f.entry.seq : seqOf(f.entry));
      return undefined;
    });
    if (stop.kind === 'checksum' || stop.kind === 'malformed') max = Math.max(max, (await probeBeyond(fh, size, stop.offset)) ?? 0);
    return max;
  } finally {
    await fh.close();
  }
}

async function readFully(fh: FileHandle, buf: Buffer, position: number): Promise<number> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

async function writevFully(fh: FileHandle, bufs: Buffer[], position: number): Promise<void> {
  let list = bufs;
  let pos = position;
  while (list.length > 0) {
    const { bytesWritten } = list.length === 1 ? await fh.write(list[0]!, 0, list[0]!.length, pos) : await fh.writev(list, pos);
    pos += bytesWritten;
    let skip = bytesWritten;
    let i = 0;
    while (i < list.length && skip >= list[i]!.length) skip -= list[i++]!.length;
    list = list.slice(i);
    if (skip > 0 && list.length > 0) list[0] = list[0]!.subarray(skip);
  }
}

async function truncateFile(file: string, size: number): Promise<void> {
  const fh = await fsp.open(file, 'r+');
  try {
    await fh.truncate(size);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Makes a file's creation or removal in `dir` durable. */
async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
