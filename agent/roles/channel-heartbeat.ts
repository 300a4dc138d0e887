// The heartbeat on the channel: every interval each side sends its view (role, epoch, whether
// it serves, its public link, whether it is in sync), and the channel counts as up while the
// peer keeps talking: its heartbeats, or any other bytes on the connection. One late heartbeat
// is nothing: only `threshold` intervals of silence make the channel down. Bytes count because
// a heartbeat waits behind the data sent before it: over a slow link, megabytes of batches in
// the sockets' buffers held it back 12 s (1 MiB/s), and the pair called a working channel down.
// It also says how late the peer's word arrives (the round-trip of its echoes), which the
// passive counts as lag. It never decides a role (agent/failover does); it only drops a connection
// that stayed silent twice as long as the silence that calls the channel down: after an outage in
// which packets were lost rather than refused, TCP retransmits on an exponential backoff (a 60 s
// outage may leave the next try ~50 s away) and a firewall that forgot the flow never lets it
// through again, while a new connection passes at once (DRBD's ping timeout does the same).
import type { Clock, TimerHandle } from '../../shared/clock.ts';
import type { HeartbeatMessage, Message } from '../../shared/protocol/index.ts';
import type { PeerView } from '../failover/decision.ts';
import { listenTo, type PeerLink } from '../replication/index.ts';

export type OwnHeartbeat = Omit<HeartbeatMessage, 't' | 'seq' | 'echo'>;

/** Sent heartbeats remembered for the round-trip: the peer echoes one of the last few. */
const SENT_KEPT = 16;
/**
 * More bytes than this since the last look, when a heartbeat arrives, were more than that
 * heartbeat: data came with it (one heartbeat is ~150 bytes on the wire, TLS and framing
 * included). Only whether data flows depends on it (see viewDelay).
 */
const HEARTBEAT_BYTES_MAX = 1024;
/** Weight of a new round-trip sample in the smoothed figure (TCP's SRTT uses 1/8). */
const RTT_GAIN = 1 / 8;
/**
 * A connection silent for this many times `interval × threshold` is closed, so that both nodes
 * dial again. Twice the silence that calls the channel down, never the same moment: a peer
 * that was only slow (a stalled event loop, a long collection) has had the whole of a second
 * threshold to speak, and its connection, with what is in flight on it, is kept.
 */
export const SILENT_CLOSE_FACTOR = 2;

export interface ChannelObservation {
  up: boolean;
  /** When `up` last changed (the agent's start counts as a change to down). */
  since: number;
  peer: PeerView | undefined;
  /** When the last heartbeat (or hello) arrived. */
  lastHeardAt: number | undefined;
  /**
   * The longest silence (no heartbeat, no other byte) on one connection since the agent
   * started: how close the pair came to a false "channel down" (it must stay well under
   * interval × threshold even while gigabytes are hashed and sent).
   */
  longestGapMs: number;
  /** Smoothed heartbeat round-trip on the current connection (ms), undefined until measured. */
  rttMs: number | undefined;
  /**
   * How late the peer's word may reach us, as of its last sign of life (ms), while it sends
   * more than heartbeats: the last round-trip sample, or longer while our heartbeats wait for
   * their echo beyond an interval (they, and the peer's answers, are queued behind data). Over
   * a slow link this is how much of the active's journal may be in flight. 0 below a quarter
   * of the heartbeat interval, once only heartbeats came for two intervals (nothing in flight:
   * an idle pair's round-trip is no lag), and until measured; frozen while the peer is silent.
   */
  delayMs: number;
}

export class ChannelHeartbeat {
  private link: PeerLink | undefined;
  private detach: (() => void) | undefined;
  private timer: TimerHandle | undefined;
  private seq = 0;
  private lastHeardAt: number | undefined;
  /** When the peer last said anything on this connection: a heartbeat, or bytes of anything else. */
  private lastSignAt: number | undefined;
  /** The connection's bytes received when last looked at (see noteBytes). */
  private bytesIn = 0;
  private peer: PeerView | undefined;
  private up = false;
  private since: number;
  private longestGapMs = 0;
  /** Monotonic send times of our last heartbeats on this connection, by seq. */
  private readonly sentAt = new Map<number, number>();
  /** The peer's last heartbeat: its seq and when (monotonic) it arrived, echoed in ours. */
  private heard: { seq: number; at: number } | undefined;
  private rttMs: number | undefined;
  /** The last round-trip sample, unsmoothed: the delay now, not its trend (see viewDelay). */
  private lastRttMs: number | undefined;
  /** Our first heartbeat sent after the last one the peer echoed (seq, monotonic send time). */
  private firstUnechoed: { seq: number; at: number } | undefined;
  /** The peer echoes our heartbeats: its protocol says so, or it did on this connection (an older agent never does). */
  private echoes = false;
  /** Monotonic time of the peer's last sign of life. */
  private lastSignMono: number | undefined;
  /** Monotonic time of the last look that found bytes besides heartbeats (data, on the passive). */
  private lastDataMono: number | undefined;
  /** The peer's last word on what it holds unsent (HeartbeatMessage.unsentMs), and when (monotonic) it came. */
  private peerUnsent: { ms: number; at: number } | undefined;
  /** Told each new view of the peer (a heartbeat, or the hello of a new connection). */
  private readonly peerListeners = new Set<(peer: PeerView) => void>();

