// When a switchover may start. Under a steady write load the passive is never exactly at the
// head (the issue: "beta is not in sync (applied 104 of 104, lag 0 ms)", refused 20 times out
// of 20): in sync for a switchover is caught up within failover.maxLagOnFailover, and a
// refusal's words never contradict its figures.
import { describe, expect, it } from 'vitest';
import { buildStatus, type StatusInputs } from '../../../agent/control/index.ts';
import { switchoverReadiness } from '../../../agent/operator/index.ts';
import type { SenderStatus } from '../../../agent/replication/index.ts';
import { statusDoc } from '../events/status-fixture.ts';

const opts = { force: false, boundMs: 10_000, recordsPerSecond: 200, settleMs: 50 };

function sender(p: Partial<SenderStatus> = {}): SenderStatus {
  return { connected: true, peer: 'beta', ackedSeq: 100, receivedSeq: 100, point: undefined, headSeq: 100, lagMs: 0, queueBytes: 0, inSync: true, syncing: false, paused: false, sync: undefined, splitBrain: undefined, start: 'resume from sequence 1', catchUp: undefined, peerState: undefined, ...p };
}

function activeStatus(s: SenderStatus, pendingPaths = 0) {
  const inputs: StatusInputs = {
    node: 'alpha',
    pair: 'demo',
    peerName: 'beta',
    role: 'active',
    generation: 'g1',
    sender: s,
    capture: { state: 'running', pendingPaths, filesHashed: 0, bytesHashed: 0, waitingForSpace: false, problems: [] } as never,
    failover: { phase: 'steady', pending: undefined, serving: true, reason: 'active', trigger: 'automatic', maintenance: false, epoch: 3, alarms: [], channel: { up: true, since: 0 }, presence: 'alive', ownPublic: 'ok', roleChangesLastHour: 0 },
    peer: { role: 'passive', epoch: 3, serving: false, publicState: 'ok', inSync: false, at: 0 },
    heartbeat: { lastHeardAt: 0, longestGapMs: 0 },
    channel: { bytesIn: 0, bytesOut: 0 },
    inSyncBoundMs: 10_000,
    startedAt: 0,
    now: 1000,
  };
  return buildStatus(inputs);
}

describe('switchover readiness', () => {
  it('is ready under a steady write load: a few records in flight and changes in capture are for the drain', () => {
    const s = activeStatus(sender({ ackedSeq: 104, headSeq: 107, lagMs: 40, queueBytes: 9000, inSync: false }), 2);
    expect(s.replication.inSync).toBe(false);
    expect(s.replication.caughtUp).toBe(true);
    expect(s.state).toBe('in-sync');
    const r = switchoverReadiness(s, opts);
    expect(r.ready).toBe(true);
    expect(r.refusal).toBeNull();
    expect(r.drain).toEqual({ records: 3, bytes: 9000, pendingPaths: 2, lagMs: 40, estimateMs: 15 + 50 });
    expect(r.steps[1]).toContain('3 records');
  });

  it('refuses a passive behind beyond the bound, saying how far, with figures that agree', () => {
    const s = activeStatus(sender({ ackedSeq: 50, headSeq: 900, lagMs: 12_500, inSync: false }));
    expect(s.state).toBe('syncing');
    const r = switchoverReadiness(s, opts);
    expect(r.ready).toBe(false);
    expect(r.refusal).toBe('beta is 12500 ms behind, beyond failover.maxLagOnFailover (10000 ms): applied 50 of 900');
    expect(r.forceable).toBe(true);
    expect(switchoverReadiness(s, { ...opts, force: true }).ready).toBe(true);
  });

  it('refuses during a synchronisation or a catch-up, naming it', () => {
    const sync = activeStatus(sender({ syncing: true, inSync: false, sync: { id: 'abc', beginSeq: 5, bytesDone: 25, bytesTotal: 100, pathsDone: 1, pathsTotal: 4, startedAt: 0, etaMs: 100 } as never }));
    expect(switchoverReadiness(sync, opts).refusal).toBe('beta is being synchronised (synchronisation abc, 25.0% done)');
    const catchUp = activeStatus(sender({ inSync: false, catchUp: { bytesLeft: 4096, pathsLeft: 3 } }));
    expect(switchoverReadiness(catchUp, opts).refusal).toBe('beta is catching up from the journal (4096 bytes and 3 paths left)');
  });

  it('refuses while replication is paused, even with --force: the drain could never end', () => {
    const s = activeStatus(sender({ paused: true }));
    expect(s.state).toBe('paused');
    const r = switchoverReadiness(s, { ...opts, force: true });
    expect(r.ready).toBe(false);
    expect(r.refusal).toContain('paused');
    expect(r.hint).toContain('tandem resume');
  });

  it('refuses when the passive is gone, not passive, or a role change runs; on a passive node it says so', () => {
    expect(switchoverReadiness(statusDoc({ peer: { connected: false, role: null }, links: { channel: 'down' } }), opts).refusal).toBe('alpha is not connected to beta (channel down)');
    expect(switchoverReadiness(statusDoc({ peer: { role: 'active' } }), opts).refusal).toBe('beta is active, not passive');
    expect(switchoverReadiness(statusDoc({ failover: { phase: 'busy', pending: 'serve' } }), opts).refusal).toContain('already running on alpha (serve)');
    expect(switchoverReadiness(statusDoc({ role: 'passive' }), opts).refusal).toBe('alpha is not active');
  });

  it('estimates the drain from the recent apply rate, and says so when none is known', () => {
    const s = activeStatus(sender({ ackedSeq: 0, headSeq: 1000, lagMs: 800, inSync: false }));
    expect(switchoverReadiness(s, { ...opts, recordsPerSecond: 500 }).drain.estimateMs).toBe(2000);
    const unknown = switchoverReadiness(s, { ...opts, recordsPerSecond: undefined });
    expect(unknown.drain.estimateMs).toBeNull();
    expect(unknown.steps[1]).toContain('time unknown');
  });
});
