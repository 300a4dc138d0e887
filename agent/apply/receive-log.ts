// The passive's log: a batch received is written here, verbatim and durably, before it is
// applied, unless it is applied straight from memory (skipped: the active keeps it until it is
// applied); `applied` marks record how far applying got. After a crash the batches after the
// last mark are applied again (records are absolute setters, so that is harmless). Nothing may
// be acknowledged to the active before its batch is here or applied, and its mark is durable.
import { TandemError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import {
  decodeAcceptedFrames,
  encodeFrame,
  parseFrames,
  type AppliedEntry,
  type CommitEntry,
  type CommitPoint,
  type DataRecord,
  type LogEntry,
} from '../../shared/protocol/index.ts';
import { BatchGrammar, SegmentLog, batchProblem, type FramePosition, type ScanSummary } from '../journal/index.ts';

export interface ReceiveLogOptions {
  dir: string;
  /** A new segment starts at the first batch received after a segment reaches this size. */
  segmentBytes: number;
  log: Logger;
}

/** A batch read back from the receive log (redo after a restart). */
export interface StoredBatch {
  first: number;
  last: number;
  consistent: boolean;
  ts: number;
  generation: string;
  /** The consistency point the batch belongs to (its commit's), if the active takes points. */
  point?: CommitPoint | undefined;
  /** Binary fields are views into one buffer per batch. */
  records: DataRecord[];
  /** That buffer: the batch's frames as stored (records, then the commit). */
  frames: Uint8Array;
}

interface HeldBatch {
  first: number;
  last: number;
  consistent: boolean;
  ts: number;
  generation: string;
  point?: CommitPoint | undefined;
  segment: string;
  offset: number;
  length: number;
}

export class ReceiveLog {
  readonly scan: ScanSummary;
  private held: HeldBatch[];
  /** Highest batch sequence per segment, set when the batch is appended. */
  private readonly segLast: Map<string, number>;
  private applied: number;
  private received: number;
  /** Last sequence of the last batch appended (durable or not yet): the next must start above. */
  private appendedSeq: number;
  /** Latest mark appended (durable or not yet). */
  private markAppended: number;
  private published: Promise<void> = Promise.resolve();
  private maintenance: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly opts: ReceiveLogOptions,
    private readonly store: SegmentLog,
    held: HeldBatch[],
    segLast: Map<string, number>,
    appliedSeq: number,
  ) {
    this.scan = store.scan;
    this.held = held;
    this.segLast = segLast;
    this.applied = appliedSeq;
    this.received = Math.max(appliedSeq, held[held.length - 1]?.last ?? 0);
    this.appendedSeq = this.received;
    this.markAppended = appliedSeq;
  }

  static async open(opts: ReceiveLogOptions): Promise<ReceiveLog> {
    const held: HeldBatch[] = [];
    const segLast = new Map<string, number>();
    let appliedSeq = 0;
    let start: FramePosition | undefined;
    const visit = (e: LogEntry, at: FramePosition): void => {
      if (e.op === 'commit') {
        const s = start ?? at;
        held.push({
          first: e.first,
          last: e.last,
          consistent: e.consistent,
          ts: e.ts,
          generation: e.generation,
          point: e.point,
          segment: at.segment,
          offset: s.offset,
          length: at.offset + at.length - s.offset,
        });
        segLast.set(at.segment, e.last);
        start = undefined;
      } else if (e.op === 'applied') {
        appliedSeq = Math.max(appliedSeq, e.seq);
      } else {
        start ??= at;
      }
    };
    const store = await SegmentLog.open({ dir: opts.dir, segmentBytes: opts.segmentBytes, log: opts.log, name: 'receive-log', firstSeq: 1, visit });
    const rl = new ReceiveLog(opts, store, held, segLast, appliedSeq);
    opts.log.info(
      { appliedSeq: rl.appliedSeq, receivedSeq: rl.receivedSeq, pendingBatches: held.filter((b) => b.last > appliedSeq).length, bytes: store.totalBytes },
      'receive-log: opened',
    );
    return rl;
  }

  /** Every record up to here is applied and durable (the last durable mark; 0 if none). */
  get appliedSeq(): number {
    return this.applied;
  }

  /** Last sequence of the last complete batch held durably (>= appliedSeq). */
  get receivedSeq(): number {
    return this.received;
  }

  get totalBytes(): number {
    return this.store.totalBytes;
  }

  /** fdatasync calls made so far (for metrics: concurrent appends share them). */
  get syncCount(): number {
    return this.store.syncCount;
  }

  segments(): { name: string; firstSeq: number; bytes: number }[] {
    return this.store.segments();
  }

  /**
   * The complete batches held whose records are not all applied, in order, read back from
   * disk: what must be applied again after a restart. A batch the mark cuts through comes
   * whole; the applier skips records at or below appliedSeq if it wants to.
   */
  async *pendingBatches(): AsyncGenerator<StoredBatch> {
    const todo = this.held.filter((b) => b.last > this.applied);
    for (const b of todo) {
      const buf = await this.readHeld(b);
      // readHeld checked the frames whole (batchProblem): decoded without a second check.
      const records = decodeAcceptedFrames(buf).slice(0, -1) as DataRecord[];
      yield { first: b.first, last: b.last, consistent: b.consistent, ts: b.ts, generation: b.generation, point: b.point, records, frames: buf };
    }
  }

  /**
   * The frames of the held batch `first..last`, read back from disk (a batch staged until its
   * consistency point closes is not kept in memory). Undefined when the log no longer holds it.
   */
  async readBatch(first: number, last: number): Promise<Buffer | undefined> {
    const b = this.held.find((x) => x.first === first && x.last === last);
    return b === undefined ? undefined : this.readHeld(b);
  }

  private async readHeld(b: HeldBatch): Promise<Buffer> {
    const buf = await this.store.read(b.segment, b.offset, b.length);
    const problem = batchProblem(buf, b);
    if (problem !== undefined) {
      throw new TandemError({
        code: 'TANDEM_ERR_JOURNAL_CORRUPT',
        op: `receive-log: read batch ${b.first}..${b.last} from ${b.segment}`,
        reason: problem,
        hint: 'the receive-log segment was damaged after it was written; check the disk. The active sends the batch again or synchronises',
        details: { segment: b.segment, offset: b.offset },
      });
    }
    return buf;
  }

  /**
   * Appends a received batch verbatim (record frames then its commit frame) and makes it
   * durable; concurrent calls share fdatasyncs and keep their order. `commit` is the batch's
   * commit entry when the caller already parsed the frames; without it they are parsed here.
   * A batch may jump forward (a synchronisation) but never start at or below receivedSeq.
   * Do not change `frames` before the promise settles.
   */
  appendBatch(frames: Uint8Array, commit?: CommitEntry): Promise<void> {
    let c: CommitEntry;
    try {
      this.throwIfClosed('append batch');
      c = commit ?? commitOf(frames);
      if (c.first <= this.appendedSeq) {
        throw new TandemError({
          code: 'TANDEM_ERR_PROTOCOL',
          op: `receive-log: append batch ${c.first}..${c.last}`,
          reason: `it does not start above the last batch received (${this.appendedSeq})`,
          hint: 'the active resent or reordered a batch; the channel reconnects and resumes from the passive’s position',
          details: { first: c.first, last: c.last, receivedSeq: this.appendedSeq },
        });
      }
      // Start a new segment at a batch boundary, carrying the latest mark over so that it
      // survives the deletion of the segments before.
      if (this.store.isFull() && c.first > this.store.currentSegment.firstSeq) {
        this.store.rotate(c.first);
        if (this.markAppended > 0) this.store.append(encodeFrame({ op: 'applied', seq: this.markAppended } satisfies AppliedEntry));
      }
    } catch (err) {
      return Promise.reject(err);
    }
    const view = Buffer.from(frames.buffer, frames.byteOffset, frames.byteLength);
    const at = this.store.append(view);
    const batch: HeldBatch = {
      first: c.first,
      last: c.last,
      consistent: c.consistent,
      ts: c.ts,
      generation: c.generation,
      point: c.point,
      segment: at.segment,
      offset: at.offset,
      length: at.length,
    };
    this.appendedSeq = c.last;
    this.segLast.set(at.segment, c.last);
    const synced = this.store.sync();
    synced.catch(noop);
    const done = this.published
      .then(() => synced)
      .then(() => {
        this.held.push(batch);
        this.received = Math.max(this.received, batch.last);
      });
    this.published = done.then(noop, noop);
    return done;
  }

  /**
   * A batch up to `last` is applied from memory without being stored here: marks may go up to
   * it, and the next batch stored must start above it. Call it once every batch before it was
   * handed to appendBatch.
   */
  skip(last: number): void {
    this.appendedSeq = Math.max(this.appendedSeq, last);
  }

  /**
   * An empty log continues after `seq`: the tree already holds the state at that sequence (a
   * node that was active until now, whose journal ended there). Durable before it resolves.
   */
  async startAfter(seq: number): Promise<void> {
    this.throwIfClosed('start after');
    if (this.appendedSeq !== 0 || this.held.length > 0) {
      throw new TandemError({ code: 'TANDEM_ERR_INTERNAL', op: `receive-log: start after ${seq}`, reason: `the log is not empty (received up to ${this.appendedSeq})` });
    }
    if (seq <= 0) return;
    this.appendedSeq = seq;
    this.received = seq;
    await this.markApplied(seq);
  }

  /**
   * Records durably that every record up to `seq` is applied (it may fall inside a batch).
   * A mark at or below the current one changes nothing: appliedSeq never goes back.
   */
  markApplied(seq: number): Promise<void> {
    try {
      this.throwIfClosed('mark applied');
      if (seq > this.appendedSeq) {
        throw new TandemError({
          code: 'TANDEM_ERR_INTERNAL',
          op: `receive-log: mark ${seq} applied`,
          reason: `only records up to ${this.appendedSeq} were received`,
        });
      }
    } catch (err) {
      return Promise.reject(err);
    }
    if (seq <= this.markAppended) return this.published;
    this.markAppended = seq;
    // Batches applied from memory leave only marks here: a segment full of them is closed too
    // (and trimmed like any other), or the log would grow a mark at a time forever.
    if (this.store.isFull() && seq + 1 > this.store.currentSegment.firstSeq) this.store.rotate(seq + 1);
    this.store.append(encodeFrame({ op: 'applied', seq } satisfies AppliedEntry));
    const synced = this.store.sync();
    synced.catch(noop);
    const done = this.published
      .then(() => synced)
      .then(() => {
        this.applied = Math.max(this.applied, seq);
        this.received = Math.max(this.received, this.applied);
      });
    this.published = done.then(noop, noop);
    return done;
  }

  /** Deletes the segments whose records are all applied (never the current one). */
  trim(): Promise<void> {
    const run = this.maintenance.then(async () => {
      for (const s of this.store.segments().slice(0, -1)) {
        // A segment of marks alone holds nothing to redo.
        const last = this.segLast.get(s.name) ?? 0;
        if (last > this.applied) break;
        await this.store.deleteSegment(s.name);
        this.segLast.delete(s.name);
        this.held = this.held.filter((b) => b.segment !== s.name);
      }
    });
    this.maintenance = run.then(noop, noop);
    return run;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.published;
    await this.maintenance;
    await this.store.close();
    this.opts.log.debug({ appliedSeq: this.applied, receivedSeq: this.received }, 'receive-log: closed');
  }

  private throwIfClosed(what: string): void {
    if (this.closed) throw new TandemError({ code: 'TANDEM_ERR_INTERNAL', op: `receive-log: ${what}`, reason: 'the receive log is closed' });
  }
}

