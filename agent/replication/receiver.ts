// The passive's side of replication. Every batch is checked (frames, checksums, sequence,
// roots, paths), then applied in order; only what is applied and durable is acknowledged. A
// batch of a consistency point is persisted in the receive log first (it may wait there for the
// rest of its point, and a promotion applies it); from protocol 3 any other batch is applied
// straight from memory, so that its bytes are written once here: the active keeps it in its
// journal until it is applied, and sends it again after a crash of this node. When a write
// cannot be applied (disk full, permission), applying pauses with an alarm and retries with
// backoff: nothing is skipped, nothing is acknowledged early. A malformed or hostile batch is
// refused whole, before anything of it is written.
//
// What an active can make it hold is bounded (docs/security.md, "What a peer can cost"): at
// most its receive window of unacknowledged batches, kept as the frames that arrived (never
// decoded records, never inflated blocks); a block at most the pair's block size; a batch's
// blocks at most MAX_BATCH_RAW_BYTES once inflated, checked from the stated lengths before a
// byte is inflated; and blocks inflated one at a time, applied in runs of at most
// APPLY_INFLATED_BYTES. Inflating is cut into slices of the event loop (TimeSlice), so that the
// heartbeat keeps its rhythm while a batch of compressed blocks is checked and applied.
import type { Clock, TimerHandle } from '../../shared/clock.ts';
import type { ProtectedRoot } from '../../shared/config/index.ts';
import { TandemError, type ErrorCode } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { Notice } from '../../shared/notices.ts';
import { TimeSlice } from '../../shared/time-slice.ts';
import { UserDb, type OwnersMode } from '../tree/index.ts';
import {
  MAX_BATCH_RAW_BYTES,
  MAX_BATCH_RECORDS,
  countFrames,
  decompressWrite,
  decodeAcceptedFrames,
  parseFrames,
  payloadBytes,
  writeLength,
  type BatchMessage,
  type CommitEntry,
  type CommitPoint,
  type DataRecord,
  type HelloMessage,
  type Message,
  type VerifyEntryMessage,
  type VerifyListMessage,
  type VerifyReplyMessage,
} from '../../shared/protocol/index.ts';
import type { Manifest } from '../manifest/index.ts';
import type { NodeStateStore } from '../state/index.ts';
import { manifestChunks, refreshManifest } from '../sync/index.ts';
import { listenTo, type LinkCloseInfo, type PeerLink } from './peer-link.ts';
import { PointLedger, type PointInfo } from '../points/index.ts';
import { PROTOCOL_MIN } from '../../shared/version.ts';

export interface StoredBatchLike {
  first: number;
  last: number;
  ts: number;
  generation: string;
  /** The consistency point the batch belongs to (its commit's), when the active takes points. */
  point?: CommitPoint | undefined;
  /** The batch's frames as received and stored: its records, then its commit. */
  frames: Uint8Array;
}

/** What the receiver needs from the receive log. */
export interface ReceiverLog {
  readonly appliedSeq: number;
  readonly receivedSeq: number;
  pendingBatches(): AsyncIterable<StoredBatchLike>;
  appendBatch(frames: Uint8Array, commit?: CommitEntry): Promise<void>;
  markApplied(seq: number): Promise<void>;
  /** A batch up to `last` is applied from memory, never stored: marks may go up to it. */
  skip(last: number): void;
  trim(): Promise<void>;
  /** The frames of a held batch, read back (a staged batch whose frames were not kept in memory). */
  readBatch(first: number, last: number): Promise<Uint8Array | undefined>;
}

export interface ReceiverApplier {
  /**
   * agent/apply/applier.ts (its ApplyOptions): with `opts.overlap`, may resolve with its last
   * durable point still running (waiting first for `opts.after`), `opts.applied` called just
   * before that point starts.
   */
  apply(
    records: DataRecord[],
    durable: (seq: number) => Promise<void>,
    opts?: { overlap?: boolean; after?: Promise<void> | undefined; applied?: () => void },
  ): Promise<{ done: Promise<void> } | undefined | void>;
  /** Warnings that did not stop applying (agent/apply/applier.ts); shown with the alarms. */
  noticeList?(): Notice[];
}

export interface ReceiverOptions {
  pair: string;
  self: string;
  blockSize: number;
  roots: ProtectedRoot[];
  receiveLog: ReceiverLog;
  applier: ReceiverApplier;
  manifest: Manifest;
  /**
   * Persists the manifest (or `deltas` taken from it earlier, takeManifestDeltas); called only
   * once what it describes is durable.
   */
  flushManifest: (deltas?: Buffer) => Promise<void>;
  /**
   * The manifest's changes as they are now, to be persisted by flushManifest once durable while
   * the next records already change it (a durable point running behind, ApplyOptions.overlap).
   * Absent: points never run behind.
   */
  takeManifestDeltas?: () => Buffer;
  /** Compacts the persisted manifest if due; called while nothing is applied or running behind. */
  compactManifest?: () => Promise<void>;
  nodeState: NodeStateStore;
  retryMinMs: number;
  retryMaxMs: number;
  /**
   * The receive window (channel.windowBatches, channel.windowBytes): batches received and not
   * yet acknowledged, and their bytes on the wire, at most. Told to the active in the hello.
   */
  window: { batches: number; bytes: number };
  /** replication.owners: how this node applies owners, and so how it describes them to the active. */
  owners?: OwnersMode;
  /** Answers `tandem verify`'s questions (agent/verify); absent: they are refused. */
  verify?: { answer(m: VerifyListMessage | VerifyEntryMessage, send: (reply: VerifyReplyMessage) => void): Promise<void> } | undefined;
  /**
   * Standby protection (agent/standby): its alarms show beside the receiver's (and reach the
   * active), and a copy changed by someone else is not in sync. Call `standbyChanged()` when
   * they change.
   */
  standby?: { alarms(): Alarm[]; modified(): boolean } | undefined;
  log: Logger;
  clock: Clock;
}

export interface Alarm {
  code: ErrorCode;
  message: string;
  hint?: string | undefined;
  since: number;
  details?: Record<string, unknown> | undefined;
}

export interface ReceiverStatus {
  connected: boolean;
  peer: string | undefined;
  receivedSeq: number;
  appliedSeq: number;
  /** The active's journal head as last heard. */
  peerHeadSeq: number;
  lagMs: number;
  queueBytes: number;
  inSync: boolean;
  paused: boolean;
  /** The active said an operator paused replication (tandem pause). */
  peerPaused: boolean;
  alarm: Alarm | undefined;
  /** Standby protection's alarms: the copy was changed by someone else, or could not be made read-only. */
  standby: Alarm[];
  /** The copy holds changes someone other than Tandem made (TANDEM_ERR_PASSIVE_MODIFIED). */
  modified: boolean;
  sync: { id: string; bytesDone: number; bytesTotal: number; etaMs: number | undefined } | undefined;
  /** While the active reports a catch-up: bytes it has journaled and this node not yet acknowledged, and paths it has not journaled yet (as of its last report, at most a second old). */
  catchUp: { bytesLeft: number; pathsLeft: number } | undefined;
  /** Warnings of the applier that did not stop it (a link replaced, a privilege cleared…), as alarms. */
  notices: Alarm[];
  /**
   * The newest consistency point this node holds whole (received durably: it is applied, or will
   * be at a promotion), by the sequence of its last record, and the latest instant the active's
   * disk was that point; undefined when the active takes no points (or none arrived yet).
   */
  point: PointInfo | undefined;
  /** Batches held and not applied because their point is not complete yet. */
  staged: { batches: number; records: number; bytes: number };
}

