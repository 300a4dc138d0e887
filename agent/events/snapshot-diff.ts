// What the state tracker compares: the few facts of a status document an operator must hear
// about when they change, and the events each change makes. Pure: the tracker feeds it the
// document it just built and the snapshot of the last one.
import type { AgentStatus } from '../control/index.ts';
import type { EventDraft, Trigger } from './event.ts';

export interface AlarmFact {
  code: string;
  source: string;
  message: string;
  hint?: string | undefined;
}

export interface Snapshot {
  role: string;
  state: string;
  serving: boolean;
  channel: string;
  public: string;
  presence: string;
  paused: boolean;
  maintenance: boolean;
  /** The lag is beyond alerts.lagOver (with hysteresis, see `lagBeyond`). */
  lagBeyond: boolean;
  lagMs: number;
  /** By `code source`: one event per alarm raised and per alarm cleared. */
  alarms: Record<string, AlarmFact>;
  /** The failover decision's reason and trigger (why the role and the action are what they are). */
  reason: string;
  trigger: Trigger;
  epoch: number;
  headSeq: number;
  appliedSeq: number;
  peer: string;
  /** Each root's consistency mode (snapshot, file) and its reason. */
  consistency: Record<string, { mode: string; reason: string }>;
  /** When this node's last promotion discarded records past the last complete point (0: never). */
  discardedAt: number;
}

/**
 * Beyond once the lag passes the bound; back within once it is under half of it: a lag that
 * hovers about the bound must not raise an event (and an alert) every tick.
 */
export function lagBeyond(was: boolean, lagMs: number, boundMs: number): boolean {
  return was ? lagMs > boundMs / 2 : lagMs > boundMs;
}

export function snapshotOf(s: AgentStatus, prev: Snapshot | undefined, lagBoundMs: number): Snapshot {
  const alarms: Record<string, AlarmFact> = {};
  for (const a of s.alarms) {
    const key = `${a.code} ${a.source}`;
    // Several alarms of one code and source (capture problems, one per path): the first speaks.
    alarms[key] ??= { code: a.code, source: a.source, message: a.message, ...(a.hint === undefined ? {} : { hint: a.hint }) };
  }
  return {
    role: s.role,
    state: s.state,
    serving: s.failover.serving,
    channel: s.links.channel,
    public: s.links.public,
    presence: s.failover.presence,
    paused: s.replication.paused,
    maintenance: s.maintenance,
    lagBeyond: lagBeyond(prev?.lagBeyond ?? false, s.replication.lagMs, lagBoundMs),
    lagMs: s.replication.lagMs,
    alarms,
    reason: s.failover.reason,
    trigger: s.failover.trigger,
    epoch: s.failover.epoch,
    headSeq: s.replication.headSeq,
    appliedSeq: s.replication.appliedSeq,
    peer: s.peer.name,
    consistency: Object.fromEntries((s.replication.consistency ?? []).map((c) => [c.root, { mode: c.mode, reason: c.reason }])),
    discardedAt: s.replication.discarded?.at ?? 0,
  };
}

/** Why the node is in `state`, in words, from the document that put it there. */
export function stateReason(s: AgentStatus): string {
  const r = s.replication;
  switch (s.state) {
    case 'failing-over':
    case 'switching':
    case 'demoting':
    case 'starting':
      return s.failover.reason;
    case 'split-brain':
      return s.alarms.find((a) => a.code === 'TANDEM_ERR_SPLIT_BRAIN' || a.code === 'TANDEM_ERR_TWO_ACTIVE')?.message ?? 'split brain';
    case 'standalone':
      return s.links.channel === 'down' ? 'the channel to the peer is down' : 'no replication session runs on the channel';
    case 'degraded':
      return s.alarms[0]?.message ?? 'an alarm holds replication';
    case 'paused':
      return s.role === 'active' ? 'replication paused by an operator (tandem resume ends it)' : 'the active paused replication (tandem resume ends it)';
    case 'syncing':
      if (r.sync !== null) return `synchronisation ${r.sync.id} running`;
      if (r.catchUp !== null) return 'catching up from the journal';
      return `behind by ${r.lagMs} ms, beyond what counts as in sync`;
    case 'in-sync':
      return 'caught up with the active';
  }
}

/** What made the state change: the decision's trigger for role changes, an operator for a pause. */
function stateTrigger(s: AgentStatus): Trigger {
  if (['failing-over', 'switching', 'demoting'].includes(s.state)) return s.failover.trigger;
  if (s.state === 'paused') return 'operator';
  return 'automatic';
}

export interface DiffContext {
  /** The document `next` was made from (reasons are read from it). */
  status: AgentStatus;
  lagBoundMs: number;
  /** Why maintenance or a pause changed, as the operator gave it. */
  operatorReason?: { maintenance?: string | undefined; paused?: string | undefined } | undefined;
}

