// The active's side of replication: one session per connected passive. It decides where the
// passive resumes, streams committed journal batches inside a window of unacknowledged ones,
// trims the journal as acknowledgements come, and runs an initial synchronisation when the
// passive cannot resume. It never sends a batch that is not durable in the journal, and never
// lets the socket buffer more than a few batches (the heartbeat must get through).
import crypto from 'node:crypto';
import type { Clock, TimerHandle } from '../../shared/clock.ts';
import { RateLimit } from './rate-limit.ts';
import { SocketBudget } from './socket-budget.ts';
import type { ProtectedRoot } from '../../shared/config/index.ts';
import { TandemError } from '../../shared/errors.ts';
import { REF_LOST } from '../journal/index.ts';
import type { Logger } from '../../shared/log.ts';
import type { HelloMessage, Message, VerifyReplyMessage } from '../../shared/protocol/index.ts';
import type { Capture } from '../capture/index.ts';
import { Manifest } from '../manifest/index.ts';
import { SyncRunner, entryFromWire, type SyncProgress } from '../sync/index.ts';
import { listenTo, type LinkCloseInfo, type PeerLink } from './peer-link.ts';
import { catchUpLeft, nextCatchUp, type CatchUp, type CatchUpObservation, type CatchUpState } from './catch-up.ts';
import { decideStart, type StartDecision } from './start-decision.ts';
import { autoKeep, type LineageEntry, type Relation, type SplitBrainPolicy } from './lineage.ts';
import type { PointInfo, PointLedger } from '../points/index.ts';

export interface SenderBatch {
  first: number;
  last: number;
  /** Wall-clock ms the batch was journaled. */
  ts: number;
  /** Bytes on the wire (frames). */
  bytes: number;
}

/** What the sender needs from the journal. */
export interface SenderJournal {
  readonly headSeq: number;
  readonly firstSeq: number;
  batchStartingAt(seq: number): SenderBatch | undefined;
  readBatch(batch: SenderBatch): Promise<Buffer>;
  onBatch(listener: (batch: SenderBatch) => void): () => void;
  trim(ackedSeq: number): Promise<void>;
  oldestBatchAfter(seq: number): SenderBatch | undefined;
  bytesAfter(seq: number): number;
  /** The passive acknowledged every record up to `seq`: what was sent of them is off the socket. */
  acknowledged?(seq: number): void;
  /** Whether large files' blocks may be journaled as references: only while a passive takes them now. */
  setRefsWanted?(on: boolean): void;
}

export interface SenderOptions {
  pair: string;
  self: string;
  generation: string;
  /** The generations this one continues (agent/state NodeState.history). */
  history: readonly LineageEntry[];
  /** The last epoch in which this node was active: split-brain policies compare it. */
  activeEpoch: number;
  /** replication.afterSplitBrain: the automatic policies, in order. */
  splitBrainPolicies: readonly SplitBrainPolicy[];
  /** A split brain a policy resolved for the passive's side: this node must hand over, undrained. */
  onKeepPeer?: (reason: string) => void;
  blockSize: number;
  roots: ProtectedRoot[];
  journal: SenderJournal;
  capture: Capture;
  manifest: Manifest;
  windowBatches: number;
  windowBytes: number;
  batchBytes: number;
  /** channel.bandwidthLimit in bytes per second; 0 or absent: no limit. */
  bandwidthLimit?: number;
  /** Highest sequence the journal may be trimmed to, whatever the passive acknowledged. */
  trimLimit?: () => number;
  /** Consistency points capture closes (agent/points): told to the passive in peer-state. */
  points?: PointLedger | undefined;
  log: Logger;
  clock: Clock;
}

export interface SenderStatus {
  connected: boolean;
  peer: string | undefined;
  /** Last sequence the passive acknowledged as applied and durable. */
  ackedSeq: number;
  /** Last sequence the passive acknowledged as held durably (received; applied later or at a promotion). */
  receivedSeq: number;
  /** The newest consistency point the passive holds (snapshot mode; undefined otherwise or none yet). */
  point: PointInfo | undefined;
  headSeq: number;
  lagMs: number;
  queueBytes: number;
  inSync: boolean;
  /** A synchronisation is prepared or runs: nothing of the journal before it reaches the passive. */
  syncing: boolean;
  /** Replication paused by an operator (tandem pause): nothing is sent until resumed. */
  paused: boolean;
  sync: (SyncProgress & { etaMs: number | undefined }) | undefined;
  /** Set while a split brain holds replication: where the lines agreed and what each changed. */
  splitBrain: SplitBrainState | undefined;
  /** How the current passive's session began (from both generation histories), as one line. */
  start: string | undefined;
  /** While the passive catches up (resumed behind, or capture held back by a full journal): what is left. */
  catchUp: CatchUp | undefined;
  peerState: { state: string; alarm?: { code: string; message: string; hint?: string } | undefined } | undefined;
}

