// Carries out role changes: it owns the engine of the current role (active: journal, capture,
// sender; passive: receive log, applier, receiver), routes every channel connection to it, and
// performs what the failover decision asks: serve, release, promote, demote, switch over. It
// decides nothing: each operation reports an outcome that goes back to the decision. It must
// never let a node serve (run `start`) while it is not active, nor keep serving after `stop`
// was asked of it.
import type { Clock } from '../../shared/clock.ts';
import type { Logger } from '../../shared/log.ts';
import type { HelloMessage, Message, Role } from '../../shared/protocol/index.ts';
import { TANDEM_VERSION, helloProtocolFields, ownProtocol, peerProtocol, type ProtocolRange } from '../../shared/version.ts';
import type { PeerConnection } from '../channel/index.ts';
import type { Discarded, PeerLink, ReceiverStatus, SenderStatus } from '../replication/index.ts';
import { Session } from '../session/index.ts';
import { planRoots, type RootPlan } from '../points/index.ts';
import { newGeneration } from '../state/index.ts';
import { forkHistory } from '../replication/index.ts';
import { ActiveEngine } from './active-engine.ts';
import { ChannelHeartbeat } from './channel-heartbeat.ts';
import type { EngineDeps } from './engine-deps.ts';
import { PassiveEngine } from './passive-engine.ts';

export type ScriptName = 'start' | 'stop' | 'check';

/** What the controller needs from agent/scripts. */
export interface Scripts {
  run(name: ScriptName, ctx: { role: Role; reason: string; generation: string }): Promise<{ ok: boolean; error?: string | undefined; exitCode: number | null; timedOut: boolean }>;
}

export interface Outcome {
  ok: boolean;
  error?: string | undefined;
  epoch?: number | undefined;
  /** A switchover that failed: whether this node serves again after its rollback. */
  serving?: boolean | undefined;
}

/** What the controller uses of the channel: agent/channel's PeerChannel (an in-memory one in tests). */
export interface RoleChannel {
  /** The connection in use, if one is open. */
  readonly connection: PeerLink | undefined;
  /** Closes the connection in use (both nodes then reconnect). */
  reconnect(reason: string): void;
  on(event: 'connection', listener: (conn: PeerConnection | PeerLink) => void): unknown;
}

export interface RoleControllerOptions extends EngineDeps {
  channel: RoleChannel;
  scripts: Scripts;
  /** Whether this node serves now (the decision's state): goes into hellos and heartbeats. */
  serving: () => boolean;
  /** This node's public link, as its own checks see it. */
  publicState: () => 'unknown' | 'ok' | 'failing';
  /** A planned handover arrived from the active: the decision must take it (agent/failover). */
  onTakeover: (epoch: number, headSeq: number, reason: string) => void;
  /** The protocol versions this node speaks (default: this release's; shared/version.ts). */
  protocol?: ProtocolRange | undefined;
}

/** The peer's release and protocol as its last hello said, and the protocol of that session. */
export interface PeerVersion {
  /** Null when the peer's protocol (1) did not send it. */
  tandem: string | null;
  protocol: number;
  session: number;
}

/** How long a switchover waits for the passive to apply everything and take over. */
const SWITCHOVER_DRAIN_MS = 30_000;
const SWITCHOVER_TAKEOVER_MS = 30_000;
/** How long a promotion waits for the passive to apply the complete batches it holds. */
const PROMOTE_DRAIN_MS = 30_000;

export class RoleController {
  readonly heartbeat: ChannelHeartbeat;
  private readonly log: Logger;
  private readonly clock: Clock;
  private engine: ActiveEngine | PassiveEngine | undefined;
  private takeoverWaiter: ((m: Extract<Message, { t: 'takeover-result' }>) => void) | undefined;
  private pendingTakeover: { link: PeerLink; epoch: number } | undefined;
  private stopped = false;
  /** A role change is replacing the engine (see changingRole). */
  private engineChanging = false;
  private readonly protocol: ProtocolRange;
  /** What the peer's last hello said of its version (kept after a disconnect: status says connected or not). */
  peerVersion: PeerVersion | undefined;
  /** What this node's last promotion left out: the batches past the last complete consistency point. */
  lastDiscard: (Discarded & { at: number }) | undefined;
  /** How this node's roots would be captured as active (made when a passive engine starts). */
  private plans: RootPlan[] = [];