/** What a promotion left out: the batches past the last complete point (docs/replication.md). */
export interface Discarded {
  records: number;
  /** Bytes of file data they set. */
  bytes: number;
  firstSeq: number;
  lastSeq: number;
  /** The active's clock: when the first and the last of them were journaled. */
  fromTs: number;
  toTs: number;
  /** The point the promoted node presents: the state after record `pointId`, of instant `pointAt`. */
  pointId: number;
  pointAt: number | undefined;
}

interface Pending {
  first: number;
  last: number;
  ts: number;
  generation: string;
  point?: CommitPoint | undefined;
  /** The frames as received; undefined once dropped to bound memory (read back from the receive log). */
  frames: Uint8Array | undefined;
  /**
   * The records checkBatch decoded from `frames` (binary fields are views into them), kept while
   * the queue keeps few (DECODED_KEEP_RECORDS) so that they are not decoded a second time to be
   * applied; undefined otherwise, and whenever `frames` is.
   */
  records?: DataRecord[] | undefined;
  /** Bytes of file data the batch sets, inflated (status: queueBytes). */
  bytes: number;
  /** Bytes of frames kept in memory for it while it waits for its point. */
  kept: number;
  /** Bytes of its frames as received (what it counts against the window). */
  size: number;
}

/**
 * Frames of staged batches (waiting for their point to close) kept in memory, at most; beyond,
 * a batch is read back from the receive log when its point closes.
 */
export const STAGED_MEMORY_BYTES = 64 * 1024 * 1024;

/**
 * Records decoded by checkBatch that the queue keeps at most, to be applied from; a batch whose
 * records would pass the bound drops them, and they are decoded again when it is applied.
 * Decoding every record twice was ~2.5 % of the passive's CPU for 100,000 small files. The bound
 * is on records, not bytes: a record costs ~100-200 bytes of heap whatever its frame holds (its
 * data is a view into the frame), so at most ~8 MiB here, even for batches of tiny records. A
 * synchronisation of small files runs ~16 MiB of frames ahead of what this node holds (the
 * sender's SYNC_BACKLOG_BYTES), ~37,000 records: most of its batches keep theirs.
 */
export const DECODED_KEEP_RECORDS = 48_000;

/**
 * Inflated bytes applied in one run: a batch whose compressed blocks inflate to more is applied
 * in several runs, each made durable and acknowledged, so that at most this much inflated data
 * is held at once. Raw blocks are views into the frames and do not count.
 */
export const APPLY_INFLATED_BYTES = 16 * 1024 * 1024;

/**
 * Group commit: batches queued and releasable are applied together, in one call of the applier,
 * so that one durable point, one manifest flush, one applied mark and one acknowledgement cover
 * them all (a rename inside still is a commit barrier). A group holds at most this many records
 * (they are decoded at once: about as many as one large batch holds)...
 */
export const GROUP_MAX_RECORDS = 16_384;
/** ...at most this many bytes of file data... */
export const GROUP_MAX_DATA_BYTES = 32 * 1024 * 1024;
/**
 * ...and at most this share of the receive window (batches and bytes): the active keeps sending
 * the next group while this one is applied, where a group of the whole window would stop it
 * until the acknowledgement.
 */
export const GROUP_WINDOW_SHARE = 0.5;

/**
 * `tandem verify` questions answered at once, at most; more get an error reply at once. The
 * active's verifier keeps a handful in flight; each answer reads a directory or hashes a file.
 */
export const MAX_VERIFY_ANSWERS = 32;

export class Receiver {
  private readonly log: Logger;
  private readonly rootNames: Set<string>;
  private link: PeerLink | undefined;
  private peerHello: HelloMessage | undefined;
  private readonly queue: Pending[] = [];
  private receivedSeq: number;
  /**
   * Last sequence held durably: applied, or in the receive log (receivedSeq runs ahead while a
   * batch is being written, and over batches held in memory only).
   */
  private receivedDurable: number;
  /** The session lets batches without a point be applied from memory (protocol 3 and later). */
  private direct = false;
  /** Last sequence of the batches held in memory only (applied from there, never persisted). */
  private directThrough = 0;
  /** Appends that failed so far: a batch that arrived before one of them failed is sent again, not queued. */
  private persistFailures = 0;
  /**
   * The inflate check of the last batch that arrived on this connection (checkBlocks): each
   * waits for the one before, so a batch that fails it fails every later one too.
   */
  private blocksChecked: Promise<void> = Promise.resolve();
  /** Waiting until everything up to `seq` is applied and durable; told false when the receiver closes. */
  private appliedWaiters: { seq: number; resolve: (ok: boolean) => void }[] = [];
  private appliedSeq: number;
  /**
   * Last sequence applied, its durable point perhaps still running behind the next group
   * (ApplyOptions.overlap): at least appliedSeq. What it passes leaves the window (`released`).
   */
  private takenSeq: number;
  /** The durable point running behind (the last group applied), if any. */
  private behind: Promise<void> | undefined;
  /** Wakes the apply loop while it waits for the point behind (kick: more to apply, or closing). */
  private wake: (() => void) | undefined;
  private peerHeadSeq = 0;
  /** The active's last word on a catch-up in progress (undefined: none). */
  private peerCatchUp: { bytesLeft: number; pathsLeft: number } | undefined;
  private peerPaused = false;
  private applying: Promise<void> | undefined;
  private retryTimer: TimerHandle | undefined;
  private retryDelay: number;
  private alarm: Alarm | undefined;
  private receiveAlarm: Alarm | undefined;
  private closed = false;
  private syncBytesDone = 0;
  private syncBytesTotal = 0;
  private syncStartedAt = 0;
  private lastContactLagMs: number | undefined;
  private behindSince: number | undefined;
  /** Every append made (durable or failed) and handled, in the order batches arrived. */
  private appendChain: Promise<void> = Promise.resolve();
  /**
   * Resolves when the next append may be handed to the receive log: at once, unless something
   * must be durable before it (a new generation taken at the hello). Appends are not chained on
   * each other's fsync: batches that arrive while one fsync runs share the next.
   */
  private appendGate: Promise<void> = Promise.resolve();
  /** Batches received and not yet acknowledged, oldest first, with their bytes on the wire: what counts against the window. */
  private readonly held: { last: number; bytes: number }[] = [];
  private heldBytes = 0;
  /** Records the queue keeps decoded (Pending.records), at most DECODED_KEEP_RECORDS. */
  private keptRecords = 0;
  private verifyAnswers = 0;
  /** The manifest request being answered, and the newest one asked for meanwhile (one at a time: each rehashes the tree). */
  private manifestAnswer: Promise<void> | undefined;
  private manifestNext: string | undefined;
  private drainWaiters: (() => void)[] = [];
  /** The apply loop runs (applyLoop): whenDrained waits for it, and it resolves the waiters as it ends. */
  private looping = false;
  private readonly detachLink: (() => void)[] = [];
  /** Consistency points held: from the batches' commits and the active's peer-state. */
  private readonly points = new PointLedger();
  /** Highest sequence known to end a point: batches up to it may be applied. */
  private closedThrough = 0;
  /** A synchronisation starts: everything held up to here is applied whatever its point. */
  private releaseThrough = 0;
  private stagedKept = 0;
  /** The instant of the newest point held, when the active was last heard (failover's lag). */
  private rpoAtContactMs: number | undefined;

  private readonly users: UserDb;

