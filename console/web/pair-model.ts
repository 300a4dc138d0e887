// What the console says about the pair, in words for someone who does not know Tandem's
// internals: one health level (the favicon's colour), one headline, and per node the facts of
// its card. Pure: it reads the two nodes' status documents (or why one gave none) and their
// events, and is tested in Node. A node that does not answer is said to be so, never guessed.
import type { AgentStatus, NodeStateName } from '../../agent/control/status.ts';
import type { TandemEvent } from '../../agent/events/event.ts';
import { ago, formatBytes, formatDuration, percent, timeOfDay } from './format.ts';

export type Health = 'ok' | 'warn' | 'bad';

export interface ApiError {
  code: string;
  message: string;
  hint?: string | undefined;
}

/** One node as the page last read it: its status document, or the error of the last reading. */
export type NodeReading = { name: string; at: number } & ({ ok: true; status: AgentStatus } | { ok: false; error: ApiError; last?: AgentStatus | undefined });

export interface PairSummary {
  pair: string;
  health: Health;
  /** One sentence: who serves, and whether the standby is ready. */
  headline: string;
  /** Further sentences, each a fact an operator must know now. */
  notes: string[];
  /** The words of the browser tab's title. */
  short: string;
  /** The node that is active and answers, if one is. */
  active: string | undefined;
}

export interface Fact {
  label: string;
  value: string;
  level?: Health | 'idle' | undefined;
}

/** The state words of docs/status.md, for people. */
export const STATE_WORDS: Record<NodeStateName, string> = {
  'in-sync': 'the standby holds everything the active wrote',
  syncing: 'catching up with the active',
  standalone: 'not connected to its peer',
  degraded: 'replication stopped by an alarm',
  paused: 'replication paused by an operator',
  starting: 'just started: waits to hear its peer before it serves',
  'failing-over': 'taking over the active role',
  switching: 'handing the active role over',
  demoting: 'stepping down to passive',
  'split-brain': 'both nodes changed data while apart',
};

export function stateLevel(state: string): Health {
  if (state === 'in-sync') return 'ok';
  if (state === 'split-brain' || state === 'degraded') return 'bad';
  return 'warn';
}

const worst = (a: Health, b: Health): Health => (a === 'bad' || b === 'bad' ? 'bad' : a === 'warn' || b === 'warn' ? 'warn' : 'ok');

/**
 * Bytes of a synchronisation the passive has: what the active journaled for it (`sync.bytesDone`
 * counts bytes read and journaled, which runs ahead of the channel) less what is still queued.
 */
export function syncDelivered(a: AgentStatus): number {
  const s = a.replication.sync;
  if (s === null) return 0;
  return Math.max(0, Math.min(s.bytesTotal, s.bytesDone - a.replication.queueBytes));
}

/** How far the standby is from the active, in the active's words (its view of the passive). */
function standbyPhrase(a: AgentStatus, peer: string): { text: string; short: string; health: Health } {
  const r = a.replication;
  if (!a.peer.connected) return { text: `${peer} is not connected: no standby is ready to take over`, short: `${peer} not connected`, health: 'warn' };
  if (r.splitBrain !== null) return { text: `${a.node} and ${peer} both changed data while apart (split brain): replication holds until an operator chooses which data to keep`, short: 'split brain', health: 'bad' };
  if (r.paused) return { text: `replication to ${peer} is paused by an operator: ${peer} falls behind`, short: `${peer} paused`, health: 'warn' };
  if (r.sync !== null) {
    const pct = percent(syncDelivered(a), r.sync.bytesTotal).toFixed(0);
    return { text: `${peer} is being synchronised (${pct}% of ${formatBytes(r.sync.bytesTotal)} received): not ready to take over yet`, short: `${peer} syncing ${pct}%`, health: 'warn' };
  }
  if (r.catchUp !== null) return { text: `${peer} is catching up (${formatBytes(r.catchUp.bytesLeft)} left): not ready to take over yet`, short: `${peer} catching up`, health: 'warn' };
  const peerAlarm = a.alarms.find((x) => x.source === 'peer');
  if (peerAlarm !== undefined) return { text: `${peer} reports a problem: ${peerAlarm.message}`, short: `${peer} alarm`, health: 'bad' };
  if (r.caughtUp) return { text: `${peer} is in sync and ready to take over`, short: `${peer} in sync`, health: 'ok' };
  return { text: `${peer} is ${formatDuration(r.lagMs)} behind (${Math.max(0, r.headSeq - r.appliedSeq)} changes to apply)`, short: `${peer} behind`, health: 'warn' };
}