/** The commit of a batch given as frames, checking the batch grammar on the way. */
function commitOf(frames: Uint8Array): CommitEntry {
  const { frames: parsed, stop } = parseFrames(frames);
  const op = 'receive-log: append batch';
  if (stop.kind !== 'end') {
    throw new TandemError({
      code: stop.kind === 'checksum' ? 'TANDEM_ERR_CHECKSUM' : 'TANDEM_ERR_FRAME_MALFORMED',
      op,
      reason: `${stop.kind} frame at offset ${stop.offset}`,
      hint: 'the batch was damaged on the way; the channel reconnects and the active sends it again',
    });
  }
  const grammar = new BatchGrammar();
  let problem: string | undefined = parsed.length < 2 ? 'a batch needs records and a commit' : undefined;
  parsed.forEach((f, i) => {
    problem ??= f.entry.op === 'applied' ? 'an applied mark in a batch' : grammar.accept(f.entry);
    if (problem === undefined && f.entry.op === 'commit' && i !== parsed.length - 1) problem = 'a commit before the end of the batch';
  });
  const last = parsed[parsed.length - 1]?.entry;
  if (problem === undefined && last?.op !== 'commit') problem = 'the batch does not end with its commit';
  if (problem !== undefined || last?.op !== 'commit') {
    throw new TandemError({ code: 'TANDEM_ERR_PROTOCOL', op, reason: problem ?? 'no commit', hint: 'the active sent a batch that is not well formed: a bug; it is reported and not applied' });
  }
  return last;
}

function noop(): void {}
