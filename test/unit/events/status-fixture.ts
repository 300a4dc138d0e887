// A status document for the event and metric tests, as buildStatus would make it, with the
// fields a test changes given as a patch.
import type { AgentStatus } from '../../../agent/control/index.ts';

type Patch = { [K in keyof AgentStatus]?: AgentStatus[K] extends object ? Partial<AgentStatus[K]> : AgentStatus[K] };

export function statusDoc(p: Patch = {}): AgentStatus {
  const base: AgentStatus = {
    node: 'alpha',
    pair: 'demo',
    role: 'active',
    state: 'in-sync',
    generation: 'g1',
    version: { tandem: '0.1.0', protocol: 2 },
    peer: { name: 'beta', connected: true, role: 'passive', version: { tandem: '0.1.0', protocol: 2, session: 2 } },
    links: { channel: 'up', public: 'up', heartbeat: { lastHeardMsAgo: 100, longestGapMs: 1000, rttMs: 0.4, delayMs: 2500 } },
    replication: { headSeq: 10, appliedSeq: 10, lagMs: 0, queueBytes: 0, inSync: true, caughtUp: true, paused: false, sync: null, start: 'resume from sequence 1', splitBrain: null, catchUp: null },
    alarms: [],
    capture: { state: 'running', pendingPaths: 0, filesHashed: 3, bytesHashed: 100, waitingForSpace: false, lastScan: null },
    channel: { bytesIn: 1000, bytesOut: 2000 },
    verify: null,
    failover: { phase: 'steady', pending: null, serving: true, epoch: 1, reason: 'active; the passive is connected', trigger: 'automatic', presence: 'alive', roleChangesLastHour: 0 },
    maintenance: false,
    pid: 1,
    startedAt: 1_700_000_000_000,
  };
  const out = { ...base } as Record<string, unknown>;
  for (const [k, v] of Object.entries(p)) {
    const b = (base as unknown as Record<string, unknown>)[k];
    out[k] = typeof v === 'object' && v !== null && !Array.isArray(v) && typeof b === 'object' && b !== null ? { ...b, ...v } : v;
  }
  return out as unknown as AgentStatus;
}
