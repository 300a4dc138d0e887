// The heartbeat on the channel: every interval each side sends its view (role, epoch, whether
// it serves, its public link, whether it is in sync), and the channel counts as up while the
// peer's heartbeats keep coming. One late heartbeat is nothing: only `threshold` intervals of
// silence make the channel down. It never decides anything itself (agent/failover does).
import type { Clock, TimerHandle } from '../../shared/clock.ts';
import type { HeartbeatMessage, Message } from '../../shared/protocol/index.ts';
import type { PeerView } from '../failover/decision.ts';
import { listenTo, type PeerLink } from '../replication/index.ts';

export type OwnHeartbeat = Omit<HeartbeatMessage, 't' | 'seq' | 'echoSeq' | 'echoHeldMs'>;

/** Heartbeats whose send time is kept for the round trip: an echo of an older one is ignored. */
const RTT_SENT_KEPT = 8;

export interface ChannelObservation {
  up: boolean;
  /** When `up` last changed (the agent's start counts as a change to down). */
  since: number;
  peer: PeerView | undefined;
  /** When the last heartbeat (or hello) arrived. */
  lastHeardAt: number | undefined;
  /**
   * The longest silence between two heartbeats on one connection since the agent started: how
   * close the pair came to a false "channel down" (it must stay well under interval × threshold
   * even while gigabytes are hashed and sent).
   */
  longestGapMs: number;
  /** Round trip of the last heartbeat the peer echoed (ms); undefined until one was. */
  rttMs: number | undefined;
}

export class ChannelHeartbeat {
  private link: PeerLink | undefined;
  private detach: (() => void) | undefined;
  private timer: TimerHandle | undefined;
  private seq = 0;
  private lastHeardAt: number | undefined;
  private peer: PeerView | undefined;
  private up = false;
  private since: number;
  private longestGapMs = 0;
  /** Monotonic send times of the last heartbeats, by seq, and the last one received. */
  private readonly sentAt = new Map<number, number>();
  private received: { seq: number; at: number } | undefined;
  private rttMs: number | undefined;

  constructor(
    private readonly opts: { intervalMs: number; threshold: number; clock: Clock; own: () => OwnHeartbeat },
  ) {
    this.since = opts.clock.now();
  }

  /** Starts beating on a connection whose hellos were exchanged; `peer` is what its hello said. */
  attach(link: PeerLink, peer: PeerView): void {
    this.detach?.();
    this.link = link;
    this.lastHeardAt = this.opts.clock.now();
    this.peer = peer;
    this.received = undefined;
    this.sentAt.clear();
    const onMessage = (m: Message) => {
      if (m.t !== 'hb') return;
      const now = this.opts.clock.now();
      if (this.lastHeardAt !== undefined && this.link === link) this.longestGapMs = Math.max(this.longestGapMs, now - this.lastHeardAt);
      this.lastHeardAt = now;
      this.received = { seq: m.seq, at: this.opts.clock.monotonic() };
      const sent = m.echoSeq === undefined ? undefined : this.sentAt.get(m.echoSeq);
      if (sent !== undefined) this.rttMs = Math.max(0, Math.round((this.opts.clock.monotonic() - sent - (m.echoHeldMs ?? 0)) * 10) / 10);
      this.peer = { role: m.role, epoch: m.epoch, serving: m.serving, publicState: m.publicState, inSync: m.inSync, at: this.lastHeardAt, ...(m.activeEpoch === undefined ? {} : { activeEpoch: m.activeEpoch }) };
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
    const link = this.link;
    if (link?.open === true) {
      const seq = ++this.seq;
      const now = this.opts.clock.monotonic();
      const r = this.received;
      link.send({ t: 'hb', seq, ...this.opts.own(), ...(r === undefined ? {} : { echoSeq: r.seq, echoHeldMs: Math.max(0, Math.round(now - r.at)) }) });
      this.sentAt.set(seq, now);
      if (this.sentAt.size > RTT_SENT_KEPT) this.sentAt.delete(this.sentAt.keys().next().value!);
    }
    this.timer = this.opts.clock.setTimeout(() => this.beat(), this.opts.intervalMs);
  }

  observe(): ChannelObservation {
    const now = this.opts.clock.now();
    const fresh = this.link?.open === true && this.lastHeardAt !== undefined && now - this.lastHeardAt <= this.opts.intervalMs * this.opts.threshold;
    if (fresh !== this.up) {
      this.up = fresh;
      // Down since the last sign of life (the last heartbeat), not since we noticed: a closed
      // connection and a silent one then count the same, from the moment the peer fell silent.
      this.since = fresh ? now : Math.min(now, this.lastHeardAt ?? now);
    }
    return { up: this.up, since: this.since, peer: this.up ? this.peer : undefined, lastHeardAt: this.lastHeardAt, longestGapMs: this.longestGapMs, rttMs: this.rttMs };
  }

  stop(): void {
    this.timer?.cancel();
    this.detach?.();
    this.link = undefined;
  }
}
