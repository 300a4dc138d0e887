// The one status document (DESIGN.md "Interfaces"): what `tandem status --json`, the console
// and the tests all read. A pure function of the components' own statuses, so every field
// has a single source.
import type { Role } from '../../shared/protocol/index.ts';
import type { CaptureStatus } from '../capture/index.ts';
import type { FailoverStatus, PeerView } from '../failover/index.ts';
import type { Alarm, ReceiverStatus, SenderStatus } from '../replication/index.ts';
import type { VerifySummary } from '../verify/index.ts';

export type NodeStateName = 'standalone' | 'syncing' | 'in-sync' | 'degraded' | 'paused' | 'starting' | 'failing-over' | 'switching' | 'demoting' | 'split-brain';

export interface AgentStatus {
  node: string;
  pair: string;
  role: Role;
  state: NodeStateName;
  generation: string;
  /** This agent's release and the highest channel protocol it speaks (shared/version.ts). */
  version: { tandem: string; protocol: number };
  /**
   * `version`: what the peer's last hello said: its release (null from a protocol-1 agent), the
   * highest protocol it speaks, and the protocol of that session (null until a hello came).
   */
  peer: { name: string; connected: boolean; role: Role | null; version: { tandem: string | null; protocol: number; session: number } | null };
  links: {
    channel: 'up' | 'down';
    public: 'up' | 'down' | 'unknown';
    /** Channel heartbeats: how long ago the last one came, and the longest silence between two. */
    heartbeat: {
      lastHeardMsAgo: number | null;
      longestGapMs: number;
      /** Smoothed round-trip of the channel heartbeats (ms); null while down or not yet measured. */
      rttMs?: number | null;
      /**
       * How late the peer's word arrives while it sends data (ms): the last round-trip, or longer
       * while heartbeats wait for their echo (queued behind data); 0 below a quarter interval,
       * and once only heartbeats came for two intervals. On the passive, the least its lag is.
       * Null while the channel is down.
       */
      delayMs?: number | null;
    };
  };
  replication: {
    /** The last sequence the active journaled (on the passive: as last heard from it). */
    headSeq: number;
    /** The last sequence the passive applied (on the active: as last acknowledged). */
    appliedSeq: number;
    lagMs: number;
    queueBytes: number;
    inSync: boolean;
    /**
     * Caught up within failover.maxLagOnFailover, with no synchronisation, catch-up, split brain
     * or pause: what `state: in-sync` means, and what a switchover needs (its drain closes the
     * rest). `inSync` is the exact reading of the same moment.
     */
    caughtUp: boolean;
    /** Replication paused by an operator (tandem pause); on the passive, as the active said. */
    paused: boolean;
    sync: { id: string; bytesDone: number; bytesTotal: number; etaMs: number | null } | null;
    /** Active: how the passive's session began (resume, catch up, synchronise, split brain). */
    start: string | null;
    /** While a split brain holds replication: where the two lines agreed and what each changed since. */
    splitBrain: { generation: string; commonSeq: number; activeChanges: number; passiveChanges: number; resolving: string | null } | null;
    /** While the passive catches up from the journal (docs/replication.md): what is left. */
    catchUp: { bytesLeft: number; pathsLeft: number } | null;
    /**
     * How each protected root of this node is captured (or would be, were it active): `snapshot`
     * (consistency points: the copy is always one instant of the root) or `file` (file-level
     * consistency only), with the reason.
     */
    consistency?: { root: string; mode: 'snapshot' | 'file'; reason: string }[];
    /**
     * The newest consistency point the passive holds whole (on the active: as acknowledged): the
     * sequence of its last record, the instant the active's disk was that state, and its age now.
     * Null without points (file-level consistency) or before the first.
     */
    point?: { id: number; at: number; ageMs: number } | null;
    /**
     * The data at risk, in milliseconds of the active's writes: with consistency points, the age
     * of the newest point the passive holds; otherwise the lag (changes seen on the active and not
     * yet journaled count). Null with points while the passive holds none yet.
     */
    rpoMs?: number | null;
    /** Passive, with points: batches held but not applied until their point is complete. */
    staged?: { batches: number; records: number; bytes: number } | null;
    /** Left out at this node's last promotion: what the old active journaled past the last complete point. */
    discarded?: { at: number; records: number; bytes: number; firstSeq: number; lastSeq: number; fromTs: number; toTs: number; pointId: number; pointAt: number | null } | null;
  };
  alarms: { code: string; message: string; hint?: string; since?: number; source: string }[];
  capture: {
    state: string;
    pendingPaths: number;
    filesHashed: number;
    bytesHashed: number;
    waitingForSpace: boolean;
    lastScan: CaptureStatus['lastScan'] | null;
    /** Consistency points (snapshot mode): counts since start, and the last point's figures (ms). */
    points?: CaptureStatus['points'] | null;
  } | null;
  channel: { bytesIn: number; bytesOut: number };
  /** The last or running `tandem verify` (on the active node only; null elsewhere or never run). */
  verify: VerifySummary | null;
  failover: {
    phase: string;
    /** The action running now: serve, promote, demote, switchover or release. */
    pending: string | null;
    serving: boolean;
    epoch: number;
    reason: string;
    /** What set `reason` in motion: `automatic`, `operator` or `planned` (docs/events.md). */
    trigger: 'automatic' | 'operator' | 'planned';
    /** The passive's presence probe of its peer: alive, stalled, dead, unreachable… */
    presence: string;
    roleChangesLastHour: number;
    /**
     * The node's last role change, with why and what triggered it: from its event history
     * (agent/events), so also one from before the agent restarted; null if it never changed role.
     */
    lastRoleChange?: { at: number; from: Role; to: Role; epoch: number; reason: string; trigger?: string; seq?: number } | null;
  };
  /** An operator's maintenance hold: no automatic role change on this node (tandem maintenance). */
  maintenance: boolean;
  /** The protected roots as this node's manifest holds them (on the passive: as applied). */
  roots?: RootSummary[];
  pid: number;
  startedAt: number;
}