  constructor(private readonly opts: ReceiverOptions) {
    this.log = opts.log.child({ component: 'receiver' });
    this.users = new UserDb(opts.clock);
    this.rootNames = new Set(opts.roots.map((r) => r.name));
    this.receivedSeq = opts.receiveLog.receivedSeq;
    this.receivedDurable = opts.receiveLog.receivedSeq;
    this.appliedSeq = opts.receiveLog.appliedSeq;
    this.takenSeq = this.appliedSeq;
    // A synchronisation interrupted by a restart: its total is known, what was done before is not.
    this.syncBytesTotal = opts.nodeState.get().syncBytesTotal;
    this.syncStartedAt = opts.clock.now();
    this.retryDelay = opts.retryMinMs;
  }

  /** Redoes, after a restart, every batch held but not yet applied and durable. */
  async recover(): Promise<void> {
    const pending: StoredBatchLike[] = [];
    for await (const b of this.opts.receiveLog.pendingBatches()) pending.push(b);
    for (const b of pending) {
      this.queue.push({ first: b.first, last: b.last, ts: b.ts, generation: b.generation, point: b.point, frames: b.frames, bytes: batchDataBytes(recordsOf(b.frames)), kept: 0, size: b.frames.byteLength });
      this.notePointOf(b.last, b.point);
      this.hold(b.last, b.frames.byteLength);
    }

    if (pending.length > 0) {
      this.log.info({ batches: pending.length, from: pending[0]!.first, to: pending[pending.length - 1]!.last, appliedSeq: this.appliedSeq }, 'receiver: applying batches held before the restart');
    }
    this.kick();
  }

  /** Takes over a connection to the active whose hellos were exchanged; `protocol` is the session's. */
  attach(link: PeerLink, peerHello: HelloMessage, protocol = PROTOCOL_MIN): void {
    if (this.link !== undefined) this.detach('replaced by a newer connection');
    this.link = link;
    this.blocksChecked = Promise.resolve();
    // A protocol-2 active trims its journal at this node's headSeq: with it, every batch is
    // persisted before it counts as held.
    this.direct = protocol >= 3;
    const onMessage = (m: Message) => {
      try {
        this.onMessage(m);
      } catch (err) {
        this.refuse(TandemError.wrap(err, { code: 'TANDEM_ERR_INTERNAL', op: `handle ${m.t}` }));
      }
    };
    const onClose = (info: LinkCloseInfo) => {
      if (this.link === link) this.detach(`channel closed: ${info.code} ${info.reason}`);
    };
    this.detachLink.push(listenTo(link, onMessage, onClose));
    this.onHello(peerHello);
    this.sendPeerState();
    // What this node holds durably is received, applied or not: the active may count it so at once.
    this.ackReceived();
  }

  /** This side's part of the hello: what it holds. `protocolMax`: the highest this node offers. */
  helloFields(protocolMax = PROTOCOL_MIN): Pick<HelloMessage, 'generation' | 'headSeq' | 'durableSeq' | 'firstSeq' | 'appliedSeq' | 'syncId' | 'window' | 'held'> {
    const s = this.opts.nodeState.get();
    return {
      generation: s.generation,
      headSeq: this.receivedSeq,
      ...(protocolMax >= 3 ? { durableSeq: this.durableSeq() } : {}),
      firstSeq: 0,
      appliedSeq: this.appliedSeq,
      syncId: s.syncId,
      window: { ...this.opts.window },
      held: { batches: this.held.length, bytes: this.heldBytes },
    };
  }

  /** Applies every batch held (a promotion finishes what it received); resolves with the last applied sequence. */
  async drain(timeoutMs: number): Promise<number> {
    await this.appendChain;
    let timer: TimerHandle | undefined;
    await Promise.race([this.whenDrained(), new Promise<void>((r) => (timer = this.opts.clock.setTimeout(r, timeoutMs)))]);
    timer?.cancel();
    return this.appliedSeq;
  }

  /** Resolves true once every record up to `seq` is applied and durable; false after `timeoutMs`. */
  async whenApplied(seq: number, timeoutMs: number): Promise<boolean> {
    const deadline = this.opts.clock.monotonic() + timeoutMs;
    while (this.appliedSeq < seq) {
      if (this.closed || this.opts.clock.monotonic() > deadline) return false;
      await this.opts.clock.sleep(10);
    }
    return true;
  }

  get applied(): number {
    return this.appliedSeq;
  }

  /** Last sequence this node would still hold after a crash: applied, or in the receive log. */
  private durableSeq(): number {
    return Math.min(this.receivedSeq, this.receivedDurable);
  }