export interface SplitBrainState {
  peer: string;
  since: number;
  generation: string;
  commonSeq: number;
  activeChanges: number;
  passiveChanges: number;
  /** A policy that chose the passive's side: the handover is under way. */
  resolving?: string | undefined;
}

const PEER_STATE_INTERVAL_MS = 1000;
const SYNC_PROGRESS_LOG_MS = 5000;
/**
 * Bytes a synchronisation may journal ahead of the passive's acknowledgements: thousands of
 * small files or a few large blocks' worth of work queued for the passive, without the journal's
 * send cache and arenas holding the whole tree while the passive applies it (agent/sync).
 * 16 MiB, not 32: the passive acknowledges as it applies (below protocol 3, as its receive log
 * holds them), so 16 MiB still keeps it busy (10,000 small files; 160 ms of large ones), and what
 * runs ahead pins whole 16 MiB arenas (measured: 64 → 48 MiB of arenas on the active during bench
 * (e); a synchronisation of 32 files of 32 MiB was faster too, 11.7-11.8 s against 13.2-13.8 s).
 */
const SYNC_BACKLOG_BYTES = 16 * 1024 * 1024;

interface InFlight {
  first: number;
  last: number;
  bytes: number;
}

export class Sender {
  private readonly log: Logger;
  private link: PeerLink | undefined;
  private tickTimer: TimerHandle | undefined;
  private streaming = false;
  private nextSeq = 0;
  private ackedSeq = 0;
  /** What the passive holds durably (its receive log); the journal trim follows it. */
  private receivedSeq = 0;
  /** What left the passive's window (applied, maybe not yet durable, or held durably): the window follows it. */
  private releasedSeq = 0;
  private inflight: InFlight[] = [];
  private inflightBytes = 0;
  /** The window of this connection: the smaller of this node's and the one the passive told. */
  private window = { batches: 0, bytes: 0 };
  /**
   * What the passive held unacknowledged when it connected (its hello): it counts against the
   * window until the passive acknowledges everything up to `last`, so that the passive never
   * holds more than its window, reconnects included.
   */
  private backlog: { last: number; batches: number; bytes: number } | undefined;
  private pumping = false;
  /** pump() was called while the loop ran: run it again when it ends. */
  private pumpAgain = false;
  private sync: SyncRunner | undefined;
  private splitBrain: SplitBrainState | undefined;
  private startLine: string | undefined;
  private syncEndSeq: number | undefined;
  /** While a synchronisation prepares, nothing journaled can reach the passive: trim freely. */
  private discarding = false;
  private trimChain: Promise<void> = Promise.resolve();
  private peerState: SenderStatus['peerState'];
  private lastSyncLog = 0;
  private readonly detachJournal: () => void;
  private readonly detachLink: (() => void)[] = [];
  private readonly rateLimit: RateLimit | undefined;
  /** How much bulk data may wait in the socket, after what the link drains (socket-budget.ts). */
  private readonly socketBudget = new SocketBudget();
  private rateTimer: TimerHandle | undefined;
  private catchUp: CatchUpState | undefined;
  private readonly verifyReplyListeners = new Set<(m: VerifyReplyMessage) => void>();
  private readonly detachListeners = new Set<() => void>();
  /** tandem pause: batches stay in the journal (capture goes on, up to journal.maxBytes). */
  private paused = false;

  constructor(private readonly opts: SenderOptions) {
    this.log = opts.log.child({ component: 'sender' });
    this.rateLimit = (opts.bandwidthLimit ?? 0) > 0 ? new RateLimit(opts.bandwidthLimit!, opts.clock) : undefined;
    this.detachJournal = opts.journal.onBatch((b) => {
      if (this.discarding) this.trim(b.last);
      this.pump();
    });
  }

  /**
   * Takes over a connection to the passive whose hellos were exchanged (a newer one replaces an
   * older one): decides where it resumes and starts streaming.
   */
  attach(link: PeerLink, peerHello: HelloMessage): void {
    if (this.link !== undefined) this.detach('replaced by a newer connection');
    this.link = link;
    this.socketBudget.reset();
    const onMessage = (m: Message) => this.onMessage(m);
    const onClose = (info: LinkCloseInfo) => {
      if (this.link === link) this.detach(`channel closed: ${info.code} ${info.reason}`);
    };
    this.detachLink.push(listenTo(link, onMessage, onClose));
    this.onHello(peerHello);
  }