  constructor(private readonly opts: RoleControllerOptions) {
    this.log = opts.log.child({ component: 'roles' });
    this.clock = opts.clock;
    this.protocol = opts.protocol ?? ownProtocol();
    this.heartbeat = new ChannelHeartbeat({
      intervalMs: opts.config.heartbeat.intervalMs,
      threshold: opts.config.heartbeat.threshold,
      clock: opts.clock,
      own: () => ({ role: this.role, epoch: this.epoch, activeEpoch: opts.nodeState.get().activeEpoch, serving: opts.serving(), publicState: opts.publicState(), inSync: this.inSync(), ...this.unsent() }),
    });
    opts.channel.on('connection', (conn) => this.onConnection(conn));
  }

  get role(): Role {
    return this.opts.nodeState.get().role;
  }

  /** Active: how old the oldest change is that it has not sent yet (HeartbeatMessage.unsentMs). */
  private unsent(): { unsentMs?: number } {
    const a = this.active;
    if (a === undefined) return {};
    const pendingAt = a.capture.oldestPendingAt();
    const pendingMs = pendingAt === undefined ? 0 : this.clock.now() - pendingAt;
    return { unsentMs: Math.max(0, Math.round(Math.max(a.sender.unsentAgeMs(), pendingMs))) };
  }

  get epoch(): number {
    return this.opts.nodeState.get().epoch;
  }

  get active(): ActiveEngine | undefined {
    return this.engine instanceof ActiveEngine ? this.engine : undefined;
  }

  get passive(): PassiveEngine | undefined {
    return this.engine instanceof PassiveEngine ? this.engine : undefined;
  }

  /**
   * From the moment a role change starts to replace the engine until the new one runs (the
   * role on record may already be the new one, the engine still the old one), and while there
   * is no engine at all: the node is neither role.
   */
  private changingRole(): boolean {
    return this.engineChanging || this.engine === undefined;
  }

  /** The engine work of a role change, with changingRole() true from its start to its end. */
  private async replacingEngine<T>(work: () => Promise<T>): Promise<T> {
    this.engineChanging = true;
    try {
      return await work();
    } finally {
      this.engineChanging = false;
    }
  }

  senderStatus(): SenderStatus | undefined {
    return this.active?.sender.status();
  }

  receiverStatus(): ReceiverStatus | undefined {
    return this.passive?.receiver.status();
  }

  /** How each root is captured (active), or would be after a takeover (passive). */
  consistency(): { root: string; mode: 'snapshot' | 'file'; reason: string }[] {
    const capture = this.active?.capture;
    if (capture !== undefined) return capture.consistency();
    return this.plans.map((p) => ({ root: p.name, mode: p.verdict.mode, reason: p.verdict.reason }));
  }

  private inSync(): boolean {
    return this.active?.sender.status().inSync ?? this.passive?.receiver.status().inSync ?? false;
  }

  /** Builds the engine of the role the node state holds. */
  async start(): Promise<void> {
    this.plans = planRoots(this.opts.config.protect);
    this.engine = this.role === 'active' ? await ActiveEngine.start(this.opts) : await PassiveEngine.start(this.opts);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.heartbeat.stop();
    await this.engine?.stop();
    this.engine = undefined;
  }

  // ---------------------------------------------------------------- connections

  private hello(): HelloMessage {
    const fields = this.active?.sender.helloFields() ?? this.passive!.receiver.helloFields(this.protocol.max);
    const s = this.opts.nodeState.get();
    return {
      t: 'hello',
      ...helloProtocolFields(this.protocol),
      version: TANDEM_VERSION,
      pair: this.opts.config.pair,
      node: this.opts.config.self.name,
      role: this.role,
      epoch: this.epoch,
      serving: this.opts.serving(),
      blockSize: this.opts.config.blockSize,
      ...fields,
      history: [...s.history],
      activeEpoch: s.activeEpoch,
      ...(s.discard && this.role === 'passive' ? { discard: true } : {}),
    };
  }