export interface RootSummary {
  name: string;
  path: string;
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
}

export interface StatusInputs {
  node: string;
  pair: string;
  peerName: string;
  role: Role;
  generation: string;
  sender?: SenderStatus | undefined;
  receiver?: ReceiverStatus | undefined;
  capture?: CaptureStatus | undefined;
  failover: FailoverStatus;
  /** The peer as its last heartbeat described it (while the channel is up). */
  peer: PeerView | undefined;
  /** The channel heartbeat's figures; `delayMs`: how late the peer's word arrives (ChannelObservation.delayMs). */
  heartbeat: { lastHeardAt: number | undefined; longestGapMs: number; rttMs?: number | undefined; delayMs?: number | undefined };
  channel: { bytesIn: number; bytesOut: number };
  verify?: VerifySummary | undefined;
  /** failover.maxLagOnFailover: the most a passive may be behind and still count as caught up. */
  inSyncBoundMs?: number | undefined;
  /** Passive: how far behind the active it was at its last contact (Receiver.lagAtLastContact). */
  lagAtContactMs?: number | undefined;
  /** How each root is captured (active: capture's own; passive: what it would be as active). */
  consistency?: { root: string; mode: 'snapshot' | 'file'; reason: string }[] | undefined;
  /** What this node's last promotion left out (RoleController). */
  discarded?: NonNullable<AgentStatus['replication']['discarded']> | undefined;
  version?: { tandem: string; protocol: number } | undefined;
  peerVersion?: { tandem: string | null; protocol: number; session: number } | undefined;
  roots?: RootSummary[] | undefined;
  startedAt: number;
  now: number;
}

function alarmOf(a: Alarm | { code: string; message: string; hint?: string | undefined }, source: string): AgentStatus['alarms'][number] {
  return { code: a.code, message: a.message, ...(a.hint === undefined ? {} : { hint: a.hint }), ...('since' in a ? { since: a.since } : {}), source };
}

/** The passive learns of a split brain from the active's message, kept as its alarm's details. */
function splitBrainOf(a: Alarm | undefined): AgentStatus['replication']['splitBrain'] {
  if (a?.code !== 'TANDEM_ERR_SPLIT_BRAIN' || a.details === undefined) return null;
  const d = a.details as { generation?: unknown; commonSeq?: unknown; activeChanges?: unknown; passiveChanges?: unknown };
  return { generation: String(d.generation), commonSeq: Number(d.commonSeq), activeChanges: Number(d.activeChanges), passiveChanges: Number(d.passiveChanges), resolving: null };
}

