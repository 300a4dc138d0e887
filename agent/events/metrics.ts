// Tandem's metrics (docs/metrics.md), built at each scrape from the status document and the
// counters the state tracker, the scripts, the alert hooks and the control API keep. A family is
// always present, with every label value it can take, so that an alert rule written against it
// never meets a series that is missing because nothing happened yet.
import type { AgentStatus, NodeStateName } from '../control/index.ts';
import { EVENT_KINDS, TRIGGERS } from './event.ts';
import { renderMetrics, type MetricFamily, type Sample } from './prometheus-text.ts';

export const NODE_STATES: readonly NodeStateName[] = ['standalone', 'syncing', 'in-sync', 'degraded', 'paused', 'starting', 'failing-over', 'switching', 'demoting', 'split-brain'];
const PRESENCE_STATES = ['unknown', 'unconfigured', 'alive', 'stalled', 'dead', 'unreachable', 'invalid', 'error'];
const SCRIPTS = ['start', 'stop', 'check'] as const;
export const CONTROL_REFUSALS = ['host', 'token', 'origin', 'connections', 'streams'] as const;
export type ControlRefusal = (typeof CONTROL_REFUSALS)[number];

export interface ScriptStats {
  ok: number;
  failed: number;
  durationMsSum: number;
}

export interface MetricsInputs {
  status: AgentStatus;
  /** From the state tracker. */
  events: ReadonlyMap<string, number>;
  roleChanges: ReadonlyMap<string, number>;
  actions: ReadonlyMap<string, number>;
  recordsReplicated: number;
  scripts: ReadonlyMap<string, ScriptStats>;
  alerts: { delivered: number; failed: number; dropped: number };
  controlRefusals: ReadonlyMap<string, number>;
  fsyncs: number;
}

const bool = (b: boolean): number => (b ? 1 : 0);
const seconds = (ms: number | null | undefined): number => (ms === null || ms === undefined ? NaN : ms / 1000);

function gauge(name: string, help: string, samples: Sample[] | number): MetricFamily {
  return { name, help, type: 'gauge', samples: typeof samples === 'number' ? [{ value: samples }] : samples };
}

function counter(name: string, help: string, samples: Sample[] | number): MetricFamily {
  return { name, help, type: 'counter', samples: typeof samples === 'number' ? [{ value: samples }] : samples };
}

function oneHot(label: string, values: readonly string[], current: string): Sample[] {
  return values.map((v) => ({ labels: { [label]: v }, value: bool(v === current) }));
}