  /** This side's part of the hello: where its journal stands. */
  helloFields(): Pick<HelloMessage, 'generation' | 'headSeq' | 'firstSeq' | 'appliedSeq' | 'syncId'> {
    const j = this.opts.journal;
    return { generation: this.opts.generation, headSeq: j.headSeq, firstSeq: j.firstSeq, appliedSeq: this.ackedSeq, syncId: this.sync?.progress.id ?? '' };
  }

  /**
   * The operator kept this node's side of a split brain (tandem resolve --keep <this node>):
   * the passive's changes since the split are overwritten by a synchronisation, which sends
   * exactly the paths and blocks that differ. False when no split brain holds replication.
   */
  resolveKeepSelf(): boolean {
    const sb = this.splitBrain;
    if (sb === undefined || this.link === undefined) return false;
    this.log.warn({ peer: sb.peer, passiveChanges: sb.passiveChanges, activeChanges: sb.activeChanges }, 'replication: split brain resolved by the operator, keeping this node; the passive\'s changes since the split are overwritten');
    this.splitBrain = undefined;
    this.startLine = `synchronise over the passive's changes since the split (tandem resolve kept this node)`;
    this.streaming = true;
    this.startTick();
    this.startSync();
    return true;
  }

  /**
   * tandem pause / resume. While paused nothing more is sent (what is in flight is still
   * acknowledged); the journal keeps growing up to journal.maxBytes, then capture waits, and the
   * passive catches up from the journal once resumed. Heartbeats and verify questions go on.
   */
  setPaused(paused: boolean): void {
    if (this.paused === paused) return;
    this.paused = paused;
    this.syncRefs();
    // The state tracker logs it as an event (replication paused/running); this line adds the sequences.
    this.log.debug({ paused, ackedSeq: this.ackedSeq, headSeq: this.opts.journal.headSeq }, paused ? 'replication: paused by an operator' : 'replication: resumed by an operator');
    // The passive hears it at once (its status shows it), not at the next tick.
    if (this.link?.open === true && this.streaming) this.sendPeerState(this.link);
    if (!paused) this.pump();
  }

  /**
   * Age (ms) of the oldest journaled batch not sent yet on this connection (held back by the
   * window or the socket budget); 0 when everything journaled was sent, or while not streaming.
   */
  unsentAgeMs(): number {
    const j = this.opts.journal;
    if (this.link === undefined || !this.streaming || this.nextSeq > j.headSeq) return 0;
    const oldest = j.oldestBatchAfter(this.nextSeq - 1);
    return oldest === undefined ? 0 : Math.max(0, this.opts.clock.now() - oldest.ts);
  }

  /**
   * Whether batches journaled wait that this sender could send now: streaming, not paused, with
   * room in the window and in the socket's budget. The send loop goes on while it holds; capture
   * gives the event loop up sooner while it does.
   */
  hasSendable(): boolean {
    const link = this.link;
    if (link === undefined || !link.open || !this.streaming || this.discarding || this.paused) return false;
    // Waiting for channel.bandwidthLimit's bucket: its timer pumps again.
    if (this.rateTimer !== undefined) return false;
    if (this.inflight.length + (this.backlog?.batches ?? 0) >= this.window.batches) return false;
    if (this.inflightBytes + (this.backlog?.bytes ?? 0) >= this.window.bytes) return false;
    // Beyond the socket's budget batches wait; the heartbeat does not, but it waits behind it.
    if (link.bufferedAmount >= this.socketBudget.bytes) return false;
    return this.nextSeq <= this.opts.journal.headSeq;
  }

  /** Last sequence the passive acknowledged as applied and durable. */
  get acked(): number {
    return this.ackedSeq;
  }

  /** Resolves once the passive acknowledged `seq` (a planned switchover drains up to it). */
  async waitAcked(seq: number, timeoutMs: number): Promise<boolean> {
    const deadline = this.opts.clock.monotonic() + timeoutMs;
    while (this.ackedSeq < seq) {
      if (this.opts.clock.monotonic() > deadline || this.link === undefined) return false;
      await this.opts.clock.sleep(10);
    }
    return true;
  }