  private onConnection(conn: PeerLink): void {
    if (this.stopped) return;
    if (this.changingRole()) {
      // Mid role change: no engine can say where this node's data stands, and a hello without
      // it (head 0) would have the peer synchronise a node that holds everything. Nor may the
      // hello say a role whose engine is not running yet: a passive still closing its active
      // engine cannot take the peer's replication, and refusing it closes the very connection
      // on which the peer then sends its takeover (seen after a split brain: the handover waited
      // 30 s for an answer that could not come). The change ends with a reconnect, which brings
      // the right hello.
      conn.close('normal', 'role change in progress');
      return;
    }
    // The session is the connection's one listener: each part below registers for its family.
    const session: Session = new Session(conn, {
      pair: this.opts.config.pair,
      blockSize: this.opts.config.blockSize,
      helloTimeoutMs: this.opts.config.channel.handshakeTimeout,
      protocol: this.protocol,
      clock: this.clock,
      log: this.log,
      onPeerHello: (h, protocol) => {
        session.handle('handover', (m) => this.onControlMessage(conn, m));
        this.peerVersion = { tandem: h.version ?? null, protocol: peerProtocol(h).max, session: protocol };
        if (protocol < this.protocol.max) {
          this.log.info({ peer: h.node, protocol, peerVersion: h.version ?? null }, `roles: the peer speaks protocol ${protocol}; this session runs at it (a rolling upgrade: docs/install.md)`);
        }
        // Every agent of protocol 3 echoes heartbeats; of protocol 2, only the later ones did.
        this.heartbeat.attach(session.port('heartbeat'), { role: h.role, epoch: h.epoch, serving: h.serving, publicState: 'unknown', inSync: false, at: this.clock.now() }, { echoes: protocol >= 3 });
        // A passive follows its active's epoch, so that a promotion goes beyond it even after
        // a restart of this node.
        if (this.role === 'passive' && h.role === 'active' && h.epoch > this.epoch) {
          void this.opts.nodeState.update({ epoch: h.epoch }).catch((err: unknown) => this.log.warn({ err }, 'roles: cannot persist the epoch'));
        }
        // Replication runs only between an active and a passive; otherwise the heartbeats tell
        // the decision who must change, and the connection is made again after the change.
        const active = this.active;
        const passive = this.passive;
        if (active !== undefined && h.role === 'passive') active.sender.attach(session.port('to-active'), h);
        else if (passive !== undefined && h.role === 'active') passive.receiver.attach(session.port('to-passive'), h, protocol);
        else this.log.info({ peer: h.node, role: this.role, peerRole: h.role, epoch: this.epoch, peerEpoch: h.epoch }, 'roles: both nodes are ' + this.role + '; no replication until one changes');
      },
    });
    session.start(this.hello());
  }

  private onControlMessage(conn: PeerLink, m: Message): void {
    if (m.t === 'takeover') {
      // A copy sent again on a new connection (see handOver), after this node took the role
      // (at that epoch, or its own when that was higher), or while it is taking it: answered as
      // taken, or by the promotion's end. The sender must not serve beside an active at least
      // as new as the epoch it hands over, whichever way this node got there.
      if (this.role === 'active' && this.epoch >= m.epoch) {
        if (this.changingRole()) this.pendingTakeover = { link: conn, epoch: m.epoch };
        else conn.send({ t: 'takeover-result', epoch: m.epoch, ok: true });
        return;
      }
      if (this.role !== 'passive') {
        conn.send({ t: 'takeover-result', epoch: m.epoch, ok: false, error: 'this node is not passive' });
        return;
      }
      this.pendingTakeover = { link: conn, epoch: m.epoch };
      this.opts.onTakeover(m.epoch, m.headSeq, m.reason);
    } else if (m.t === 'takeover-result') {
      this.takeoverWaiter?.(m);
    }
  }

  // ---------------------------------------------------------------- operations

  private ctx(reason: string) {
    return { role: this.role, reason, generation: this.opts.nodeState.get().generation };
  }

  /**
   * Answers the takeover this promotion carries out, on the connection its latest copy came by
   * (read at the end, not the start: a copy may come on a new connection meanwhile).
   */
  private answerTakeover(m: Extract<Message, { t: 'takeover-result' }>): void {
    const t = this.pendingTakeover;
    this.pendingTakeover = undefined;
    t?.link.send(m);
  }

