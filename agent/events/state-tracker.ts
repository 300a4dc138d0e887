// The one owner of the node's state as the operator sees it (Syncthing's setState). Whoever
// reads the status document goes through refresh(), which builds it, compares it with the last
// one and turns every change into one event before anyone can see the change: status, the
// event stream, the log, the metrics and the alerts can never tell different stories. The
// failover runner calls it after every step (a tick is at most 100 ms), so nothing waits for a
// reader to happen by. It decides nothing, and nothing it does can block a decision: events are
// handed to listeners that only queue.
import type { Clock } from '../../shared/clock.ts';
import type { Logger } from '../../shared/log.ts';
import type { Role } from '../../shared/protocol/index.ts';
import type { AgentStatus } from '../control/index.ts';
import type { RunnerStep } from '../failover/index.ts';
import { boundedDraft, type EventDraft, type EventKind, type TandemEvent } from './event.ts';
import type { EventHistory } from './event-history.ts';
import { diffSnapshots, snapshotOf, type Snapshot } from './snapshot-diff.ts';

export interface StateTrackerOptions {
  node: string;
  peer: string;
  history: EventHistory;
  /** Builds the status document from the components (agent/control buildStatus). */
  build: () => AgentStatus;
  /** alerts.lagOver: a lag beyond it is an event (and an alert). */
  lagBoundMs: number;
  /** Why maintenance or a pause changed, as the operator said (agent/operator). */
  operatorReason?: () => { maintenance?: string | undefined; paused?: string | undefined };
  clock: Clock;
  log: Logger;
}

/** Kinds logged as warnings when they go where an operator must look. */
function isWarning(e: TandemEvent): boolean {
  if (e.kind === 'failover' || e.kind === 'script') return true;
  if (e.kind === 'alarm') return e.to === 'raised';
  if (e.kind === 'link') return e.to === 'down' || e.to === 'dead' || e.to === 'unreachable';
  if (e.kind === 'lag') return e.to === 'beyond';
  if (e.kind === 'switchover') return e.details.phase === 'failed';
  return false;
}

export class StateTracker {
  private last: Snapshot | undefined;
  private readonly listeners = new Set<(e: TandemEvent) => void>();
  private readonly log: Logger;
  /** Events by kind since the agent started (metrics). */
  readonly counts = new Map<EventKind, number>();
  /** Role changes by trigger, and actions by `kind phase` (metrics). */
  readonly roleChanges = new Map<string, number>();
  readonly actions = new Map<string, number>();
  /** Records the passive applied (or the active saw acknowledged) since the agent started. */
  recordsReplicated = 0;
  private running = new Map<'promote' | 'switchover', { kind: 'failover' | 'switchover'; from: string; to: string; at: number }>();
  private lastRole: TandemEvent | undefined;

  constructor(private readonly opts: StateTrackerOptions) {
    this.log = opts.log.child({ component: 'events' });
    // The last role change may be older than this run of the agent: the history has it.
    this.lastRole = opts.history.findLast((e) => e.kind === 'role');
  }

  get history(): EventHistory {
    return this.opts.history;
  }

  /** The status document, after every change it shows was made an event. */
  refresh(): AgentStatus {
    const status = this.opts.build();
    this.stampLastRole(status);
    const prev = this.last;
    // The first document is the starting point, reported by the agent's start event; a lag is
    // taken as within there, so that one beyond at start is an event like any other.
    const next = prev === undefined ? { ...snapshotOf(status, undefined, this.opts.lagBoundMs), lagBeyond: false } : snapshotOf(status, prev, this.opts.lagBoundMs);
    this.last = next;
    if (prev !== undefined && prev.role === next.role && next.appliedSeq > prev.appliedSeq) this.recordsReplicated += next.appliedSeq - prev.appliedSeq;
    for (const d of diffSnapshots(prev, next, { status, lagBoundMs: this.opts.lagBoundMs, operatorReason: this.opts.operatorReason?.() })) this.emit(d);
    this.stampLastRole(status);
    return status;
  }

  private stampLastRole(status: AgentStatus): void {
    const e = this.lastRole;
    status.failover.lastRoleChange = e === undefined ? null : { at: e.time, from: e.from as Role, to: e.to as Role, epoch: Number(e.details.epoch ?? 0), reason: e.reason, trigger: e.trigger, seq: e.seq };
  }

  /** The failover runner took an input: report the actions it started or ended, then any change. */
  onStep(step: RunnerStep): void {
    const now = this.opts.clock.now();
    const { node, peer } = this.opts;
    for (const e of step.effects) {
      if (e.kind === 'promote') {
        const kind = step.trigger === 'planned' ? 'switchover' : 'failover';
        this.running.set('promote', { kind, from: peer, to: node, at: now });
        this.action(kind, peer, node, 'started', e.reason, step.trigger, { epoch: e.epoch });
      } else if (e.kind === 'switchover') {
        this.running.set('switchover', { kind: 'switchover', from: node, to: peer, at: now });
        this.action('switchover', node, peer, 'started', e.reason, step.trigger, e.discardOwn === true ? { discardOwn: true } : {});
      }
    }
    this.refresh();
    const i = step.input;
    if (i.kind === 'done' && (i.action === 'promote' || i.action === 'switchover')) {
      const r = this.running.get(i.action);
      this.running.delete(i.action);
      if (r !== undefined) {
        const details = { durationMs: now - r.at, ...(i.error === undefined ? {} : { error: i.error }) };
        this.action(r.kind, r.from, r.to, i.ok ? 'done' : 'failed', i.ok ? step.reason : `${step.reason}: ${i.error ?? 'failed'}`, step.trigger, details);
      }
    }
  }

  private action(kind: 'failover' | 'switchover', from: string, to: string, phase: 'started' | 'done' | 'failed', reason: string, trigger: EventDraft['trigger'], details: Record<string, unknown>): void {
    this.actions.set(`${kind} ${phase}`, (this.actions.get(`${kind} ${phase}`) ?? 0) + 1);
    this.emit({ kind, from, to, reason, trigger, details: { phase, ...details } });
  }

  /**
   * An event from outside the status document (a script, the application monitor): the changes
   * the document shows are reported first, so that causes come before what they caused.
   */
  report(d: EventDraft): TandemEvent {
    this.refresh();
    return this.emit(d);
  }

  /** Stamps, keeps, logs (once), counts and hands out one event. */
  emit(d: EventDraft): TandemEvent {
    const b = boundedDraft(d);
    const e = this.opts.history.append({ time: this.opts.clock.now(), node: this.opts.node, ...b });
    this.counts.set(e.kind, (this.counts.get(e.kind) ?? 0) + 1);
    if (e.kind === 'role') {
      this.roleChanges.set(e.trigger, (this.roleChanges.get(e.trigger) ?? 0) + 1);
      this.lastRole = e;
    }
    const fields = { event: e.seq, kind: e.kind, from: e.from, to: e.to, trigger: e.trigger, reason: e.reason, ...(Object.keys(e.details).length === 0 ? {} : { details: e.details }) };
    if (isWarning(e)) this.log.warn(fields, 'event');
    else this.log.info(fields, 'event');
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.log.error({ err, code: 'TANDEM_ERR_INTERNAL' }, 'events: a listener failed');
      }
    }
    return e;
  }

  /** Every event from now on (alerts, streams). Listeners must only queue: they run inline. */
  subscribe(listener: (e: TandemEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