  /** Resolves true once everything up to `seq` is applied and durable; false if the receiver closes first. */
  private appliedThrough(seq: number): Promise<boolean> {
    if (this.appliedSeq >= seq) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => this.appliedWaiters.push({ seq, resolve }));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * How far behind the active this passive was when it last heard from it (ms), if it ever did.
   * `channelDelayMs`: how late the active's word reached it then (ChannelObservation.delayMs).
   * What the active journaled within that delay may still have been on its way, unseen: the
   * sequence numbers alone say "caught up" whenever the last batch that arrived was the newest
   * the passive knew of (over a slow link, seconds behind the active's head).
   */
  lagAtLastContact(channelDelayMs = 0): number | undefined {
    if (this.lastContactLagMs === undefined && this.rpoAtContactMs === undefined) return undefined;
    return Math.max(this.lastContactLagMs ?? 0, this.rpoAtContactMs ?? 0, channelDelayMs);
  }

  status(): ReceiverStatus {
    const now = this.opts.clock.now();
    const head = this.queue[0];
    const syncId = this.opts.nodeState.get().syncId;
    let sync: ReceiverStatus['sync'];
    if (syncId !== '') {
      const rate = this.syncBytesDone / Math.max(1, now - this.syncStartedAt);
      sync = {
        id: syncId,
        bytesDone: this.syncBytesDone,
        bytesTotal: this.syncBytesTotal,
        etaMs: rate > 0 ? Math.round(Math.max(0, this.syncBytesTotal - this.syncBytesDone) / rate) : undefined,
      };
    }
    const connected = this.link !== undefined && this.peerHello !== undefined;
    const modified = this.opts.standby?.modified() === true;
    return {
      connected,
      peer: this.link?.peer,
      receivedSeq: this.receivedSeq,
      appliedSeq: this.appliedSeq,
      peerHeadSeq: this.peerHeadSeq,
      lagMs: head === undefined ? 0 : Math.max(0, now - head.ts),
      queueBytes: this.queue.reduce((n, b) => n + b.bytes, 0),
      // A catch-up is over when the active says so: changes it held back are not in its head yet.
      // A copy someone else changed is not the active's state, however far it applied.
      inSync: connected && syncId === '' && this.queue.length === 0 && this.appliedSeq >= this.peerHeadSeq && this.peerCatchUp === undefined && !modified,
      catchUp: connected && syncId === '' ? this.peerCatchUp : undefined,
      paused: this.alarm !== undefined,
      peerPaused: connected && this.peerPaused,
      alarm: this.alarm ?? this.receiveAlarm,
      standby: this.opts.standby?.alarms() ?? [],
      modified,
      sync,
      notices: (this.opts.applier.noticeList?.() ?? []).map((n) => ({ code: n.code, message: n.message, hint: n.hint, since: n.since, details: { ...n.details, count: n.count, last: n.last } })),
      point: this.points.heldAt(this.receivedDurable),
      staged: this.stagedSummary(),
    };
  }

  private stagedSummary(): ReceiverStatus['staged'] {
    let batches = 0;
    let records = 0;
    let bytes = 0;
    for (const b of this.queue) {
      if (this.releasable(b)) continue;
      batches++;
      records += b.last - b.first + 1;
      bytes += b.bytes;
    }
    return { batches, records, bytes };
  }

  /**
   * What a promotion now would leave out: the batches held past the last complete point
   * (undefined when there are none). Call after drain().
   */
  discarded(): Discarded | undefined {
    const rest = this.queue.filter((b) => !this.releasable(b));
    if (rest.length === 0) return undefined;
    const point = this.points.heldAt(this.appliedSeq);
    return {
      records: rest.reduce((n, b) => n + (b.last - Math.max(b.first, this.appliedSeq + 1) + 1), 0),
      bytes: rest.reduce((n, b) => n + b.bytes, 0),
      firstSeq: rest[0]!.first,
      lastSeq: rest[rest.length - 1]!.last,
      fromTs: rest[0]!.point?.at ?? rest[0]!.ts,
      toTs: rest[rest.length - 1]!.ts,
      pointId: this.appliedSeq,
      pointAt: point?.id === this.appliedSeq ? point.at : undefined,
    };
  }

  /** A batch may be applied: it closes a point held whole, or the active takes no points. */
  private releasable(b: Pending): boolean {
    return b.point === undefined || b.last <= this.closedThrough || b.last <= this.releaseThrough;
  }

  /** The batch ending at `last` belongs to `point`: one that ends it makes everything up to it applicable. */
  private notePointOf(last: number, point: CommitPoint | undefined): void {
    if (point?.end !== true) return;
    this.closedThrough = Math.max(this.closedThrough, last);
    this.points.record(last, point.at);
  }

  /**
   * The active says its newest point is the state after record `id`, as of `at`. A point that no
   * batch closed (the active's round journaled nothing more after a full batch, or it restarted
   * mid-point) closes here, provided this node holds a batch ending exactly there.
   */
  private onPointClaim(p: { id: number; at: number }): void {
    if (p.id <= this.receivedDurable && (p.id === this.appliedSeq || this.queue.some((b) => b.last === p.id))) {
      if (p.id > this.closedThrough) {
        this.closedThrough = p.id;
        this.kick();
      }
      this.points.record(p.id, p.at);
    } else {
      this.points.claim(p.id, p.at);
    }
  }

  /** Tells the active what this node holds durably (and what it applied). */
  private ackReceived(): void {
    const credit = this.creditSeq();
    const released = this.releasedSeq(credit);
    while (this.held.length > 0 && this.held[0]!.last <= released) this.heldBytes -= this.held.shift()!.bytes;
    const link = this.link;
    if (link?.open === true && this.peerHello !== undefined) link.send({ t: 'ack', seq: this.appliedSeq, received: credit, ...(released > credit ? { released } : {}) });
  }

  /**
   * What leaves the window without being durable yet: everything applied whose durable point
   * runs behind the next group. It is still in memory here (a failed point applies it again),
   * at most one group of it (ApplyOptions.after), and the active's journal keeps it until
   * `credit`.
   */
  private releasedSeq(credit: number): number {
    const head = this.nextUnapplied();
    return Math.max(credit, head !== undefined && !this.releasable(head) ? this.receivedDurable : this.takenSeq);
  }

  /** The first batch queued that is not applied yet (its durable point aside). */
  private nextUnapplied(): Pending | undefined {
    for (const b of this.queue) if (b.last > this.takenSeq) return b;
    return undefined;
  }

  /**
   * What leaves the window: everything applied and, past it, batches that wait for their point
   * (durable in the receive log, and not applicable before more arrives: counting them would
   * deadlock a point larger than the window). A batch that may be applied and is not yet keeps
   * its place, so a slow disk on this node holds the active back as without points.
   */
  private creditSeq(): number {
    const head = this.queue.find((b) => b.last > this.appliedSeq);
    return head !== undefined && this.releasable(head) ? this.appliedSeq : this.receivedDurable;
  }

  /** Standby protection's alarms changed: the active hears of it at once. */
  standbyChanged(): void {
    this.sendPeerState();
  }

  /**
   * `keepLink`: leave the connection open (a promotion still has to answer the takeover on it);
   * the receiver lets go of it either way.
   */
  async close(opts: { keepLink?: boolean } = {}): Promise<void> {
    this.closed = true;
    this.wake?.();
    this.retryTimer?.cancel();
    for (const w of this.appliedWaiters.splice(0)) w.resolve(false);
    if (this.link !== undefined) {
      const link = this.link;
      this.detach(opts.keepLink === true ? 'this node is taking over' : 'agent stopping');
      if (opts.keepLink !== true) link.close('normal', 'agent stopping');
    }
    await this.appendChain;
    await this.applying;
  }

  // ------------------------------------------------------------------ session

  private detach(reason: string): void {
    const peer = this.link?.peer;
    for (const d of this.detachLink.splice(0)) d();
    this.link = undefined;
    this.peerHello = undefined;
    if (peer !== undefined) this.log.info({ peer, reason }, 'replication: active disconnected');
  }

  private protocolError(reason: string, code: ErrorCode = 'TANDEM_ERR_PROTOCOL', details?: Record<string, unknown>): TandemError {
    return new TandemError({
      code,
      op: `receive from ${this.link?.peer ?? 'peer'}`,
      reason,
      hint: code === 'TANDEM_ERR_PATH_OUTSIDE_ROOT' ? 'the active sent a path outside the protected roots; nothing of that batch was written' : 'see docs/errors.md',
      ...(details === undefined ? {} : { details }),
    });
  }

  /** Refuses what the active sent: logs, raises an alarm, tells the peer why and closes. */
  private refuse(err: TandemError): void {
    this.log.error({ peer: this.link?.peer, err, code: err.code }, `replication: ${err.message}`);
    this.receiveAlarm = { code: err.code, message: err.message, hint: err.hint, since: this.opts.clock.now(), details: err.details };
    const link = this.link;
    this.detach(err.message);
    link?.close(err.code, err.message);
  }

  /**
   * While connected, note how far behind the active this node is in what it *holds* (received
   * and durable: a promotion applies it first). That is what a failover now would lose.
   */
  private noteContact(): void {
    const now = this.opts.clock.now();
    if (this.receivedSeq >= this.peerHeadSeq) this.behindSince = undefined;
    else this.behindSince ??= now;
    this.lastContactLagMs = this.behindSince === undefined ? 0 : now - this.behindSince;
    // With consistency points, what a failover now would lose is the age of the newest point held.
    const p = this.points.heldAt(this.receivedDurable);
    this.rpoAtContactMs = p === undefined ? undefined : Math.max(0, now - p.at);
  }

  private onMessage(m: Message): void {
    switch (m.t) {
      case 'batch':
        return this.onBatch(m);
      case 'peer-state':
        if (m.headSeq !== undefined) this.peerHeadSeq = Math.max(this.peerHeadSeq, m.headSeq);
        if (m.point !== undefined) this.onPointClaim(m.point);
        this.peerCatchUp = m.catchUp === undefined ? undefined : { bytesLeft: m.catchUp.bytesLeft, pathsLeft: m.catchUp.pathsLeft };
        this.peerPaused = m.state === 'paused';
        this.noteContact();
        return;
      case 'manifest-request':
        this.requestManifest(m.id);
        return;
      case 'split-brain': {
        // The active holds replication: both changed since they split. Nothing arrives and
        // nothing here is overwritten until tandem resolve (or a policy) chooses.
        const message = `split brain: both nodes changed data since sequence ${m.commonSeq} of generation ${m.generation} (${m.activeChanges} records on ${this.link?.peer ?? 'the active'}, ${m.passiveChanges} here); replication holds until tandem resolve --keep <node>`;
        this.receiveAlarm = { code: 'TANDEM_ERR_SPLIT_BRAIN', message, hint: 'tandem resolve --keep NODE -c CONFIG; see docs/failover.md, "Split brain"', since: this.opts.clock.now(), details: { ...m } };
        this.log.error({ code: 'TANDEM_ERR_SPLIT_BRAIN', peer: this.link?.peer, generation: m.generation, commonSeq: m.commonSeq, activeChanges: m.activeChanges, passiveChanges: m.passiveChanges }, `replication: ${message}`);
        this.sendPeerState();
        return;
      }
      case 'verify-list':
      case 'verify-entry': {
        const link = this.link;
        if (this.opts.verify === undefined) {
          link?.send({ t: 'verify-reply', req: m.req, atSeq: this.appliedSeq, error: 'this agent does not answer verify questions' });
          return;
        }
        if (this.verifyAnswers >= MAX_VERIFY_ANSWERS) {
          link?.send({ t: 'verify-reply', req: m.req, atSeq: this.appliedSeq, error: `busy: ${MAX_VERIFY_ANSWERS} questions are being answered already` });
          return;
        }
        this.verifyAnswers += 1;
        void this.opts.verify
          .answer(m, (reply) => {
            if (link?.open === true && this.link === link) link.send(reply);
          })
          .finally(() => (this.verifyAnswers -= 1));
        return;
      }
      case 'error':
        return;
      default:
        return this.refuse(this.protocolError(`unexpected ${m.t} message from an active`));
    }
  }

  private onHello(h: HelloMessage): void {
    this.peerHello = h;
    this.peerHeadSeq = h.headSeq;
    this.peerCatchUp = undefined;
    this.peerPaused = false;
    this.receiveAlarm = undefined;
    // The active's generation forked from this node's exactly where this node stands (see
    // decideStart): this state belongs to both, and from now on this node follows the new one.
    // Persisted before any batch of it is appended (the append chain keeps the order).
    const s = this.opts.nodeState.get();
    const parent = h.history?.[0];
    if (parent !== undefined && parent.generation === s.generation && parent.forkSeq === this.receivedSeq && s.syncId === '') {
      this.appendChain = this.appendChain
        .then(() => this.opts.nodeState.update({ generation: h.generation, history: h.history ?? [] }))
        .then(
          () => this.log.info({ generation: h.generation, parent: parent.generation, forkSeq: parent.forkSeq }, 'replication: following the new generation from where it forked'),
          (err: unknown) => this.log.warn({ err }, 'replication: cannot persist the new generation; the next connection decides again'),
        );
      this.appendGate = this.appendChain;
    }
    this.log.info({ peer: h.node, peerHeadSeq: h.headSeq, receivedSeq: this.receivedSeq, appliedSeq: this.appliedSeq }, 'replication: connected to the active');
  }

  private onBatch(m: BatchMessage): void {
    if (this.peerHello === undefined) return this.refuse(this.protocolError('batch before hello'));
    // The active sends only while what this node holds unacknowledged is inside the window it
    // was told (plus what it held at the hello): anything more is not a Tandem active.
    const w = this.opts.window;
    if (this.held.length >= w.batches || this.heldBytes >= w.bytes) {
      return this.refuse(
        this.protocolError(
          `batch ${m.first}-${m.last} arrived while this node holds ${this.held.length} unacknowledged batches (${this.heldBytes} bytes); its window is ${w.batches} batches, ${w.bytes} bytes`,
          'TANDEM_ERR_WINDOW_EXCEEDED',
          { held: this.held.length, heldBytes: this.heldBytes, windowBatches: w.batches, windowBytes: w.bytes },
        ),
      );
    }
    const checked = this.checkBatch(m);
    if (checked instanceof TandemError) return this.refuse(checked);
    const { bytes, commit } = checked;
    const inflates = this.checkBlocks(m, checked.compressed);
    this.hold(m.last, m.frames.byteLength);
    // Data again: the split brain was resolved on the active's side.
    if (this.receiveAlarm?.code === 'TANDEM_ERR_SPLIT_BRAIN') this.receiveAlarm = undefined;
    this.receivedSeq = m.last;
    this.peerHeadSeq = Math.max(this.peerHeadSeq, m.last);
    this.noteContact();
    const link = this.link;
    if (this.direct && commit.point === undefined) {
      // Applied from memory, in arrival order after what is being persisted before it; it counts
      // as held (the window) until it is applied, and nothing of it is acknowledged before.
      this.directThrough = m.last;
      const b: Pending = { first: m.first, last: m.last, ts: commit.ts, generation: commit.generation, point: undefined, frames: m.frames, bytes, kept: 0, size: m.frames.byteLength };
      const failures = this.persistFailures;
      this.appendChain = this.appendChain.then(async () => {
        // A batch before it failed to persist: this node no longer counts either as received
        // (the connection was refused), and the active sends both again, in order.
        if (this.persistFailures !== failures) return;
        try {
          await inflates;
        } catch (err) {
          return this.dropFrom(m, link, err as TandemError);
        }
        if (this.persistFailures !== failures) return;
        this.opts.receiveLog.skip(m.last);
        this.keepRecords(b, checked.records);
        this.queue.push(b);
        this.kick();
      });
      return;
    }
    // A batch in the receive log is redone after a restart from the last applied mark: none
    // held in memory only may come before it there, or the redo would skip those.
    const memoryBefore = this.directThrough;
    // Appends reach the log in the order batches arrived (the receive log keeps the order of its
    // calls, and this gate lets them through in arrival order), each as soon as it arrives: the
    // receive log makes the ones that arrived during an fsync durable together with the next.
    // Each is handled (queued or refused) in the same order once durable. A batch is appended
    // only once its blocks inflated (checkBlocks), and after the batch before it was.
    const issued = this.appendGate.then(async () => {
      await inflates;
      if (memoryBefore > this.appliedSeq && !(await this.appliedThrough(memoryBefore))) throw new Error('the receiver closed');
      const durable = this.opts.receiveLog.appendBatch(m.frames, commit);
      durable.catch(noop); // observed in turn below
      return { durable };
    });
    issued.catch(noop);
    this.appendGate = issued.then(noop, noop);
    this.appendChain = this.appendChain.then(async () => {
      try {
        await (await issued).durable;
      } catch (err) {
        // Not persisted, so not acknowledged: the active sends it again after the reconnect.
        const undecodable = err instanceof TandemError && err.code === 'TANDEM_ERR_BLOCK_UNDECODABLE';
        return this.dropFrom(m, link, undecodable ? err : TandemError.wrap(err, { code: 'TANDEM_ERR_APPLY_FAILED', op: `persist batch ${m.first}-${m.last} in the receive log`, hint: 'free space in the state directory; replication resumes by itself' }));
      }
      const b: Pending = { first: m.first, last: m.last, ts: commit.ts, generation: commit.generation, point: commit.point, frames: m.frames, bytes, kept: 0, size: m.frames.byteLength };
      this.queue.push(b);
      this.receivedDurable = Math.max(this.receivedDurable, m.last);
      this.notePointOf(m.last, commit.point);
      // A batch waiting for its point keeps its frames in memory up to a bound; beyond, it is
      // read back from the receive log when the point closes.
      if (!this.releasable(b)) {
        if (this.stagedKept + m.frames.byteLength > STAGED_MEMORY_BYTES) b.frames = undefined;
        else b.kept = m.frames.byteLength;
        this.stagedKept += b.kept;
      }
      if (b.frames !== undefined) this.keepRecords(b, checked.records);
      this.ackReceived();
      this.kick();
    });
  }

  /**
   * A batch that arrived is neither persisted nor applied, nor are the ones after it on this
   * connection: it no longer counts as received, and the connection is refused with `err` (once,
   * for the first of them), so that the active sends them again after the reconnect.
   */
  private dropFrom(m: BatchMessage, link: PeerLink | undefined, err: TandemError): void {
    this.persistFailures += 1;
    this.receivedSeq = Math.min(this.receivedSeq, m.first - 1);
    // Batches held in memory after it are dropped with it: none to wait for.
    this.directThrough = Math.min(this.directThrough, m.first - 1);
    this.unhold(m.first);
    if (this.link === link) this.refuse(err);
  }

  /**
   * Resolves once every compressed block of `m` inflated to its stated length, whatever this
   * node's own channel.compression says, so that a bad block refuses the batch before a byte of
   * it is written; the applier inflates them again, in bounded runs. Inflated one at a time, each
   * dropped at once, in slices of the event loop, after the batch before it was checked: a fresh
   * passive inflating its first 8 MiB of text in one go held its loop ~140 ms, and the heartbeat
   * over a second on a busy machine. Rejects with TANDEM_ERR_BLOCK_UNDECODABLE for this batch
   * and every later one.
   */
  private checkBlocks(m: BatchMessage, compressed: DataRecord[]): Promise<void> {
    const peer = this.link?.peer ?? 'peer';
    const checked = this.blocksChecked.then(async () => {
      if (compressed.length === 0) return;
      const slice = new TimeSlice();
      try {
        for (const r of compressed) {
          if (r.op === 'write') decompressWrite(r);
          await slice.breathe();
        }
      } catch (err) {
        const t = err as TandemError;
        throw new TandemError({ code: t.code, op: `receive from ${peer}`, reason: `batch ${m.first}-${m.last}: ${t.message}`, hint: t.hint, details: t.details });
      }
    });
    checked.catch(noop); // observed by the batch's append, and by the next batch's check
    this.blocksChecked = checked;
    return checked;
  }

  /**
   * Everything about a batch that can be checked before a byte of it is written, but whether its
   * compressed blocks inflate (checkBlocks: `compressed` are those). The decoded records are
   * returned too: the batch keeps them while the queue keeps few (DECODED_KEEP_RECORDS); the
   * queue always keeps the frames, which cost what arrived.
   */
  private checkBatch(m: BatchMessage): { bytes: number; commit: CommitEntry; compressed: DataRecord[]; records: DataRecord[] } | TandemError {
    const count = countFrames(m.frames, MAX_BATCH_RECORDS + 1);
    if (count > MAX_BATCH_RECORDS + 1) {
      return this.protocolError(`batch ${m.first}-${m.last} holds more than ${MAX_BATCH_RECORDS} records`, 'TANDEM_ERR_BATCH_TOO_LARGE', { maxRecords: MAX_BATCH_RECORDS });
    }
    const { frames, stop } = parseFrames(m.frames);
    if (stop.kind !== 'end') {
      if (stop.kind === 'checksum') return this.protocolError(`batch ${m.first}-${m.last}: record at byte ${stop.offset} fails its checksum`, 'TANDEM_ERR_CHECKSUM');
      if (stop.kind === 'malformed' && / path | to /.test(` ${stop.reason}`)) {
        return this.protocolError(`batch ${m.first}-${m.last}: ${stop.reason}`, 'TANDEM_ERR_PATH_OUTSIDE_ROOT', { reason: stop.reason });
      }
      return this.protocolError(`batch ${m.first}-${m.last}: ${stop.kind === 'malformed' ? stop.reason : 'truncated frames'}`, 'TANDEM_ERR_FRAME_MALFORMED');
    }
    const last = frames[frames.length - 1]?.entry;
    if (last?.op !== 'commit' || last.first !== m.first || last.last !== m.last) return this.protocolError(`batch ${m.first}-${m.last} does not end with its commit`);
    const records: DataRecord[] = [];
    const blockSize = this.opts.blockSize;
    let bytes = 0;
    for (let i = 0; i < frames.length - 1; i++) {
      const e = frames[i]!.entry;
      if (e.op === 'commit' || e.op === 'applied') return this.protocolError(`batch ${m.first}-${m.last}: ${e.op} entry inside a batch`);
      if (e.seq !== m.first + i) return this.protocolError(`batch ${m.first}-${m.last}: record ${i} has seq ${e.seq}, expected ${m.first + i}`);
      if ('root' in e && !this.rootNames.has(e.root)) {
        return this.protocolError(`batch ${m.first}-${m.last}: record ${e.seq} names root "${e.root}", which this node does not protect`, 'TANDEM_ERR_PATH_OUTSIDE_ROOT', { seq: e.seq, root: e.root });
      }
      if (e.op === 'write') {
        // Both nodes agreed on the block size in their hellos: a write holds one block at most,
        // compressed or not, whatever it claims it inflates to.
        const length = writeLength(e);
        if (length > blockSize || e.data.length > blockSize) {
          return this.protocolError(`batch ${m.first}-${m.last}: record ${e.seq} holds ${Math.max(length, e.data.length)} bytes, more than the block size ${blockSize}`, 'TANDEM_ERR_BLOCK_TOO_LARGE', { seq: e.seq, rawLength: length, blockSize });
        }
        bytes += length;
      }
      // A hole stands for one zero block too (capture sends one per block): a longer one could
      // make the passive write gigabytes of zeros for a few bytes on the wire.
      if (e.op === 'hole' && e.length > blockSize) {
        return this.protocolError(`batch ${m.first}-${m.last}: record ${e.seq} states a hole of ${e.length} bytes, more than the block size ${blockSize}`, 'TANDEM_ERR_BLOCK_TOO_LARGE', { seq: e.seq, length: e.length, blockSize });
      }
      records.push(e);
    }
    if (records.length !== m.last - m.first + 1) return this.protocolError(`batch ${m.first}-${m.last} holds ${records.length} records`);
    if (bytes > MAX_BATCH_RAW_BYTES) {
      return this.protocolError(`batch ${m.first}-${m.last}: its blocks inflate to ${bytes} bytes, more than a batch may hold (${MAX_BATCH_RAW_BYTES})`, 'TANDEM_ERR_BATCH_TOO_LARGE', { bytes, max: MAX_BATCH_RAW_BYTES });
    }
    if (m.first !== this.receivedSeq + 1) {
      // Only a synchronisation may jump forward: it replaces everything before it.
      const jump = m.first > this.receivedSeq + 1 && records[0]!.op === 'sync-begin';
      if (!jump) return this.protocolError(`batch starts at ${m.first}, expected ${this.receivedSeq + 1}`);
    }
    return { bytes, commit: last, compressed: records.filter((e) => e.op === 'write' && e.encoding !== undefined), records };
  }

  /** One more batch received and not yet acknowledged. */
  private hold(last: number, bytes: number): void {
    this.held.push({ last, bytes });
    this.heldBytes += bytes;
  }

  /** Forgets the held batches from `first` on (an append that failed: never acknowledged, sent again). */
  private unhold(first: number): void {
    while (this.held.length > 0 && this.held[this.held.length - 1]!.last >= first) this.heldBytes -= this.held.pop()!.bytes;
  }

  // ------------------------------------------------------------------ applying

  private kick(): void {
    // The loop waits for its point behind: it takes what came meanwhile at once.
    this.wake?.();
    if (this.applying !== undefined || this.closed || this.retryTimer !== undefined) return;
    this.applying = this.applyLoop().finally(() => {
      this.applying = undefined;
      // Again only for a batch that may be applied: one waiting for its point would spin here.
      const next = this.nextUnapplied();
      if (next !== undefined && this.releasable(next) && this.alarm === undefined) this.kick();
    });
  }

  /**
   * Applies groups while there are any that may be applied, then tells whoever waits for that
   * (whenDrained). `looping` is cleared here, as the loop ends, not when `applying` settles a few
   * microtasks later: a whenDrained in between once waited for a loop that had already ended,
   * and the manifest of a new synchronisation was never sent (seen with one more await here).
   */
  private async applyLoop(): Promise<void> {
    this.looping = true;
    try {
      await this.applyGroups();
    } finally {
      this.looping = false;
      const next = this.nextUnapplied();
      if (next === undefined || !this.releasable(next)) for (const w of this.drainWaiters.splice(0)) w();
    }
  }

  private async applyGroups(): Promise<void> {
    for (;;) {
      if (!(await this.applyReady())) return;
      // Nothing more to apply now: the loop ends once the point running behind reported, or
      // goes on at once with batches that arrive meanwhile (the point still runs behind them).
      const behind = this.behind;
      if (behind === undefined) break;
      const more = this.closed ? undefined : new Promise<'more'>((resolve) => (this.wake = () => resolve('more')));
      const outcome = await Promise.race([behind.then(() => 'done' as const, (err: unknown) => ({ err })), ...(more === undefined ? [] : [more])]);
      this.wake = undefined;
      if (outcome === 'more') continue;
      if (this.behind === behind) this.behind = undefined;
      if (outcome !== 'done') return this.applyFailed(outcome.err, `make batches up to ${this.takenSeq} durable`);
    }
    const next = this.nextUnapplied();
    if (next === undefined || !this.releasable(next)) {
      await this.opts.receiveLog.trim().catch((err: unknown) => this.log.warn({ err }, 'receive log: trim failed'));
      await this.opts.compactManifest?.().catch((err: unknown) => this.log.warn({ err }, 'manifest: compaction failed'));
      for (const w of this.drainWaiters.splice(0)) w();
    }
  }

  /**
   * Applies the groups that may be applied now, each one's durable point running behind the
   * next one's records (at most one point behind: ApplyOptions.after). False once it paused.
   */
  private async applyReady(): Promise<boolean> {
    for (let head = this.nextUnapplied(); head !== undefined && !this.closed && this.releasable(head); head = this.nextUnapplied()) {
      const group = this.nextGroup(head);
      const first = group[0]!.first;
      const last = group[group.length - 1]!.last;
      const what = group.length === 1 ? `batch ${first}-${last}` : `batches ${first}-${last} (${group.length})`;
      // As checkBatch decoded them, or decoded again from their frames (checked when they
      // arrived); binary fields are views into the frames.
      const records: DataRecord[] = [];
      for (const batch of group) {
        if (batch.records !== undefined) {
          for (const r of batch.records) if (r.seq > this.takenSeq) records.push(r);
          continue;
        }
        let frames = batch.frames;
        if (frames === undefined) {
          try {
            frames = await this.opts.receiveLog.readBatch(batch.first, batch.last);
            if (frames === undefined) throw new Error(`batch ${batch.first}-${batch.last} is no longer in the receive log`);
          } catch (err) {
            await this.applyFailed(err, `read back batch ${batch.first}-${batch.last}`);
            return false;
          }
        }
        for (const r of recordsOf(frames)) if (r.seq > this.takenSeq) records.push(r);
      }
      const markers = { records, next: 0 };
      // A paused apply retries one batch at a time, each made durable before the next.
      const overlap = this.alarm === undefined && this.opts.takeManifestDeltas !== undefined;
      try {
        for await (const run of inflatedRuns(records)) {
          // The manifest as this run left it, persisted once its point behind reported.
          let deltas: Buffer | undefined;
          const durable = (seq: number) => {
            const d = deltas;
            deltas = undefined;
            return this.durable(group[0]!.generation, markers, seq, d);
          };
          const applied = () => {
            deltas = this.opts.takeManifestDeltas!();
          };
          const behind = (await this.opts.applier.apply(run, durable, overlap ? { overlap, after: this.behind, applied } : {}))?.done;
          this.behind = behind;
          if (run.length > 0) this.takenSeq = Math.max(this.takenSeq, run[run.length - 1]!.seq);
          // Applied: the active may send the next group while this one's point runs.
          if (behind !== undefined) this.ackReceived();
        }
      } catch (err) {
        await this.applyFailed(err, `apply ${what}`);
        return false;
      }
      this.dropApplied();
      if (this.alarm !== undefined) {
        this.log.info({ seq: this.appliedSeq, code: this.alarm.code }, 'apply: recovered, replication resumed');
        this.alarm = undefined;
        this.retryDelay = this.opts.retryMinMs;
        this.sendPeerState();
      }
    }
    return true;
  }

  /**
   * Applying failed (or a point running behind did): once no point runs behind any more, what is
   * not durable is applied again from the last durable point, after a pause. What a rename made
   * durable before the failure is acknowledged.
   */
  private async applyFailed(err: unknown, op: string): Promise<void> {
    const behind = this.behind;
    this.behind = undefined;
    await behind?.catch(noop);
    this.takenSeq = this.appliedSeq;
    this.dropApplied();
    this.pause(TandemError.wrap(err, { code: 'TANDEM_ERR_APPLY_FAILED', op }));
  }

  /**
   * The batches to apply together: from the head of the queue, consecutive batches that may be
   * applied now (a batch waiting for its point ends the group, and so does another generation),
   * within the group's bounds. One at a time while applying is paused: a failing batch then
   * holds back no batch before it.
   */
  private nextGroup(head: Pending): Pending[] {
    const group = [head];
    if (this.alarm !== undefined) return group;
    const maxBatches = Math.max(1, Math.floor(this.opts.window.batches * GROUP_WINDOW_SHARE));
    const maxSize = this.opts.window.bytes * GROUP_WINDOW_SHARE;
    let records = head.last - Math.max(head.first, this.takenSeq + 1) + 1;
    let bytes = head.bytes;
    let size = head.size;
    for (let i = this.queue.indexOf(head) + 1; i < this.queue.length && group.length < maxBatches; i++) {
      const b = this.queue[i]!;
      if (!this.releasable(b) || b.generation !== head.generation) break;
      records += b.last - b.first + 1;
      bytes += b.bytes;
      size += b.size;
      if (records > GROUP_MAX_RECORDS || bytes > GROUP_MAX_DATA_BYTES || size > maxSize) break;
      group.push(b);
    }
    return group;
  }

  /** Batches whose every record is applied and durable leave the queue. */
  private dropApplied(): void {
    while (this.queue.length > 0 && this.queue[0]!.last <= this.appliedSeq) {
      const b = this.queue.shift()!;
      this.stagedKept -= b.kept;
      b.frames = undefined;
      if (b.records !== undefined) this.keptRecords -= b.records.length;
      b.records = undefined;
    }
  }

  /** `b` (queued now, its frames in memory) keeps the records checkBatch decoded, within DECODED_KEEP_RECORDS. */
  private keepRecords(b: Pending, records: DataRecord[]): void {
    if (this.keptRecords + records.length > DECODED_KEEP_RECORDS) return;
    b.records = records;
    this.keptRecords += records.length;
  }

  /**
   * Records up to `seq` are applied and durable: remember it, then (only then) acknowledge.
   * `markers` are the records being applied (of one or several batches of `generation`), with
   * the index of the first not yet reported durable: each durable point looks at the records
   * since the last one only.
   */
  private async durable(generation: string, markers: { records: DataRecord[]; next: number }, seq: number, deltas?: Buffer): Promise<void> {
    await this.opts.flushManifest(deltas);
    // Sync markers change what the tree is; persist that before the applied mark passes them,
    // or a crash in between would forget that the tree is mid-synchronisation.
    const { records } = markers;
    for (; markers.next < records.length && records[markers.next]!.seq <= seq; markers.next++) {
      const r = records[markers.next]!;
      if (r.seq <= this.appliedSeq) continue;
      if (r.op === 'sync-begin') {
        this.syncBytesTotal = r.bytesTotal;
        this.syncBytesDone = 0;
        this.syncStartedAt = this.opts.clock.now();
        // From here this tree becomes a state of the active's line: take its history, and any
        // changes of its own this node agreed to discard are being overwritten.
        const history = this.peerHello?.generation === generation ? { history: this.peerHello.history ?? [] } : {};
        await this.opts.nodeState.update({ syncId: r.id, generation, syncBytesTotal: r.bytesTotal, discard: false, ...history });
        this.log.info({ sync: r.id, bytesTotal: r.bytesTotal, generation }, 'sync: started by the active');
      } else if (r.op === 'sync-end') {
        await this.opts.nodeState.update({ syncId: '', syncBytesTotal: 0 });
        this.log.info({ sync: r.id, bytes: this.syncBytesDone }, 'sync: complete, this node holds a real state of the active');
      } else if (r.op === 'write' && this.opts.nodeState.get().syncId !== '') {
        this.syncBytesDone += payloadBytes(r);
      }
    }
    await this.opts.receiveLog.markApplied(seq);
    this.appliedSeq = seq;
    this.takenSeq = Math.max(this.takenSeq, seq);
    this.dropApplied();
    if (this.appliedWaiters.length > 0) {
      this.appliedWaiters = this.appliedWaiters.filter((w) => {
        if (w.seq > seq) return true;
        w.resolve(true);
        return false;
      });
    }
    // Acknowledged batches leave the window now, before the ack reaches the active: what this
    // node counts never exceeds what the active counts.
    this.receivedDurable = Math.max(this.receivedDurable, seq);
    this.ackReceived();
  }

  private pause(err: TandemError): void {
    const first = this.alarm === undefined || this.alarm.code !== err.code || this.alarm.message !== err.message;
    if (first) {
      this.log.error({ err, code: err.code, seq: this.appliedSeq + 1, retryMs: this.retryDelay }, `apply: ${err.message}; replication paused, retrying`);
      this.alarm = { code: err.code, message: err.message, hint: err.hint, since: this.opts.clock.now(), details: err.details };
      this.sendPeerState();
    }
    this.retryTimer = this.opts.clock.setTimeout(() => {
      this.retryTimer = undefined;
      this.kick();
    }, this.retryDelay);
    this.retryDelay = Math.min(this.opts.retryMaxMs, this.retryDelay * 2);
  }

  private sendPeerState(): void {
    const link = this.link;
    if (link?.open !== true) return;
    // One alarm travels: a paused apply first, else standby protection's ('modified' tells the
    // active that this copy is not its state, see Sender.status).
    const alarm = this.alarm ?? this.opts.standby?.alarms()[0];
    const syncing = this.opts.nodeState.get().syncId !== '';
    link.send({
      t: 'peer-state',
      state: this.alarm !== undefined ? 'paused' : syncing ? 'syncing' : this.opts.standby?.modified() === true ? 'modified' : 'passive',
      alarm: alarm === undefined ? undefined : { code: alarm.code, message: alarm.message, ...(alarm.hint === undefined ? {} : { hint: alarm.hint }) },
    });
  }

  // ------------------------------------------------------------------ synchronisation

  /** Resolves once every batch that may be applied is (batches waiting for their point stay). */
  private whenDrained(): Promise<void> {
    if ((this.queue.length === 0 || !this.releasable(this.queue[0]!)) && !this.looping) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Answers manifest requests one at a time; of those asked meanwhile, only the newest. */
  private requestManifest(id: string): void {
    // A synchronisation replaces what this node holds: what waits for a point is applied first,
    // so that the manifest sent describes everything held (the tree is no state of the active
    // until the synchronisation ends anyway).
    this.releaseThrough = Math.max(this.releaseThrough, this.receivedSeq);
    this.kick();
    if (this.manifestAnswer !== undefined) {
      this.manifestNext = id;
      return;
    }
    this.manifestAnswer = (async () => {
      let next: string | undefined = id;
      while (next !== undefined) {
        const current = next;
        this.manifestNext = undefined;
        await this.sendManifest(current);
        next = this.manifestNext;
      }
    })().finally(() => (this.manifestAnswer = undefined));
  }

  /** Answers a manifest request once every batch held is applied, with the manifest made true. */
  private async sendManifest(id: string): Promise<void> {
    const link = this.link;
    try {
      await this.appendChain;
      await this.whenDrained();
      if (this.link !== link || link === undefined) return;
      const t0 = this.opts.clock.monotonic();
      const r = await refreshManifest(this.opts.roots, this.opts.manifest, this.opts.blockSize, this.opts.clock, this.users);
      await this.opts.flushManifest();
      let count = 0;
      for (const entries of manifestChunks(this.opts.manifest, this.opts.owners ?? 'numeric', this.users)) {
        if (this.link !== link || !link.open) return;
        link.send({ t: 'manifest-chunk', id, entries });
        count += entries.length;
      }
      link.send({ t: 'manifest-end', id, count, roots: this.opts.roots.map((x) => x.name) });
      this.log.info({ sync: id, entries: count, rehashed: r.rehashed, bytesHashed: r.bytesHashed, durationMs: Math.round(this.opts.clock.monotonic() - t0) }, 'sync: manifest sent to the active');
    } catch (err) {
      this.refuse(TandemError.wrap(err, { code: 'TANDEM_ERR_STATE_IO', op: 'build the manifest for synchronisation' }));
    }
  }
}

/**
 * The data records of a batch's frames. Every caller holds frames already checked whole: on
 * arrival (checkBatch), or when the receive log read them back (its batchProblem), so they are
 * not hashed again (a 1 GiB file: ~0.3 s of the passive's CPU).
 */
function recordsOf(frames: Uint8Array): DataRecord[] {
  return decodeAcceptedFrames(frames).slice(0, -1) as DataRecord[];
}

/**
 * `records` cut into runs to apply one after the other, each with its compressed blocks
 * inflated, and a run closed once it inflated APPLY_INFLATED_BYTES: inflated data is held for
 * one run at a time, never for a whole batch. Inflated in slices of the event loop (TimeSlice).
 * Rejects with TANDEM_ERR_BLOCK_UNDECODABLE.
 */
export async function* inflatedRuns(records: DataRecord[]): AsyncGenerator<DataRecord[]> {
  const slice = new TimeSlice();
  let run: DataRecord[] = [];
  let inflated = 0;
  for (const r of records) {
    if (r.op === 'write' && r.encoding !== undefined) {
      const raw = decompressWrite(r);
      run.push(raw);
      inflated += raw.op === 'write' ? raw.data.length : 0;
      await slice.breathe();
    } else {
      run.push(r);
    }
    if (inflated >= APPLY_INFLATED_BYTES) {
      yield run;
      slice.restart();
      run = [];
      inflated = 0;
    }
  }
  if (run.length > 0) yield run;
}

function batchDataBytes(records: DataRecord[]): number {
  let n = 0;
  for (const r of records) n += payloadBytes(r);
  return n;
}

function noop(): void {}