  /** Runs `start` (the node is active): takes the public identity and starts the applications. */
  async serve(reason: string): Promise<Outcome> {
    if (this.role !== 'active') return { ok: false, error: 'not active' };
    const r = await this.opts.scripts.run('start', this.ctx(reason));
    return r.ok ? { ok: true } : { ok: false, error: describe(r) };
  }

  /** Runs `stop`: releases the public identity. */
  async release(reason: string): Promise<Outcome> {
    const r = await this.opts.scripts.run('stop', this.ctx(reason));
    return r.ok ? { ok: true } : { ok: false, error: describe(r) };
  }

  /**
   * Passive → active: apply every complete batch held, start a new generation with `epoch`,
   * build the active engine, then start the applications (retried) and verify them with check.
   */
  async promote(epoch: number, reason: string, startRetries: number): Promise<Outcome> {
    const passive = this.passive;
    if (passive === undefined) return { ok: false, error: 'not passive' };
    const appliedSeq = await passive.receiver.drain(PROMOTE_DRAIN_MS);
    const receivedSeq = passive.receiver.status().receivedSeq;
    // With consistency points, what lies past the last complete point is left out: the copy
    // presented is that point, an instant of the active's disk (docs/replication.md).
    const discarded = passive.receiver.discarded();
    if (discarded !== undefined && discarded.firstSeq > appliedSeq && discarded.lastSeq >= receivedSeq) {
      this.lastDiscard = { ...discarded, at: this.clock.now() };
      this.log.warn(
        { appliedSeq, records: discarded.records, bytes: discarded.bytes, firstSeq: discarded.firstSeq, lastSeq: discarded.lastSeq, fromTs: discarded.fromTs, toTs: discarded.toTs, pointAt: discarded.pointAt },
        'roles: promoting at the last complete consistency point; what the old active journaled past it is discarded',
      );
    } else if (receivedSeq > appliedSeq) {
      // Batches held and not applied in time (the disk is failing, or full): the new generation
      // starts without them. Never silent: the operator must know what was not taken over.
      this.log.error({ code: 'TANDEM_ERR_FAILOVER_FAILED', appliedSeq, receivedSeq, timeoutMs: PROMOTE_DRAIN_MS }, `roles: promoting with ${receivedSeq - appliedSeq} received records not applied in time; they are dropped`);
    }
    // Without points the copy is file by file: each file a state it had, not one instant (a
    // database may not start on it). Said at the moment it matters.
    const pointsHeld = passive.receiver.status().point !== undefined;
    this.log.info({ reason, epoch, appliedSeq, consistency: pointsHeld ? 'point' : 'file' }, pointsHeld ? 'roles: promoting to active' : 'roles: promoting to active; the copy has file-level consistency only: each file is a state it had, files may come from different moments (docs/replication.md)');
    // The connection stays open until the takeover is answered on it; reconnect() below closes it.
    const failed = await this.replacingEngine(async (): Promise<Error | undefined> => {
      await passive.stop({ keepLink: true, promoting: true });
      this.engine = undefined;
      // The new generation continues the one this passive followed, from what it applied; a
      // tree mid-synchronisation is no state of it, so that one has no parent.
      const before = this.opts.nodeState.get();
      const history = before.generation !== '' && before.syncId === '' ? forkHistory(before, appliedSeq) : [];
      await this.opts.nodeState.update({ role: 'active', epoch, activeEpoch: epoch, generation: newGeneration(), history, discard: false, syncId: '', syncBytesTotal: 0 });
      try {
        this.engine = await ActiveEngine.start(this.opts, { freshAfterSeq: appliedSeq });
        return undefined;
      } catch (err) {
        // Cannot run as active: go back to passive rather than serve without replication state.
        this.log.error({ err }, 'roles: the active engine did not start; back to passive');
        await this.opts.nodeState.update({ role: 'passive' });
        this.engine = await PassiveEngine.start(this.opts, { fresh: true });
        return err as Error;
      }
    });
    if (failed !== undefined) {
      this.answerTakeover({ t: 'takeover-result', epoch, ok: false, error: failed.message });
      this.opts.channel.reconnect('promotion failed: passive again');
      return { ok: false, error: `the active engine did not start: ${failed.message}` };
    }
    // Tell the peer at once (a planned switchover waits for this) and connect afresh as active.
    this.answerTakeover({ t: 'takeover-result', epoch, ok: true });
    this.heartbeat.beat();
    this.opts.channel.reconnect('role changed: now active');
    let last: Outcome = { ok: false, error: 'not tried' };
    for (let attempt = 0; attempt <= startRetries; attempt++) {
      if (attempt > 0) await this.clock.sleep(1000 * attempt);
      const start = await this.opts.scripts.run('start', this.ctx(reason));
      if (!start.ok) {
        last = { ok: false, error: `start: ${describe(start)}` };
        continue;
      }
      const check = await this.opts.scripts.run('check', this.ctx(reason));
      if (check.ok) return { ok: true, epoch };
      last = { ok: false, error: `check after start: ${describe(check)}` };
    }
    return { ...last, epoch };
  }