export function summarise(nodes: readonly [NodeReading, NodeReading], now: number): PairSummary {
  const up = nodes.filter((n): n is NodeReading & { ok: true } => n.ok);
  const remembered = nodes.map((n) => (n.ok ? undefined : n.last)).find((s) => s !== undefined);
  const pair = up[0]?.status.pair ?? remembered?.pair ?? '';
  const down = nodes.filter((n) => !n.ok);
  const notes: string[] = [];
  const active = up.filter((n) => n.status.role === 'active');
  let health: Health = 'ok';
  let headline: string;
  let short: string;
  if (up.length === 0) {
    headline = `Neither ${nodes[0].name} nor ${nodes[1].name} answers: this page cannot tell whether the application is served.`;
    short = 'no node answers';
    health = 'bad';
  } else if (active.length === 2) {
    headline = `Both ${nodes[0].name} and ${nodes[1].name} are active: an operator must choose which node's data to keep.`;
    short = 'TWO ACTIVE NODES';
    health = 'bad';
  } else if (active.length === 1) {
    const a = active[0]!.status;
    const peer = a.peer.name;
    const peerReading = nodes.find((n) => n.name === peer);
    const serving = a.failover.serving;
    const busy = a.state === 'starting' || a.state === 'failing-over' || a.state === 'switching';
    const first = serving ? `${a.node} serves the application` : busy ? `${a.node} is active and starting the application (${a.state})` : `${a.node} is active but does NOT serve the application`;
    if (!serving) health = busy ? 'warn' : 'bad';
    const standby = standbyPhrase(a, peer);
    health = worst(health, standby.health);
    if (peerReading !== undefined && !peerReading.ok) {
      headline = `${first}; ${peer} does not answer${a.peer.connected ? ' (its heartbeats still arrive)' : ': no standby is ready to take over'}.`;
      short = `${a.node} ${serving ? 'serves' : 'NOT serving'} · ${peer} down`;
      health = worst(health, 'warn');
    } else {
      headline = `${first}; ${standby.text}.`;
      short = `${a.node} ${serving ? 'serves' : 'NOT serving'} · ${standby.short}`;
    }
  } else {
    // Only passive nodes answer: the active is gone, or one of them is taking over.
    const taking = up.find((n) => n.status.state === 'failing-over' || n.status.failover.pending === 'promote');
    if (taking !== undefined) {
      headline = `${taking.name} is taking over the active role; nothing serves the application until it has.`;
      short = `${taking.name} taking over`;
      health = 'warn';
    } else {
      headline = `No node serves the application: ${up.map((n) => `${n.name} is passive`).join(', ')}${down.length > 0 ? `, ${down.map((n) => `${n.name} does not answer`).join(', ')}` : ''}.`;
      short = 'NOTHING SERVES';
      health = 'bad';
    }
  }
  for (const n of up) {
    const s = n.status;
    if (s.maintenance) {
      notes.push(`Maintenance is on for ${s.node}: no automatic failover, switchover or application restart there.`);
      health = worst(health, 'warn');
    }
    // Said once, and not at all when an alarm below says it with its hint.
    const alarmSays = up.some((m) => m.status.alarms.some((x) => x.code === 'TANDEM_ERR_SPLIT_BRAIN'));
    if (s.state === 'split-brain' && active.length < 2 && !alarmSays && !notes.some((x) => x.startsWith('Split brain'))) {
      notes.push('Split brain: both nodes changed data while apart. Choose the node whose data to keep under Actions.');
      health = 'bad';
    }
    for (const a of s.alarms) {
      // The passive's own alarm shows once, on its own card; its echo on the active is the same.
      if (a.source === 'peer' && up.some((m) => m.name === s.peer.name)) continue;
      notes.push(`${s.node}: ${a.message}${a.hint === undefined ? '' : `. What to do: ${a.hint}`}`);
      health = worst(health, a.code === 'TANDEM_ERR_SPLIT_BRAIN' || a.code === 'TANDEM_ERR_TWO_ACTIVE' || a.code === 'TANDEM_ERR_FAILOVER_FAILED' ? 'bad' : 'warn');
    }
  }
  for (const n of down) notes.push(`${n.name} does not answer (${n.error.message})${n.error.hint === undefined ? '' : `. What to do: ${n.error.hint}`}`);
  void now;
  return { pair, health, headline, notes, short, active: active.length === 1 ? active[0]!.name : undefined };
}