  status(): SenderStatus {
    const j = this.opts.journal;
    const now = this.opts.clock.now();
    const oldest = j.oldestBatchAfter(this.ackedSeq);
    const connected = this.link !== undefined && this.streaming;
    let sync: SenderStatus['sync'];
    // Reported once planned: before the sync-begin record its total is not known yet.
    if (this.sync !== undefined && this.sync.progress.beginSeq > 0) {
      const p = this.sync.progress;
      const elapsed = Math.max(1, now - p.startedAt);
      const rate = p.bytesDone / elapsed;
      sync = { ...p, etaMs: rate > 0 ? Math.round((p.bytesTotal - p.bytesDone) / rate) : undefined };
    }
    return {
      connected,
      peer: this.link?.peer,
      ackedSeq: this.ackedSeq,
      receivedSeq: this.receivedSeq,
      point: this.opts.points?.heldAt(this.receivedSeq),
      headSeq: j.headSeq,
      lagMs: oldest === undefined ? 0 : Math.max(0, now - oldest.ts),
      queueBytes: j.bytesAfter(this.ackedSeq),
      // 'modified': the passive's copy was changed by someone else (agent/standby).
      inSync: connected && this.sync === undefined && !this.discarding && this.ackedSeq >= j.headSeq && this.peerState?.state !== 'modified',
      syncing: this.sync !== undefined || this.discarding || this.manifestCollect !== undefined,
      paused: this.paused,
      sync,
      splitBrain: this.splitBrain,
      start: this.startLine,
      catchUp: this.catchUp === undefined ? undefined : catchUpLeft(this.catchUpObservation()),
      peerState: this.peerState,
    };
  }

  /**
   * What `tandem verify` (agent/verify) needs of this session: questions go to the passive on
   * the replication connection, and only while it streams outside an initial synchronisation.
   */
  verifyPeer() {
    return {
      ready: () => this.link !== undefined && this.link.open && this.streaming && this.sync === undefined && !this.discarding,
      send: (m: Message): boolean => {
        const link = this.link;
        if (link === undefined || !link.open || !this.streaming) return false;
        link.send(m);
        return true;
      },
      onReply: (l: (m: VerifyReplyMessage) => void) => {
        this.verifyReplyListeners.add(l);
        return () => this.verifyReplyListeners.delete(l);
      },
      onDetach: (l: () => void) => {
        this.detachListeners.add(l);
        return () => this.detachListeners.delete(l);
      },
      waitAcked: (seq: number, timeoutMs: number) => this.waitAcked(seq, timeoutMs),
    };
  }

  async close(): Promise<void> {
    this.rateTimer?.cancel();
    this.rateTimer = undefined;
    this.detachJournal();
    if (this.link !== undefined) {
      const link = this.link;
      this.detach('agent stopping');
      link.close('normal', 'agent stopping');
    }
    this.sync?.cancel();
    await this.trimChain;
  }

  // ------------------------------------------------------------------ session

  private detach(reason: string): void {
    const hadPeer = this.link?.peer;
    for (const d of this.detachLink.splice(0)) d();
    this.link = undefined;
    this.streaming = false;
    this.inflight = [];
    this.inflightBytes = 0;
    this.backlog = undefined;
    this.tickTimer?.cancel();
    this.peerState = undefined;
    // Found again on the next connection, from both histories.
    this.splitBrain = undefined;
    this.startLine = undefined;
    this.catchUp = undefined;
    // A synchronisation still collecting the manifest dies with its connection; one that is
    // journaling goes on, and the passive resumes it from the journal when it is back.
    this.manifestCollect = undefined;
    this.discarding = false;
    this.syncRefs();
    if (hadPeer !== undefined) this.log.info({ peer: hadPeer, reason }, 'replication: passive disconnected');
    for (const l of this.detachListeners) l();
  }

  private fail(code: 'TANDEM_ERR_PROTOCOL' | 'TANDEM_ERR_PEER_UNEXPECTED', reason: string): void {
    const link = this.link;
    if (link === undefined) return;
    const err = new TandemError({ code, op: `replicate to ${link.peer}`, reason, hint: 'see docs/errors.md' });
    this.log.error({ peer: link.peer, err, code }, `replication: ${err.message}`);
    this.detach(reason);
    link.close(code, reason);
  }

  private onMessage(m: Message): void {
    switch (m.t) {
      case 'ack':
        return this.onAck(m.seq, m.received ?? m.seq, m.released ?? m.received ?? m.seq);
      case 'peer-state':
        this.peerState = { state: m.state, alarm: m.alarm };
        return;
      case 'manifest-chunk':
      case 'manifest-end':
        return this.onManifestMessage(m);
      case 'verify-reply':
        for (const l of this.verifyReplyListeners) l(m);
        return;
      case 'error':
        return; // logged by the channel; the close that follows detaches
      default:
        return this.fail('TANDEM_ERR_PROTOCOL', `unexpected ${m.t} message from a passive`);
    }
  }

