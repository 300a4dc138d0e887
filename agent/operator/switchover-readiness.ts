// Whether a switchover may start now, what it would do and how long its drain would take: read
// by the agent before it takes an operator's switchover, by `tandem switchover --dry-run`, and
// by the CLI's own precheck, so all three say the same thing in the same words. Pure: it reads
// the active's status document and the recent apply rate.
//
// "In sync" for a switchover is the bounded reading (replication.caughtUp): the passive is
// within failover.maxLagOnFailover and nothing else holds it, because the switchover stops the
// applications and then drains the rest. The exact reading (replication.inSync) is almost never
// true under a steady write load, and refusing on it refused every switchover under load.
import type { AgentStatus } from '../control/index.ts';

export interface DrainEstimate {
  /** Records journaled and not yet applied by the passive. */
  records: number;
  bytes: number;
  /** Changes capture has seen and not journaled yet (the drain journals them first). */
  pendingPaths: number;
  lagMs: number;
  /** Time to apply what is left at the recent rate; null when no rate is known yet. */
  estimateMs: number | null;
}

export interface SwitchoverReadiness {
  ready: boolean;
  /** Why not, in words that never contradict the figures beside them. */
  refusal: string | null;
  hint: string | null;
  /** A refusal that --force does not lift (nothing could make that switchover clean). */
  forceable: boolean;
  from: string;
  to: string;
  drain: DrainEstimate;
  /** What the switchover would do, in order. */
  steps: string[];
}

/** What the drain waits on at most (agent/roles SWITCHOVER_DRAIN_MS): the estimate is checked against it. */
export const SWITCHOVER_DRAIN_LIMIT_MS = 30_000;

export function drainEstimate(s: AgentStatus, recordsPerSecond: number | undefined, settleMs: number): DrainEstimate {
  const r = s.replication;
  const records = Math.max(0, r.headSeq - r.appliedSeq);
  const pendingPaths = s.capture?.pendingPaths ?? 0;
  let estimateMs: number | null = null;
  if (records === 0) estimateMs = pendingPaths > 0 ? settleMs : 0;
  else if (recordsPerSecond !== undefined && recordsPerSecond > 0) estimateMs = Math.round((records / recordsPerSecond) * 1000) + (pendingPaths > 0 ? settleMs : 0);
  return { records, bytes: r.queueBytes, pendingPaths, lagMs: r.lagMs, estimateMs };
}

/** Why the passive is not caught up, from the same document whose figures go beside it. */
function notCaughtUp(s: AgentStatus, to: string, boundMs: number): string {
  const r = s.replication;
  if (r.sync !== null) {
    const pct = r.sync.bytesTotal > 0 ? ((100 * r.sync.bytesDone) / r.sync.bytesTotal).toFixed(1) : '0.0';
    return `${to} is being synchronised (synchronisation ${r.sync.id}, ${pct}% done)`;
  }
  if (r.catchUp !== null) return `${to} is catching up from the journal (${r.catchUp.bytesLeft} bytes and ${r.catchUp.pathsLeft} paths left)`;
  if (r.splitBrain !== null) return `${s.node} and ${to} are in split brain`;
  const peerAlarm = s.alarms.find((a) => a.source === 'peer');
  if (peerAlarm !== undefined) return `${to} reports ${peerAlarm.code}: ${peerAlarm.message}`;
  if (r.lagMs > boundMs) return `${to} is ${r.lagMs} ms behind, beyond failover.maxLagOnFailover (${boundMs} ms): applied ${r.appliedSeq} of ${r.headSeq}`;
  return `${to} has no replication session running yet (replication.start: ${r.start ?? 'none'})`;
}

export function switchoverReadiness(s: AgentStatus, o: { force: boolean; boundMs: number; recordsPerSecond: number | undefined; settleMs: number }): SwitchoverReadiness {
  const from = s.node;
  const to = s.peer.name;
  const drain = drainEstimate(s, o.recordsPerSecond, o.settleMs);
  const base = { from, to, drain, steps: steps(s, drain) };
  const no = (refusal: string, hint: string, forceable = false): SwitchoverReadiness => ({ ...base, ready: false, refusal, hint, forceable });
  if (s.role !== 'active') return no(`${from} is not active`, 'ask the active node: tandem switchover -c CONFIG finds it by itself');
  if (s.failover.phase === 'busy') return no(`a role change is already running on ${from} (${s.failover.pending ?? 'unknown'})`, 'wait until it ends: tandem status -c CONFIG');
  if (s.state === 'split-brain') return no(`${from} reports split brain`, 'an operator must decide which node keeps its data: tandem resolve --keep NODE');
  if (!s.peer.connected) return no(`${from} is not connected to ${to} (channel ${s.links.channel})`, `start ${to}'s agent or repair the channel; a switchover drains to a connected passive`);
  if (s.peer.role !== 'passive') return no(`${to} is ${s.peer.role ?? 'of unknown role'}, not passive`, 'tandem status -c CONFIG on both nodes');
  if (s.replication.paused) return no(`replication to ${to} is paused: a switchover could not drain`, 'tandem resume -c CONFIG first');
  // The passive's copy holds changes made there by hand (agent/standby): it would serve them.
  if (!o.force && s.alarms.some((x) => x.code === 'TANDEM_ERR_PASSIVE_MODIFIED')) {
    return no(`${to}'s copy was changed by hand (TANDEM_ERR_PASSIVE_MODIFIED)`, 'run tandem verify --repair -c CONFIG first, or add --force: the passive then serves the changes made there by hand', true);
  }
  if (!o.force && !s.replication.caughtUp) {
    return no(notCaughtUp(s, to, o.boundMs), 'wait until tandem status shows in-sync, or add --force: the agent still drains everything before it hands over, and rolls back if that takes too long', true);
  }
  return { ...base, ready: true, refusal: null, hint: null, forceable: false };
}

function steps(s: AgentStatus, d: DrainEstimate): string[] {
  const to = s.peer.name;
  const estimate = d.estimateMs === null ? 'time unknown (no apply rate measured yet)' : `about ${(d.estimateMs / 1000).toFixed(1)} s`;
  return [
    `stop the applications on ${s.node} (its stop script)`,
    `journal what capture holds (${d.pendingPaths} paths) and wait until ${to} applied everything: ${d.records} records (${d.bytes} bytes) now, ${estimate}; rolled back after ${SWITCHOVER_DRAIN_LIMIT_MS / 1000} s`,
    `hand the role over to ${to} with epoch ${s.failover.epoch + 1}`,
    `${to} starts the applications (its start script)`,
    `${s.node} becomes passive; replication then runs from ${to} to ${s.node}`,
  ];
}