  /**
   * The role change of a node that no longer serves: passive first (what hellos, heartbeats and
   * status say), then the engines, so the peer never sees two active nodes while the journal
   * closes; then a fresh receive log and a new connection on which the peer learns the role.
   */
  private async becomePassive(active: ActiveEngine): Promise<void> {
    await this.replacingEngine(async () => {
      await this.opts.nodeState.update({ role: 'passive' });
      await active.stop();
      this.engine = undefined;
      this.plans = planRoots(this.opts.config.protect);
      // What the tree holds: everything journaled (capture stopped). The new active forked at
      // what it had applied; if that is this very point, replication resumes instead of a sync.
      this.engine = await PassiveEngine.start(this.opts, { fresh: true, continueAfter: active.journal.headSeq });
    });
    this.heartbeat.beat();
    this.opts.channel.reconnect('role changed: now passive');
  }

  /** Active → passive: stop the applications, then run as passive (a fresh receive log). */
  async demote(reason: string): Promise<Outcome> {
    const stop = await this.opts.scripts.run('stop', this.ctx(reason));
    if (this.active !== undefined) {
      this.log.info({ reason }, 'roles: stepping down to passive');
      await this.becomePassive(this.active);
    }
    return stop.ok ? { ok: true } : { ok: false, error: `stop: ${describe(stop)}` };
  }

  /**
   * Planned handover (DESIGN "Switchover"): stop the applications, journal what is left, wait
   * until the passive applied all of it, hand over the role with the next epoch, become
   * passive. A step that fails before the handover rolls back (start again, stay active); once
   * the takeover message is out and no answer comes, this node does not serve again (the peer
   * may have taken over): it becomes passive and lets the decision sort it out.
   */
  async switchover(reason: string, opts: { discardOwn?: boolean } = {}): Promise<Outcome> {
    const active = this.active;
    if (active === undefined) return { ok: false, error: 'not active' };
    if (opts.discardOwn === true) return this.handOverDiscarding(active, reason);
    const epoch = this.epoch + 1;
    const rollback = async (why: string): Promise<Outcome> => {
      this.log.warn({ reason: why }, 'roles: switchover failed, rolling back');
      const start = await this.opts.scripts.run('start', this.ctx(`switchover rolled back: ${why}`));
      return { ok: false, serving: start.ok, error: start.ok ? why : `${why}; and the rollback's start failed: ${describe(start)}` };
    };
    const stop = await this.opts.scripts.run('stop', this.ctx(reason));
    if (!stop.ok) return rollback(`stop: ${describe(stop)}`);
    let headSeq: number;
    try {
      headSeq = await active.drain(SWITCHOVER_DRAIN_MS);
    } catch (err) {
      return rollback((err as Error).message);
    }
    if (!(await active.sender.waitAcked(headSeq, SWITCHOVER_DRAIN_MS))) return rollback(`the passive did not apply up to ${headSeq} in time`);
    if (this.opts.channel.connection === undefined) return rollback('the channel went down');
    this.log.info({ reason, headSeq, epoch }, 'roles: switchover: everything applied on the passive, handing over');
    const answer = await this.handOver(epoch, headSeq, reason);
    if (answer !== undefined && !answer.ok) return rollback(`the passive refused: ${answer.error ?? 'no reason'}`);
    // Taken over, or no answer: either way this node must not serve again by itself.
    await this.becomePassive(active);
    if (answer === undefined) this.log.error({ epoch }, 'roles: switchover: the passive did not confirm the takeover; this node stays passive and does not serve');
    return { ok: true };
  }