  private onHello(h: HelloMessage): void {
    const j = this.opts.journal;
    this.window = {
      batches: Math.min(this.opts.windowBatches, h.window?.batches ?? this.opts.windowBatches),
      bytes: Math.min(this.opts.windowBytes, h.window?.bytes ?? this.opts.windowBytes),
    };
    this.backlog = h.held !== undefined && h.held.batches > 0 ? { last: h.headSeq, batches: h.held.batches, bytes: h.held.bytes } : undefined;
    const decision: StartDecision = decideStart({ generation: this.opts.generation, headSeq: j.headSeq, firstSeq: j.firstSeq, syncId: this.sync?.progress.id, history: this.opts.history }, h);
    this.startLine = describeStart(decision, h);
    if (decision.kind === 'split-brain') return this.onSplitBrain(h, decision.relation);
    this.log.info(
      { peer: h.node, peerHeadSeq: h.headSeq, peerAppliedSeq: h.appliedSeq, headSeq: j.headSeq, firstSeq: j.firstSeq, decision },
      decision.kind === 'resume'
        ? decision.fork === true
          ? 'replication: passive connected, resuming where this generation forked from its own'
          : 'replication: passive connected, resuming'
        : `replication: passive connected, synchronising (${decision.reason})`,
    );
    this.streaming = true;
    this.ackedSeq = Math.max(this.ackedSeq, Math.min(h.appliedSeq, j.headSeq));
    // What the passive holds durably may be trimmed; from protocol 3 it may hold a tail in memory
    // only (its headSeq), which a crash of it would forget: that stays in the journal.
    // (messageProblem refused a hello whose durableSeq is past its headSeq.)
    this.receivedSeq = Math.max(this.receivedSeq, this.ackedSeq, decision.kind === 'resume' ? Math.min(h.durableSeq ?? h.headSeq, j.headSeq) : 0);
    // A new connection: what the last one released but the passive never made durable is sent
    // again, and counts against the window anew (what it still holds came as `held`).
    this.releasedSeq = this.receivedSeq;
    // Before the first peer-state: the passive must hear at once that it is catching up.
    if (decision.kind === 'resume') {
      this.catchUp = nextCatchUp(undefined, this.catchUpObservation(), true);
      if (this.catchUp !== undefined) this.log.info({ peer: h.node, fromSeq: decision.fromSeq, headSeq: j.headSeq, bytesLeft: j.bytesAfter(this.ackedSeq) }, 'replication: passive catching up from the journal');
    }
    this.startTick();
    if (decision.kind === 'resume') {
      this.nextSeq = decision.fromSeq;
      this.pump();
    } else {
      this.startSync();
    }
  }

  /**
   * Both sides changed since they split. Nothing is sent (the passive's changes stay where they
   * are) until a policy or the operator says which side to keep; the channel stays up for the
   * heartbeats and the resolution.
   */
  private onSplitBrain(h: HelloMessage, r: Extract<Relation, { kind: 'related' }>): void {
    const facts = { activeChanges: r.activeChanges, passiveChanges: r.passiveChanges, activeEpoch: this.opts.activeEpoch, passiveActiveEpoch: h.activeEpoch ?? 0 };
    const auto = autoKeep(this.opts.splitBrainPolicies, facts);
    const fields = { peer: h.node, generation: r.generation, commonSeq: r.commonSeq, ...facts };
    if (auto?.keep === 'active') {
      this.log.warn({ ...fields, policy: auto.policy }, `replication: split brain resolved by policy ${auto.policy}: keeping this node, the passive's changes since the split are overwritten`);
      this.startLine = `synchronise over the passive's changes since the split (policy ${auto.policy} kept this node)`;
      this.streaming = true;
      this.startTick();
      this.startSync();
      return;
    }
    this.splitBrain = { peer: h.node, since: this.opts.clock.now(), generation: r.generation, commonSeq: r.commonSeq, activeChanges: r.activeChanges, passiveChanges: r.passiveChanges, resolving: auto?.policy };
    this.link?.send({ t: 'split-brain', generation: r.generation, commonSeq: r.commonSeq, activeChanges: r.activeChanges, passiveChanges: r.passiveChanges });
    if (auto !== undefined) {
      this.log.warn({ ...fields, policy: auto.policy }, `replication: split brain resolved by policy ${auto.policy}: keeping the passive's side; handing the role over without draining`);
      this.opts.onKeepPeer?.(`split brain resolved by policy ${auto.policy}: keeping ${h.node}`);
      return;
    }
    const err = new TandemError({
      code: 'TANDEM_ERR_SPLIT_BRAIN',
      op: `resume replication to ${h.node}`,
      reason: `both nodes changed data since they split at sequence ${r.commonSeq} of generation ${r.generation}: ${r.activeChanges} records here, ${r.passiveChanges} on ${h.node}`,
      hint: `nothing is sent until you choose: tandem resolve --keep <node> discards the other node's changes since the split`,
    });
    this.log.error({ ...fields, code: err.code, err }, `replication: ${err.message}`);
  }