/** The last time `node` entered in-sync, or left it, from its events (newest last). */
export function syncSince(events: readonly TandemEvent[], node: string, inSyncNow: boolean): number | undefined {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    if (e.node !== node || e.kind !== 'state') continue;
    if (inSyncNow && e.to === 'in-sync') return e.time;
    if (!inSyncNow && e.from === 'in-sync') return e.time;
  }
  return undefined;
}

/** The facts of one node's card, in order. */
export function nodeFacts(n: NodeReading, events: readonly TandemEvent[], now: number): Fact[] {
  if (!n.ok) {
    const facts: Fact[] = [{ label: 'Answer', value: `none: ${n.error.message}`, level: 'bad' }];
    if (n.error.hint !== undefined) facts.push({ label: 'What to do', value: n.error.hint });
    facts.push({ label: 'Last answer', value: n.last === undefined ? 'none since this page opened' : `${ago(n.at, now)}, when it was ${n.last.role} (${n.last.state})` });
    return facts;
  }
  const s = n.status;
  const facts: Fact[] = [];
  const role = s.role === 'active' ? (s.failover.serving ? 'active, serving the application' : 'active, NOT serving the application') : 'passive: the standby copy';
  facts.push({ label: 'Role', value: role, level: s.role === 'active' ? (s.failover.serving ? 'ok' : 'bad') : 'idle' });
  facts.push({ label: 'State', value: `${s.state} — ${STATE_WORDS[s.state] ?? s.state}`, level: stateLevel(s.state) });
  const inSync = s.state === 'in-sync';
  const since = syncSince(events, s.node, inSync);
  if (since !== undefined) facts.push({ label: inSync ? 'In sync since' : 'Out of sync since', value: `${timeOfDay(since)} (${ago(since, now)})` });
  facts.push({ label: 'Data generation', value: s.generation === '' ? 'none yet (never synchronised)' : `${s.generation.slice(0, 12)}, epoch ${s.failover.epoch}` });
  const c = s.failover.lastRoleChange;
  facts.push({ label: 'Last role change', value: c === null || c === undefined ? `none: ${s.role} since its agent started` : `${c.from} → ${c.to} at ${timeOfDay(c.at)} (${ago(c.at, now)}): ${c.reason}${c.trigger === undefined ? '' : ` [${c.trigger}]`}` });
  facts.push({ label: 'Maintenance', value: s.maintenance ? 'on: no automatic role change here' : 'off', level: s.maintenance ? 'warn' : undefined });
  facts.push({ label: 'Agent', value: `pid ${s.pid}, up ${formatDuration(now - s.startedAt)}` });
  return facts;
}

/** The label of a node's role badge. */
export function roleBadge(n: NodeReading): { text: string; level: Health | 'idle' } {
  if (!n.ok) return { text: 'NOT ANSWERING', level: 'bad' };
  const s = n.status;
  if (s.role === 'active') return s.failover.serving ? { text: 'ACTIVE · SERVING', level: 'ok' } : { text: 'ACTIVE · NOT SERVING', level: s.state === 'starting' || s.state === 'failing-over' ? 'warn' : 'bad' };
  return { text: 'PASSIVE', level: 'idle' };
}