  /**
   * Sends the takeover and waits for its answer: a takeover-result on this connection, or, when
   * the peer closed it on its way to active before the answer got out, its heartbeats on the
   * next connection (active with the epoch handed over). Undefined: no answer in time.
   */
  private async handOver(epoch: number, headSeq: number, reason: string): Promise<Extract<Message, { t: 'takeover-result' }> | undefined> {
    const link = this.opts.channel.connection;
    if (link === undefined) return { t: 'takeover-result', epoch, ok: false, error: 'the channel is down' };
    const result = new Promise<Extract<Message, { t: 'takeover-result' }> | undefined>((resolve) => {
      const done = (m: Extract<Message, { t: 'takeover-result' }> | undefined) => {
        timer.cancel();
        stopListening();
        resolve(m);
      };
      const timer = this.clock.setTimeout(() => done(undefined), SWITCHOVER_TAKEOVER_MS);
      let sentOn = link;
      const stopListening = this.heartbeat.onPeer((peer) => {
        // The peer's word that it took over, as soon as a heartbeat or hello brings it.
        if (peer.role === 'active' && peer.epoch >= epoch) {
          done({ t: 'takeover-result', epoch: peer.epoch, ok: true });
          return;
        }
        // The connection that carried the takeover closed, and the peer is back as a passive on
        // a new one: the takeover may have been lost with it (the peer closed that connection
        // before reading it). Sent again: the peer takes the role once (a copy that finds it
        // active, at that epoch or a newer one, is answered as taken).
        const now = this.opts.channel.connection;
        if (peer.role === 'passive' && now !== undefined && now !== sentOn) {
          sentOn = now;
          this.log.info({ epoch }, 'roles: handover: the connection that carried the takeover closed; sending it again on the new one');
          now.send({ t: 'takeover', epoch, headSeq, reason });
        }
      });
      this.takeoverWaiter = done;
    });
    link.send({ t: 'takeover', epoch, headSeq, reason });
    const answer = await result;
    this.takeoverWaiter = undefined;
    return answer;
  }

  /**
   * A split brain resolved for the passive's side: stop the applications and hand the role over
   * *without* draining (this node's changes since the split are the ones given up, and the
   * passive must not receive them); once the peer confirms, this node becomes a passive that
   * agreed to have its divergent changes overwritten (NodeState.discard, told in its hello).
   */
  private async handOverDiscarding(active: ActiveEngine, reason: string): Promise<Outcome> {
    const epoch = this.epoch + 1;
    const stop = await this.opts.scripts.run('stop', this.ctx(reason));
    if (!stop.ok) {
      const start = await this.opts.scripts.run('start', this.ctx(`handover rolled back: stop failed`));
      return { ok: false, serving: start.ok, error: `stop: ${describe(stop)}` };
    }
    const answer = await this.handOver(epoch, active.journal.headSeq, reason);
    if (answer !== undefined && !answer.ok) {
      const start = await this.opts.scripts.run('start', this.ctx(`handover rolled back: ${answer.error ?? 'refused'}`));
      return { ok: false, serving: start.ok, error: `the passive refused: ${answer.error ?? 'no reason'}` };
    }
    // Confirmed: this node's data since the split is to be overwritten. Without a confirmation
    // it stays passive but keeps its data: the next connection finds the split brain again.
    if (answer !== undefined) await this.opts.nodeState.update({ discard: true });
    await this.becomePassive(active);
    if (answer === undefined) this.log.error({ epoch }, 'roles: handover: the passive did not confirm the takeover; this node stays passive, keeps its data and does not serve');
    return { ok: true };
  }

}

function describe(r: { exitCode: number | null; timedOut: boolean; error?: string | undefined }): string {
  if (r.error !== undefined) return r.error;
  if (r.timedOut) return 'timed out';
  return `exit code ${r.exitCode}`;
}