  private startTick(): void {
    this.tickTimer?.cancel();
    const tick = () => {
      const link = this.link;
      if (link === undefined || !link.open) return;
      this.updateCatchUp();
      this.sendPeerState(link);
      this.logSyncProgress();
      this.tickTimer = this.opts.clock.setTimeout(tick, PEER_STATE_INTERVAL_MS);
    };
    tick();
  }

  // ------------------------------------------------------------------ streaming

  /**
   * Runs the send loop unless it runs already; a call meanwhile is remembered and honoured when
   * the loop ends. Dropping it lost a whole catch-up: a connection that replaced another while
   * the loop waited on a journal read found the loop busy, and the loop then saw its link gone
   * and returned. With capture waiting for journal space, no append came to pump again, no batch
   * went out, no acknowledgement came back to make room: the pair stalled for good.
   */
  private pump(): void {
    this.syncRefs();
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    if (!this.streaming || this.discarding) return;
    this.pumping = true;
    this.pumpAgain = false;
    void this.pumpLoop().finally(() => {
      this.pumping = false;
      if (this.pumpAgain) this.pump();
    });
  }

  /**
   * The journal keeps large files' blocks as references only while this passive takes them as
   * they come (streaming, not paused, not between a synchronisation's request and its start):
   * then they leave from the send cache, and capture waits for acknowledgements rather than
   * outrun it. Otherwise nothing would send them soon, and a file changed meanwhile would cost
   * a synchronisation.
   */
  private syncRefs(): void {
    this.opts.journal.setRefsWanted?.(this.link?.open === true && this.streaming && !this.discarding && !this.paused);
  }

  private async pumpLoop(): Promise<void> {
    const j = this.opts.journal;
    for (;;) {
      const link = this.link;
      if (link === undefined || !this.hasSendable()) return;
      const batch = j.batchStartingAt(this.nextSeq);
      if (batch !== undefined && this.rateLimit !== undefined) {
        // channel.bandwidthLimit: wait for the bucket, then pump again.
        const waitMs = this.rateLimit.delayFor(batch.bytes);
        if (waitMs > 0) {
          this.rateTimer ??= this.opts.clock.setTimeout(() => {
            this.rateTimer = undefined;
            this.pump();
          }, waitMs);
          return;
        }
      }
      if (batch === undefined) {
        // The journal no longer holds where this passive stands (trimmed or skipped): only a
        // synchronisation can bring it back.
        this.log.warn({ nextSeq: this.nextSeq, firstSeq: j.firstSeq, headSeq: j.headSeq }, 'replication: passive is behind the journal, synchronising');
        this.startSync();
        return;
      }
      let frames: Buffer;
      try {
        frames = await j.readBatch(batch);
      } catch (err) {
        if (!(err instanceof TandemError) || err.code !== REF_LOST) throw err;
        // A large file's blocks kept as references were not in memory any more, and the file
        // no longer holds them: this batch can never be sent. What differs now is sent instead.
        if (this.link !== link || !link.open) return;
        this.log.warn({ err, first: batch.first, last: batch.last }, 'replication: a journaled block is no longer in its file, synchronising');
        this.startLine = 'synchronise: a journaled block is no longer in its file';
        this.startSync();
        return;
      }
      if (this.link !== link || !link.open) return;
      this.inflight.push({ first: batch.first, last: batch.last, bytes: batch.bytes });
      this.inflightBytes += batch.bytes;
      this.nextSeq = batch.last + 1;
      link.send({ t: 'batch', first: batch.first, last: batch.last, frames }, () => {
        // Written to the socket: it drained that much meanwhile, and room may have opened.
        this.socketBudget.written(frames.byteLength, this.opts.clock.monotonic(), link.bufferedAmount);
        if (link.bufferedAmount < this.socketBudget.bytes) this.pump();
      });
    }
  }