  constructor(
    private readonly opts: { intervalMs: number; threshold: number; clock: Clock; own: () => OwnHeartbeat },
  ) {
    this.since = opts.clock.now();
  }

  /**
   * Starts beating on a connection whose hellos were exchanged; `peer` is what its hello said.
   * `echoes`: the peer is known to echo heartbeats (its protocol says so); otherwise that is
   * learnt from its first echo.
   */
  attach(link: PeerLink, peer: PeerView, opts: { echoes?: boolean } = {}): void {
    this.detach?.();
    this.link = link;
    this.lastHeardAt = this.opts.clock.now();
    this.lastSignAt = this.lastHeardAt;
    this.bytesIn = link.stats().bytesIn;
    this.peer = peer;
    // Round-trips are per connection: a sample across two connections would mean nothing.
    this.sentAt.clear();
    this.heard = undefined;
    this.rttMs = undefined;
    this.lastRttMs = undefined;
    this.firstUnechoed = undefined;
    this.echoes = opts.echoes === true;
    this.lastSignMono = this.opts.clock.monotonic();
    this.lastDataMono = undefined;
    this.peerUnsent = undefined;
    this.tellPeer(peer);
    const onMessage = (m: Message) => {
      if (m.t !== 'hb') return;
      const now = this.opts.clock.now();
      if (this.link === link) {
        this.sample(m);
        // The heartbeat's own bytes are this sign, not another one at the next look.
        const bytes = link.stats().bytesIn;
        const data = bytes - this.bytesIn > HEARTBEAT_BYTES_MAX;
        this.bytesIn = bytes;
        this.sign(now);
        if (data) this.lastDataMono = this.lastSignMono;
      }
      this.lastHeardAt = now;
      this.peer = { role: m.role, epoch: m.epoch, serving: m.serving, publicState: m.publicState, inSync: m.inSync, at: this.lastHeardAt, ...(m.activeEpoch === undefined ? {} : { activeEpoch: m.activeEpoch }) };
      if (this.link === link) this.tellPeer(this.peer);
    };
    const onClose = () => {
      if (this.link !== link) return;
      this.link = undefined;
      this.observe();
    };
    this.detach = listenTo(link, onMessage, onClose);
    this.beat();
    this.observe();
  }

  /** Sends one heartbeat now (also used right after a role change, so the peer learns it at once). */
  beat(): void {
    this.timer?.cancel();
    this.noteBytes();
    this.closeIfSilent();
    const link = this.link;
    if (link?.open === true) {
      const seq = ++this.seq;
      const mono = this.opts.clock.monotonic();
      const echo = this.heard === undefined ? undefined : { seq: this.heard.seq, heldUs: Math.max(0, Math.round((mono - this.heard.at) * 1000)) };
      link.send({ t: 'hb', seq, ...this.opts.own(), ...(echo === undefined ? {} : { echo }) });
      this.sentAt.set(seq, mono);
      this.firstUnechoed ??= { seq, at: mono };
      if (this.sentAt.size > SENT_KEPT) this.sentAt.delete(this.sentAt.keys().next().value!);
    }
    this.timer = this.opts.clock.setTimeout(() => this.beat(), this.opts.intervalMs);
  }

  /**
   * Closes the connection when the peer sent nothing on it (no heartbeat, no byte) for
   * SILENT_CLOSE_FACTOR × interval × threshold. Its 'close' reaches onClose before this returns,
   * and the channel's dialers open a new connection; what was in flight is sent again from the
   * last acknowledged sequence, as after any drop. Measured on the monotonic clock: a wall clock
   * set back or forth must not drop a live connection.
   */
  private closeIfSilent(): void {
    const link = this.link;
    const at = this.lastSignMono;
    if (link?.open !== true || at === undefined) return;
    const silentMs = this.opts.clock.monotonic() - at;
    const limitMs = SILENT_CLOSE_FACTOR * this.opts.intervalMs * this.opts.threshold;
    if (silentMs <= limitMs) return;
    link.close(
      'TANDEM_ERR_CHANNEL_SILENT',
      `nothing came from the peer on this connection for ${Math.round(silentMs)} ms (${SILENT_CLOSE_FACTOR} × heartbeat.interval × heartbeat.threshold = ${limitMs} ms): closing it to dial again`,
    );
  }