export function buildStatus(i: StatusInputs): AgentStatus {
  const alarms: AgentStatus['alarms'] = [];
  let connected: boolean;
  let replication: AgentStatus['replication'];
  let state: NodeStateName;
  const bound = i.inSyncBoundMs ?? Infinity;
  const pointsMode = (i.consistency ?? []).some((c) => c.mode === 'snapshot');
  if (i.role === 'active') {
    const s = i.sender;
    connected = s?.connected ?? false;
    const paused = s?.paused ?? false;
    // Changes seen and not journaled yet are at risk too (a large file being read).
    const pendingAt = i.capture?.oldestPendingAt;
    const lagMs = Math.max(s?.lagMs ?? 0, pendingAt === undefined ? 0 : Math.max(0, i.now - pendingAt));
    const point = s?.point;
    const rpoMs = pointsMode || point !== undefined ? (point === undefined ? null : Math.max(0, i.now - point.at)) : lagMs;
    replication = {
      headSeq: s?.headSeq ?? 0,
      appliedSeq: s?.ackedSeq ?? 0,
      lagMs,
      queueBytes: s?.queueBytes ?? 0,
      // Changes seen and not journaled yet (a large file being read) are not in sync either.
      inSync: (s?.inSync ?? false) && (i.capture?.pendingPaths ?? 0) === 0,
      // Changes capture holds are not counted: a switchover's drain journals and sends them.
      caughtUp: connected && s !== undefined && !s.syncing && s.catchUp === undefined && s.splitBrain === undefined && s.peerState?.state !== 'modified' && !paused && Math.max(s.lagMs, rpoMs ?? 0) <= bound,
      paused,
      sync: s?.sync === undefined ? null : { id: s.sync.id, bytesDone: s.sync.bytesDone, bytesTotal: s.sync.bytesTotal, etaMs: s.sync.etaMs ?? null },
      start: s?.start ?? null,
      splitBrain: s?.splitBrain === undefined ? null : { generation: s.splitBrain.generation, commonSeq: s.splitBrain.commonSeq, activeChanges: s.splitBrain.activeChanges, passiveChanges: s.splitBrain.passiveChanges, resolving: s.splitBrain.resolving ?? null },
      catchUp: s?.catchUp ?? null,
      consistency: i.consistency ?? [],
      point: point === undefined ? null : { id: point.id, at: point.at, ageMs: Math.max(0, i.now - point.at) },
      rpoMs,
      staged: null,
      discarded: i.discarded ?? null,
    };
    if (s?.splitBrain !== undefined) {
      const sb = s.splitBrain;
      alarms.push({ code: 'TANDEM_ERR_SPLIT_BRAIN', message: `split brain with ${sb.peer}: both changed since sequence ${sb.commonSeq} of generation ${sb.generation} (${sb.activeChanges} records here, ${sb.passiveChanges} on ${sb.peer}); replication holds`, hint: 'tandem resolve --keep NODE -c CONFIG', since: sb.since, source: 'replication' });
    }
    // The passive's own alarm comes back in peer-state; the split brain is reported once.
    if (s?.peerState?.alarm !== undefined && s.peerState.alarm.code !== 'TANDEM_ERR_SPLIT_BRAIN') alarms.push(alarmOf(s.peerState.alarm, 'peer'));
    state = !connected ? 'standalone' : alarms.length > 0 ? 'degraded' : paused ? 'paused' : replication.caughtUp ? 'in-sync' : 'syncing';
  } else {
    const r = i.receiver;
    connected = r?.connected ?? false;
    const paused = r?.peerPaused ?? false;
    // What the active journaled within the channel's delay may be on its way: a passive whose
    // queue is empty is still that far behind (a slow link holds seconds of batches).
    const inFlightMs = connected ? (i.heartbeat.delayMs ?? 0) : 0;
    const lag = Math.max(r?.lagMs ?? 0, i.lagAtContactMs ?? 0, inFlightMs);
    const point = r?.point;
    const staged = r?.staged;
    // Points arrive from the active: this node stages by them whatever its own roots are.
    const gotPoints = point !== undefined || (staged?.batches ?? 0) > 0;
    replication = {
      headSeq: Math.max(r?.peerHeadSeq ?? 0, r?.receivedSeq ?? 0),
      appliedSeq: r?.appliedSeq ?? 0,
      lagMs: Math.max(r?.lagMs ?? 0, inFlightMs),
      queueBytes: r?.queueBytes ?? 0,
      inSync: r?.inSync ?? false,
      // A passive that never synchronised holds no state of the active, whatever its queue says.
      caughtUp: connected && r !== undefined && i.generation !== '' && r.sync === undefined && r.catchUp === undefined && r.alarm === undefined && r.standby.length === 0 && !paused && lag <= bound,
      paused,
      sync: r?.sync === undefined ? null : { ...r.sync, etaMs: r.sync.etaMs ?? null },
      start: null,
      splitBrain: splitBrainOf(r?.alarm),
      catchUp: r?.catchUp ?? null,
      consistency: i.consistency ?? [],
      point: point === undefined ? null : { id: point.id, at: point.at, ageMs: Math.max(0, i.now - point.at) },
      rpoMs: gotPoints ? (point === undefined ? null : Math.max(0, i.now - point.at)) : lag,
      staged: staged === undefined ? null : staged,
      discarded: i.discarded ?? null,
    };
    if (r?.alarm !== undefined) alarms.push(alarmOf(r.alarm, 'apply'));
    for (const a of r?.standby ?? []) alarms.push(alarmOf(a, 'standby'));
    state = r?.paused === true ? 'degraded' : !connected ? 'standalone' : (r?.standby.length ?? 0) > 0 ? 'degraded' : paused ? 'paused' : replication.caughtUp ? 'in-sync' : 'syncing';
  }
  const f = i.failover;
  for (const a of f.alarms) alarms.push({ code: a.code, message: a.message, since: a.since, source: 'failover' });
  // The channel is up while heartbeats arrive; replication may still be starting on it.
  connected = f.channel.up;
  if (f.phase === 'busy') {
    // A promotion the active asked for is the second half of a switchover, not a failover.
    state = f.pending === 'promote' ? (f.trigger === 'planned' ? 'switching' : 'failing-over') : f.pending === 'switchover' ? 'switching' : f.pending === 'demote' ? 'demoting' : state;
  } else if (f.alarms.some((a) => a.code === 'TANDEM_ERR_TWO_ACTIVE') || replication.splitBrain !== null) state = 'split-brain';
  else if (f.phase === 'starting') state = 'starting';
  else if (!connected) state = 'standalone';
  for (const n of i.receiver?.notices ?? []) alarms.push(alarmOf(n, 'apply'));
  const c = i.capture;
  for (const n of c?.notices ?? []) alarms.push({ code: n.code, message: n.message, ...(n.hint === undefined ? {} : { hint: n.hint }), since: n.since, source: 'capture' });
  if (c?.degraded !== undefined) alarms.push({ code: 'TANDEM_ERR_STATE_IO', message: `capture: ${c.degraded}`, source: 'capture' });
  for (const p of c?.problems ?? []) alarms.push({ code: 'TANDEM_ERR_STATE_IO', message: `capture: cannot read ${p.root}/${p.path}: ${p.message}`, source: 'capture' });
  return {
    node: i.node,
    pair: i.pair,
    role: i.role,
    state,
    generation: i.generation,
    version: i.version ?? { tandem: 'unknown', protocol: 0 },
    peer: { name: i.peerName, connected, role: connected ? (i.peer?.role ?? null) : null, version: i.peerVersion ?? null },
    links: {
      channel: connected ? 'up' : 'down',
      public: f.ownPublic === 'ok' ? 'up' : f.ownPublic === 'failing' ? 'down' : 'unknown',
      heartbeat: {
        lastHeardMsAgo: i.heartbeat.lastHeardAt === undefined ? null : Math.max(0, i.now - i.heartbeat.lastHeardAt),
        longestGapMs: i.heartbeat.longestGapMs,
        rttMs: connected && i.heartbeat.rttMs !== undefined ? Math.round(i.heartbeat.rttMs * 1000) / 1000 : null,
        delayMs: connected && i.heartbeat.delayMs !== undefined ? i.heartbeat.delayMs : null,
      },
    },
    replication,
    alarms,
    capture:
      c === undefined
        ? null
        : { state: c.state, pendingPaths: c.pendingPaths, filesHashed: c.filesHashed, bytesHashed: c.bytesHashed, waitingForSpace: c.waitingForSpace, lastScan: c.lastScan ?? null, points: c.points ?? null },
    channel: i.channel,
    verify: i.verify ?? null,
    failover: { phase: f.phase, pending: f.pending ?? null, serving: f.serving, epoch: f.epoch, reason: f.reason, trigger: f.trigger, presence: f.presence, roleChangesLastHour: f.roleChangesLastHour, lastRoleChange: null },
    maintenance: f.maintenance,
    ...(i.roots === undefined ? {} : { roots: i.roots }),
    pid: process.pid,
    startedAt: i.startedAt,
  };
}