  /**
   * `seq`: applied and durable on the passive; `received`: held durably in its receive log (a
   * passive that takes consistency points applies a point only once it holds all of it). What it
   * holds may be trimmed here: the passive applies it by itself. `released`: what left its
   * window, applied though perhaps not yet durable: the next batches may be sent while its
   * durable point runs, and the journal still keeps them until `received`.
   */
  private onAck(seq: number, received: number, released: number): void {
    const rcv = Math.max(seq, received);
    // What was sent at most: a `released` past it would leave later batches out of the window.
    const rel = Math.max(rcv, Math.min(released, this.nextSeq - 1));
    if (seq <= this.ackedSeq && rcv <= this.receivedSeq && rel <= this.releasedSeq && (this.backlog === undefined || rel < this.backlog.last)) return;
    this.ackedSeq = Math.max(this.ackedSeq, seq);
    this.receivedSeq = Math.max(this.receivedSeq, rcv);
    this.releasedSeq = Math.max(this.releasedSeq, rel);
    // What the passive held at its hello leaves the window once it says so itself (receivedSeq
    // already counts it as held since the hello, for the trim).
    // The journal may reuse what the passive holds durably (as the trim below), not what it
    // only released.
    this.opts.journal.acknowledged?.(this.receivedSeq);
    if (this.backlog !== undefined && rel >= this.backlog.last) this.backlog = undefined;
    while (this.inflight.length > 0 && this.inflight[0]!.last <= this.releasedSeq) {
      this.inflightBytes -= this.inflight.shift()!.bytes;
    }
    this.opts.points?.trim(this.receivedSeq);
    this.trim(this.receivedSeq);
    this.checkSyncDone();
    // The passive hears at once that its catch-up is over, not at the next tick.
    if (this.catchUp !== undefined && this.updateCatchUp() === undefined && this.link?.open === true) this.sendPeerState(this.link);
    this.pump();
  }

  private sendPeerState(link: PeerLink): void {
    const obs = this.catchUpObservation();
    const point = this.opts.points?.newest();
    link.send({
      t: 'peer-state',
      state: this.paused ? 'paused' : this.sync !== undefined ? 'syncing' : 'active',
      headSeq: obs.headSeq,
      ...(this.catchUp === undefined ? {} : { catchUp: catchUpLeft(obs) }),
      ...(point === undefined ? {} : { point: { id: point.id, at: Math.floor(point.at) } }),
    });
  }

  /** A consistency point closed or was confirmed younger: the passive hears it at once. */
  notePoint(): void {
    const link = this.link;
    if (link?.open === true && this.streaming) this.sendPeerState(link);
  }

  private catchUpObservation(): CatchUpObservation {
    const j = this.opts.journal;
    const c = this.opts.capture.status();
    return {
      connected: this.link !== undefined && this.streaming,
      syncing: this.sync !== undefined || this.discarding,
      ackedSeq: this.ackedSeq,
      headSeq: j.headSeq,
      journalBytesLeft: j.bytesAfter(this.ackedSeq),
      capturePending: c.pendingPaths,
      captureWaitingForSpace: c.waitingForSpace,
    };
  }

  private updateCatchUp(): CatchUpState | undefined {
    const was = this.catchUp;
    this.catchUp = nextCatchUp(was, this.catchUpObservation());
    if (this.catchUp !== undefined && was === undefined) this.log.info({ peer: this.link?.peer, headSeq: this.opts.journal.headSeq }, 'replication: passive catching up (capture was held back by a full journal)');
    if (this.catchUp === undefined && was !== undefined) this.log.info({ peer: this.link?.peer, ackedSeq: this.ackedSeq }, 'replication: catch-up complete, passive in sync');
    return this.catchUp;
  }

  /** The synchronisation is over once the passive acknowledged its sync-end record. */
  private checkSyncDone(): void {
    if (this.syncEndSeq === undefined || this.ackedSeq < this.syncEndSeq) return;
    const p = this.sync?.progress;
    this.log.info({ peer: this.link?.peer, bytesSent: p?.bytesDone, durationMs: p === undefined ? undefined : this.opts.clock.now() - p.startedAt }, 'sync: complete, passive in sync');
    this.sync = undefined;
    this.syncEndSeq = undefined;
  }

  /**
   * Trims again up to what the passive acknowledged: called when the trim limit moved (the
   * manifest was persisted further). Without it, a journal held back by the limit when the last
   * acknowledgement came would stay full, and capture would wait for room forever.
   */
  retrim(): void {
    if (this.ackedSeq > 0) this.trim(this.ackedSeq);
  }

  private trim(seq: number): void {
    const limit = this.opts.trimLimit?.() ?? seq;
    this.trimChain = this.trimChain
      .then(() => this.opts.journal.trim(Math.min(seq, limit)))
      .catch((err: unknown) => this.log.warn({ err }, 'journal: trim failed'));
  }

  // ------------------------------------------------------------------ synchronisation

  private manifestCollect: { id: string; shadow: Manifest; count: number } | undefined;