/**
 * The events that take `prev` to `next`, causes first: links and alarms, then the operator's
 * holds, then role, serving and state, then the lag. Nothing before the first snapshot: the
 * agent's start event carries it.
 */
export function diffSnapshots(prev: Snapshot | undefined, next: Snapshot, ctx: DiffContext): EventDraft[] {
  if (prev === undefined) return [];
  const out: EventDraft[] = [];
  const s = ctx.status;
  const link = (name: string, from: string, to: string, reason: string) => out.push({ kind: 'link', from, to, reason, trigger: 'automatic', details: { link: name } });
  if (prev.channel !== next.channel) {
    link('channel', prev.channel, next.channel, next.channel === 'up' ? `heartbeats from ${next.peer} arrive` : `nothing from ${next.peer} (heartbeat or data) within heartbeat.interval × heartbeat.threshold, or the connection closed`);
  }
  if (prev.public !== next.public) {
    link('public', prev.public, next.public, next.public === 'up' ? 'a public check target answers' : next.public === 'down' ? 'every public check target failed links.public.threshold rounds in a row' : 'public checks not decided yet');
  }
  if (prev.presence !== next.presence) link('presence', prev.presence, next.presence, `presence probe of ${next.peer}: ${next.presence}`);
  for (const [key, a] of Object.entries(next.alarms)) {
    if (prev.alarms[key] === undefined) out.push({ kind: 'alarm', from: 'clear', to: 'raised', reason: a.message, trigger: 'automatic', details: { code: a.code, source: a.source, ...(a.hint === undefined ? {} : { hint: a.hint }) } });
  }
  for (const [key, a] of Object.entries(prev.alarms)) {
    if (next.alarms[key] === undefined) out.push({ kind: 'alarm', from: 'raised', to: 'clear', reason: `cleared: ${a.message}`, trigger: 'automatic', details: { code: a.code, source: a.source } });
  }
  if (prev.maintenance !== next.maintenance) {
    out.push({ kind: 'maintenance', from: prev.maintenance ? 'on' : 'off', to: next.maintenance ? 'on' : 'off', reason: ctx.operatorReason?.maintenance ?? (next.maintenance ? 'maintenance mode on: no automatic role change' : 'maintenance mode off'), trigger: 'operator' });
  }
  if (prev.paused !== next.paused) {
    const own = s.role === 'active';
    const reason = ctx.operatorReason?.paused ?? (next.paused ? (own ? 'replication paused by an operator' : 'the active paused replication') : own ? 'replication resumed by an operator' : 'the active resumed replication');
    out.push({ kind: 'replication', from: prev.paused ? 'paused' : 'running', to: next.paused ? 'paused' : 'running', reason, trigger: 'operator' });
  }
  if (prev.role !== next.role) out.push({ kind: 'role', from: prev.role, to: next.role, reason: next.reason, trigger: next.trigger, details: { epoch: next.epoch } });
  if (prev.serving !== next.serving) out.push({ kind: 'serving', from: prev.serving ? 'serving' : 'stopped', to: next.serving ? 'serving' : 'stopped', reason: next.reason, trigger: next.trigger });
  if (prev.state !== next.state) {
    out.push({ kind: 'state', from: prev.state, to: next.state, reason: stateReason(s), trigger: stateTrigger(s), details: { headSeq: next.headSeq, appliedSeq: next.appliedSeq, lagMs: next.lagMs } });
  }
  for (const [root, c] of Object.entries(next.consistency)) {
    const was = prev.consistency[root];
    // A role change brings another capture (or none): its first word on a root is news too.
    if (was === undefined ? prev.role !== next.role : was.mode !== c.mode) {
      out.push({ kind: 'consistency', from: was?.mode ?? null, to: c.mode, reason: `${root}: ${c.reason}`, trigger: 'automatic', details: { root } });
    }
  }
  const d = s.replication.discarded;
  if (next.discardedAt !== prev.discardedAt && d !== undefined && d !== null) {
    out.push({
      kind: 'discard',
      from: `seq ${d.lastSeq}`,
      to: `seq ${d.pointId}`,
      reason: `took over at the last complete consistency point (record ${d.pointId}): ${d.records} records (${d.bytes} bytes of file data) the old active journaled past it are discarded, written between ${new Date(d.fromTs).toISOString()} and ${new Date(d.toTs).toISOString()}`,
      trigger: next.trigger,
      details: { ...d },
    });
  }
  if (prev.lagBeyond !== next.lagBeyond) {
    out.push({
      kind: 'lag',
      from: prev.lagBeyond ? 'beyond' : 'within',
      to: next.lagBeyond ? 'beyond' : 'within',
      reason: next.lagBeyond ? `replication lag ${next.lagMs} ms is beyond alerts.lagOver (${ctx.lagBoundMs} ms)` : `replication lag back to ${next.lagMs} ms`,
      trigger: 'automatic',
      details: { lagMs: next.lagMs, boundMs: ctx.lagBoundMs },
    });
  }
  return out;
}