export function metricFamilies(i: MetricsInputs): MetricFamily[] {
  const s = i.status;
  const r = s.replication;
  const alarmCodes = new Map<string, number>();
  for (const a of s.alarms) alarmCodes.set(`${a.code}\u0000${a.source}`, 1);
  return [
    gauge('tandem_info', 'Constant 1, labelled with this node, its pair, its peer and the generation of its data.', [{ labels: { node: s.node, pair: s.pair, peer: s.peer.name, generation: s.generation }, value: 1 }]),
    gauge('tandem_start_time_seconds', 'When the agent started (seconds since the epoch).', s.startedAt / 1000),
    gauge('tandem_role', 'The role this node holds: 1 for the current one.', oneHot('role', ['active', 'passive'], s.role)),
    gauge('tandem_state', 'The node state word (docs/status.md): 1 for the current one.', oneHot('state', NODE_STATES, s.state)),
    gauge('tandem_serving', '1 while this node holds the public identity (its start script succeeded, no stop since).', bool(s.failover.serving)),
    gauge('tandem_epoch', 'The promotion counter; a failover or switchover raises it.', s.failover.epoch),
    gauge('tandem_maintenance', '1 while an operator holds automatic role changes (tandem maintenance on).', bool(s.maintenance)),
    gauge('tandem_replication_paused', '1 while an operator paused replication (tandem pause).', bool(r.paused)),
    gauge('tandem_link_up', 'Links: channel (heartbeats arrive) and public (own public checks); NaN while not decided.', [
      { labels: { link: 'channel' }, value: bool(s.links.channel === 'up') },
      { labels: { link: 'public' }, value: s.links.public === 'unknown' ? NaN : bool(s.links.public === 'up') },
    ]),
    gauge('tandem_peer_presence', "This node's presence probe of its peer: 1 for the current verdict.", oneHot('state', PRESENCE_STATES, s.failover.presence)),
    gauge('tandem_heartbeat_last_seconds', 'Seconds since the peer\'s last heartbeat; NaN if none came since the agent started.', seconds(s.links.heartbeat.lastHeardMsAgo)),
    gauge('tandem_heartbeat_longest_gap_seconds', 'Longest silence (no heartbeat, no other byte from the peer) on one connection since the agent started.', seconds(s.links.heartbeat.longestGapMs)),
    gauge('tandem_heartbeat_rtt_seconds', 'The channel heartbeat round-trip, smoothed; NaN while the channel is down or not yet measured.', seconds(s.links.heartbeat.rttMs)),
    gauge('tandem_channel_delay_seconds', "How late the peer's word arrives on the channel while it sends data: the last heartbeat round-trip, or longer while heartbeats wait behind data; 0 below a quarter interval, or on a link that carried only heartbeats for two intervals; NaN while the channel is down.", seconds(s.links.heartbeat.delayMs)),
    gauge('tandem_replication_lag_seconds', 'Age of the oldest change journaled and not yet applied.', seconds(r.lagMs)),
    gauge('tandem_replication_lag_records', 'Records journaled by the active and not yet applied by the passive.', Math.max(0, r.headSeq - r.appliedSeq)),
    gauge('tandem_replication_queue_bytes', 'Bytes journaled and not acknowledged (active), or received and not applied (passive).', r.queueBytes),
    gauge('tandem_replication_head_sequence', 'The last sequence the active journaled (on the passive: as last heard).', r.headSeq),
    gauge('tandem_replication_applied_sequence', 'The last sequence the passive applied (on the active: as acknowledged).', r.appliedSeq),
    gauge('tandem_replication_in_sync', '1 when the passive has applied everything the active journaled.', bool(r.inSync)),
    gauge('tandem_replication_caught_up', '1 when the passive is within failover.maxLagOnFailover and nothing else holds it (state in-sync).', bool(r.caughtUp)),
    gauge('tandem_sync_remaining_bytes', 'Block data an initial synchronisation still has to send; 0 when none runs.', r.sync === null ? 0 : Math.max(0, r.sync.bytesTotal - r.sync.bytesDone)),
    gauge('tandem_capture_pending_paths', 'Changes capture has seen and not yet journaled (active).', s.capture?.pendingPaths ?? 0),
    gauge('tandem_replication_rpo_seconds', 'Data at risk: with consistency points, the age of the newest point the passive holds; otherwise the lag. NaN with points while the passive holds none.', seconds(r.rpoMs)),
    gauge('tandem_replication_point_sequence', 'The newest consistency point the passive holds: the sequence of its last record (NaN without points).', r.point === null || r.point === undefined ? NaN : r.point.id),
    gauge('tandem_consistency_mode', 'How each protected root is captured (or would be after a takeover): 1 for its current mode, snapshot or file.', (r.consistency ?? []).flatMap((c) => (['snapshot', 'file'] as const).map((m) => ({ labels: { root: c.root, mode: m }, value: bool(c.mode === m) })))),
    gauge('tandem_points_staged_records', 'Passive: records held and not applied until their consistency point is complete.', r.staged?.records ?? 0),
    counter('tandem_points_total', 'Active: consistency points since the agent started, by event: taken (snapshots), closed (by a batch), confirmed (nothing changed since), failed (a snapshot or its change list failed).', (['taken', 'closed', 'confirmed', 'failed'] as const).map((e) => ({ labels: { event: e }, value: s.capture?.points?.[e] ?? 0 }))),
    gauge('tandem_promotion_discarded_records', "Records the node's last promotion left out, past the last complete consistency point (0: none).", r.discarded?.records ?? 0),
    gauge('tandem_verify_differences', 'Paths the last tandem verify found different; NaN before the first.', s.verify === null ? NaN : s.verify.differences),
    gauge('tandem_alarm', '1 for every alarm raised now, by code and source.', [...alarmCodes.keys()].map((k) => ({ labels: { code: k.split('\u0000')[0]!, source: k.split('\u0000')[1]! }, value: 1 }))),
    gauge('tandem_alarms', 'Alarms raised now.', s.alarms.length),
    gauge('tandem_role_changes_last_hour', 'Automatic role changes in the last hour (damped beyond failover.maxRoleChangesPerHour).', s.failover.roleChangesLastHour),
    counter('tandem_replication_records_total', 'Records the passive applied (on the active: saw acknowledged) since the agent started.', i.recordsReplicated),
    counter('tandem_channel_bytes_total', 'Bytes on the channel\'s socket since the agent started (TLS and framing included).', [
      { labels: { direction: 'in' }, value: s.channel.bytesIn },
      { labels: { direction: 'out' }, value: s.channel.bytesOut },
    ]),
    counter('tandem_fsyncs_total', 'fsync calls made by the journal, the receive log and the applier.', i.fsyncs),
    counter('tandem_role_changes_total', 'Role changes of this node since the agent started, by trigger.', TRIGGERS.map((t) => ({ labels: { trigger: t }, value: i.roleChanges.get(t) ?? 0 }))),
    counter('tandem_failovers_total', 'Failovers of this node (it took over), by phase: started, done, failed.', ['started', 'done', 'failed'].map((p) => ({ labels: { phase: p }, value: i.actions.get(`failover ${p}`) ?? 0 }))),
    counter('tandem_switchovers_total', 'Switchovers this node took part in, by phase: started, done, failed.', ['started', 'done', 'failed'].map((p) => ({ labels: { phase: p }, value: i.actions.get(`switchover ${p}`) ?? 0 }))),
    counter('tandem_script_runs_total', 'Runs of the start, stop and check scripts, by result.', SCRIPTS.flatMap((n) => (['ok', 'failed'] as const).map((res) => ({ labels: { script: n, result: res }, value: i.scripts.get(n)?.[res] ?? 0 })))),
    {
      name: 'tandem_script_duration_seconds',
      help: 'Time the scripts ran, summed, and how many runs.',
      type: 'summary',
      samples: SCRIPTS.flatMap((n) => {
        const st = i.scripts.get(n);
        return [
          { suffix: '_sum', labels: { script: n }, value: (st?.durationMsSum ?? 0) / 1000 },
          { suffix: '_count', labels: { script: n }, value: (st?.ok ?? 0) + (st?.failed ?? 0) },
        ];
      }),
    },
    counter('tandem_events_total', 'Events since the agent started, by kind (docs/events.md).', EVENT_KINDS.map((k) => ({ labels: { kind: k }, value: i.events.get(k) ?? 0 }))),
    counter('tandem_alerts_total', 'Alert deliveries (command or webhook), by result: delivered, failed (after every retry), dropped (queue full).', [
      { labels: { result: 'delivered' }, value: i.alerts.delivered },
      { labels: { result: 'failed' }, value: i.alerts.failed },
      { labels: { result: 'dropped' }, value: i.alerts.dropped },
    ]),
    counter('tandem_control_refusals_total', 'Requests the control API refused, by reason: host, token, origin, connections, streams.', CONTROL_REFUSALS.map((k) => ({ labels: { reason: k }, value: i.controlRefusals.get(k) ?? 0 }))),
  ];
}

export function renderTandemMetrics(i: MetricsInputs): string {
  return renderMetrics(metricFamilies(i));
}