  /**
   * Calls `f` with each new view of the peer as it arrives (a heartbeat, or a new connection's
   * hello), so that whoever waits for the peer to say something (a handover waiting for it to
   * be active) hears it at once instead of polling. Returns the unsubscribe.
   */
  onPeer(f: (peer: PeerView) => void): () => void {
    this.peerListeners.add(f);
    return () => this.peerListeners.delete(f);
  }

  private tellPeer(peer: PeerView): void {
    for (const f of [...this.peerListeners]) f(peer);
  }

  observe(): ChannelObservation {
    this.noteBytes();
    const now = this.opts.clock.now();
    const fresh = this.link?.open === true && this.lastSignAt !== undefined && now - this.lastSignAt <= this.opts.intervalMs * this.opts.threshold;
    if (fresh !== this.up) {
      this.up = fresh;
      // Down since the last sign of life, not since we noticed: a closed connection and a
      // silent one then count the same, from the moment the peer fell silent.
      this.since = fresh ? now : Math.min(now, this.lastSignAt ?? now);
    }
    return { up: this.up, since: this.since, peer: this.up ? this.peer : undefined, lastHeardAt: this.lastHeardAt, longestGapMs: this.longestGapMs, rttMs: this.up ? this.rttMs : undefined, delayMs: this.viewDelay() };
  }

  /**
   * The delay of the peer's word as of its last sign: the last round-trip, or, while our
   * heartbeats go unanswered past the interval the peer may hold one, the time since the first
   * of them left less that interval. Every reply of the peer left after what it sent before, so
   * anything it sent within this delay may still be on its way. And at least the age of what
   * the peer said it had not sent yet, plus the way its word took.
   */
  private viewDelay(): number {
    const at = this.lastSignMono;
    if (at === undefined) return 0;
    let delay = 0;
    if (this.lastDataMono !== undefined && at - this.lastDataMono <= 2 * this.opts.intervalMs) {
      const u = this.firstUnechoed;
      // A peer that never echoes (an older agent) would look ever later: only its round-trips count.
      const overdue = u === undefined || !this.echoes ? 0 : at - u.at - this.opts.intervalMs;
      delay = Math.max(this.lastRttMs ?? 0, overdue);
    }
    // What the peer said it held unsent, older by the time its word took (the round-trip of that
    // very heartbeat) and by the time since, unless a later word said otherwise. Data waiting
    // for the window sends no bytes: this counts without them.
    const p = this.peerUnsent;
    if (p !== undefined && p.ms > 0) delay = Math.max(delay, p.ms + (this.lastRttMs ?? 0) + (at - p.at));
    // Below a quarter interval it is a round-trip, not data queued: it would only make the lag
    // flicker by milliseconds (a status line printed on every change would show each).
    return delay < this.opts.intervalMs / 4 ? 0 : Math.round(delay);
  }

  /**
   * Bytes that arrived on the connection since the last look are a sign of life now. Looked at
   * on every beat, heartbeat and observation: a sign is placed at most one look late, so bytes
   * alone keep the channel up as long as they come at least every (threshold - 1) intervals.
   */
  private noteBytes(): void {
    const link = this.link;
    if (link === undefined || !link.open) return;
    const bytes = link.stats().bytesIn;
    if (bytes === this.bytesIn) return;
    this.bytesIn = bytes;
    this.sign(this.opts.clock.now());
    this.lastDataMono = this.lastSignMono;
  }

  private sign(now: number): void {
    if (this.lastSignAt !== undefined) this.longestGapMs = Math.max(this.longestGapMs, now - this.lastSignAt);
    this.lastSignAt = now;
    this.lastSignMono = this.opts.clock.monotonic();
  }

  /**
   * Round-trip from the peer's echo of one of our heartbeats: the time since we sent it, less
   * the time the peer held it. The passive's failover decision counts it (viewDelay): a peer that
   * lies about the time it held a heartbeat can make this node think itself further behind
   * (it then refuses to take over), or back to what its own sequence numbers say, never less.
   */
  private sample(m: HeartbeatMessage): void {
    const mono = this.opts.clock.monotonic();
    this.heard = { seq: m.seq, at: mono };
    this.peerUnsent = m.unsentMs === undefined ? undefined : { ms: m.unsentMs, at: mono };
    if (m.echo === undefined) return;
    this.echoes = true;
    if (this.firstUnechoed !== undefined && m.echo.seq >= this.firstUnechoed.seq) this.firstUnechoed = undefined;
    const sent = this.sentAt.get(m.echo.seq);
    if (sent === undefined) return;
    const rtt = Math.max(0, mono - sent - m.echo.heldUs / 1000);
    this.lastRttMs = rtt;
    this.rttMs = this.rttMs === undefined ? rtt : this.rttMs + RTT_GAIN * (rtt - this.rttMs);
  }

  stop(): void {
    this.timer?.cancel();
    this.detach?.();
    this.link = undefined;
  }
}