  private startSync(): void {
    const link = this.link;
    if (link === undefined) return;
    this.sync?.cancel();
    this.sync = undefined;
    this.syncEndSeq = undefined;
    // Nothing journaled from now until the sync-begin record will be sent to this passive.
    this.discarding = true;
    this.syncRefs();
    this.trim(this.opts.journal.headSeq);
    const id = crypto.randomBytes(6).toString('hex');
    this.manifestCollect = { id, shadow: new Manifest(this.opts.roots.map((r) => r.name)), count: 0 };
    link.send({ t: 'manifest-request', id });
  }

  private onManifestMessage(m: Extract<Message, { t: 'manifest-chunk' | 'manifest-end' }>): void {
    const c = this.manifestCollect;
    if (c === undefined || m.id !== c.id) return this.fail('TANDEM_ERR_PROTOCOL', `unexpected ${m.t} for synchronisation ${m.id}`);
    if (m.t === 'manifest-chunk') {
      for (const e of m.entries) if (c.shadow.hasRoot(e.root)) c.shadow.set(e.root, e.path, entryFromWire(e));
      c.count += m.entries.length;
      return;
    }
    this.manifestCollect = undefined;
    const missing = this.opts.roots.map((r) => r.name).filter((r) => !m.roots.includes(r));
    if (missing.length > 0) this.log.warn({ roots: missing }, 'sync: the passive does not protect these roots; they are not replicated');
    this.log.info({ id: c.id, entries: c.count }, 'sync: passive manifest received');
    const runner = new SyncRunner({
      id: c.id,
      capture: this.opts.capture,
      manifest: this.opts.manifest,
      shadow: c.shadow,
      roots: this.opts.roots,
      blockSize: this.opts.blockSize,
      sliceBytes: this.opts.batchBytes * 4,
      log: this.opts.log,
      clock: this.opts.clock,
      // What the passive holds durably, not what it applied: in point mode a synchronisation's
      // batches may wait staged for their point, and must not hold the synchronisation back.
      backlog: { bytes: () => this.opts.journal.bytesAfter(this.receivedSeq), limit: SYNC_BACKLOG_BYTES },
    });
    this.sync = runner;
    runner
      .run((beginSeq) => {
        // Runs inside capture's loop, before any later record is journaled.
        this.discarding = false;
        this.nextSeq = beginSeq;
        this.trim(beginSeq - 1);
      })
      .then((endSeq) => {
        if (this.sync !== runner) return;
        this.syncEndSeq = endSeq;
        this.checkSyncDone();
      })
      .catch((err: unknown) => {
        if (this.sync === runner) {
          this.log.error({ err }, 'sync: failed; it starts over at the next connection');
          this.sync = undefined;
          this.link?.close('TANDEM_ERR_INTERNAL', 'synchronisation failed');
        }
      });
    this.pump();
  }

  private logSyncProgress(): void {
    const s = this.status().sync;
    const now = this.opts.clock.now();
    if (s === undefined || now - this.lastSyncLog < SYNC_PROGRESS_LOG_MS) return;
    this.lastSyncLog = now;
    this.log.info({ sync: s.id, bytesDone: s.bytesDone, bytesTotal: s.bytesTotal, etaMs: s.etaMs, pathsDone: s.pathsDone, pathsTotal: s.pathsTotal }, 'sync: progress');
  }
}

/** What status says of a session's start: resume, catch up (and from where), or split brain. */
function describeStart(d: StartDecision, h: HelloMessage): string {
  switch (d.kind) {
    case 'resume':
      return d.fork === true ? `resume from sequence ${d.fromSeq}, where this generation forked from ${h.generation}` : `resume from sequence ${d.fromSeq}`;
    case 'sync':
      return {
        empty: 'synchronise: the passive holds no data yet',
        generation: `synchronise: no generation in common with ${h.generation}`,
        'behind-journal': `synchronise: the passive (at ${h.headSeq}) is behind what the journal holds`,
        ahead: `synchronise: the passive (at ${h.headSeq}) is ahead of this journal`,
        'sync-restart': 'synchronise: the passive was in the middle of another synchronisation',
        'behind-fork': `catch up from the last shared generation: the passive (${h.generation} at ${h.headSeq}) holds a state of this line`,
        discard: `synchronise over the passive's changes since the split (it agreed to discard them)`,
      }[d.reason];
    case 'split-brain':
      return `split brain: both changed since sequence ${d.relation.commonSeq} of ${d.relation.generation} (${d.relation.activeChanges} records here, ${d.relation.passiveChanges} there)`;
  }
}
