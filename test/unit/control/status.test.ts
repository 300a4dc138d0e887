// The status document's bounded "in sync" (replication.caughtUp, state in-sync) on a passive:
// never for a tree that never synchronised, not when it was behind beyond the bound at its last
// contact, and "paused" when the active said an operator paused replication.
import { describe, expect, it } from 'vitest';
import { buildStatus, type StatusInputs } from '../../../agent/control/index.ts';
import type { ReceiverStatus } from '../../../agent/replication/index.ts';

function receiver(p: Partial<ReceiverStatus> = {}): ReceiverStatus {
  return { connected: true, peer: 'alpha', receivedSeq: 50, appliedSeq: 50, peerHeadSeq: 52, lagMs: 0, queueBytes: 0, inSync: false, paused: false, peerPaused: false, alarm: undefined, sync: undefined, catchUp: undefined, modified: false, point: undefined, staged: { batches: 0, records: 0, bytes: 0 }, ...p, standby: p.standby ?? [], notices: p.notices ?? [] };
}

function passive(r: ReceiverStatus, o: Partial<StatusInputs> = {}) {
  return buildStatus({
    node: 'beta',
    pair: 'demo',
    peerName: 'alpha',
    role: 'passive',
    generation: 'g1',
    receiver: r,
    failover: { phase: 'steady', pending: undefined, serving: false, reason: 'passive', trigger: 'automatic', maintenance: false, epoch: 1, alarms: [], channel: { up: true, since: 0 }, presence: 'alive', ownPublic: 'ok', roleChangesLastHour: 0 },
    peer: { role: 'active', epoch: 1, serving: true, publicState: 'ok', inSync: false, at: 0 },
    heartbeat: { lastHeardAt: 0, longestGapMs: 0 },
    channel: { bytesIn: 0, bytesOut: 0 },
    inSyncBoundMs: 10_000,
    lagAtContactMs: 0,
    startedAt: 0,
    now: 1000,
    ...o,
  });
}

describe('status of a passive: in sync within a bound', () => {
  it('is in-sync a couple of records behind the active\'s head (exactly: not in sync)', () => {
    const s = passive(receiver());
    expect([s.state, s.replication.caughtUp, s.replication.inSync]).toEqual(['in-sync', true, false]);
  });

  it('is syncing when it was behind beyond failover.maxLagOnFailover at its last contact', () => {
    const s = passive(receiver(), { lagAtContactMs: 12_000 });
    expect([s.state, s.replication.caughtUp]).toEqual(['syncing', false]);
  });

  it('counts the channel\'s delay as lag: an empty queue over a slow link is still that far behind', () => {
    const slow = passive(receiver({ receivedSeq: 52, appliedSeq: 52 }), { heartbeat: { lastHeardAt: 0, longestGapMs: 0, delayMs: 8_000 } });
    expect([slow.replication.lagMs, slow.replication.rpoMs, slow.state, slow.links.heartbeat.delayMs]).toEqual([8_000, 8_000, 'in-sync', 8_000]);
    const slower = passive(receiver({ receivedSeq: 52, appliedSeq: 52 }), { heartbeat: { lastHeardAt: 0, longestGapMs: 0, delayMs: 12_000 } });
    expect([slower.replication.lagMs, slower.replication.caughtUp, slower.state]).toEqual([12_000, false, 'syncing']);
  });

  it('is never caught up with a tree that never synchronised (no generation yet)', () => {
    const s = passive(receiver(), { generation: '' });
    expect([s.state, s.replication.caughtUp]).toEqual(['syncing', false]);
  });

  it('says paused, and not caught up, when the active paused replication', () => {
    const s = passive(receiver({ peerPaused: true }));
    expect([s.state, s.replication.paused, s.replication.caughtUp]).toEqual(['paused', true, false]);
  });

  it('keeps the decision\'s trigger and the maintenance hold', () => {
    const s = passive(receiver(), { failover: { phase: 'steady', pending: undefined, serving: false, reason: 'passive', trigger: 'planned', maintenance: true, epoch: 1, alarms: [], channel: { up: true, since: 0 }, presence: 'alive', ownPublic: 'ok', roleChangesLastHour: 0 } });
    expect([s.failover.trigger, s.maintenance]).toEqual(['planned', true]);
  });
});
