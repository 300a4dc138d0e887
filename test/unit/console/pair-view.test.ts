// The pair on one screen: both nodes side by side, a node that does not answer shown with its
// error, the JSON shape scripts rely on, and what counts as a change for --watch.
import { describe, expect, it } from 'vitest';
import type { AgentStatus } from '../../../agent/control/index.ts';
import { formatPairView, pairViewJson, pairViewKey, readPairView } from '../../../console/pair-view.ts';
import type { PairAddresses } from '../../../shared/config/pair-addresses.ts';
import { TandemError } from '../../../shared/errors.ts';

const T0 = Date.parse('2026-01-05T10:00:00Z');
const addresses: PairAddresses = {
  file: '/etc/tandem/tandem.yaml',
  pair: 'demo',
  self: { name: 'alpha', control: { host: '127.0.0.1', port: 7101 } },
  peer: { name: 'beta', control: { host: '127.0.0.1', port: 7102 } },
};

function status(node: string, role: 'active' | 'passive', over: Partial<AgentStatus> = {}): AgentStatus {
  return {
    node,
    pair: 'demo',
    role,
    state: 'in-sync',
    generation: 'g1',
    peer: { name: node === 'alpha' ? 'beta' : 'alpha', connected: true, role: role === 'active' ? 'passive' : 'active' },
    links: { channel: 'up', public: 'up', heartbeat: { lastHeardMsAgo: 120, longestGapMs: 1000, rttMs: 0.42 } },
    replication: { headSeq: 17, appliedSeq: 17, lagMs: 0, queueBytes: 0, inSync: true, sync: null, start: null, splitBrain: null, catchUp: null },
    alarms: [],
    capture: null,
    channel: { bytesIn: 1, bytesOut: 2 },
    verify: null,
    failover: {
      phase: 'steady',
      pending: null,
      serving: role === 'active',
      epoch: 3,
      reason: role,
      presence: 'alive',
      roleChangesLastHour: 0,
      lastRoleChange: role === 'active' ? { at: T0 - 90_000, from: 'passive', to: 'active', epoch: 3, reason: 'planned switchover: the active handed over' } : null,
    },
    pid: 100,
    startedAt: T0 - 600_000,
    ...over,
  };
}

const fetchFrom = (answers: Record<string, AgentStatus | Error>) => async (url: string) => {
  const a = answers[url];
  if (a instanceof Error) throw a;
  return a!;
};

describe('pair view', () => {
  it('shows both nodes, with round-trip and the last role change and its reason', async () => {
    const v = await readPairView(addresses, fetchFrom({ 'http://127.0.0.1:7101': status('alpha', 'active'), 'http://127.0.0.1:7102': status('beta', 'passive') }), () => T0);
    const screen = formatPairView(v);
    expect(screen).toContain('Pair demo: alpha active and serving; beta in sync');
    expect(screen).toMatch(/alpha\s+active\s+in-sync\s+yes\s+3\s+17\/17\s+0 ms\s+up\s+0\.4 ms\s+up/);
    expect(screen).toMatch(/beta\s+passive\s+in-sync\s+no\s+3\s+17\/17/);
    expect(screen).toMatch(/alpha\s+passive → active at \d\d:\d\d:\d\d \(90 s ago\), epoch 3: planned switchover: the active handed over/);
    expect(screen).toMatch(/beta\s+passive since its agent started \d\d:\d\d:\d\d \(10 min ago\): passive/);
    expect(screen).toContain('Alarms\n  none');
  });

  it('keeps the asked node\'s status document at the top level of --json and adds both nodes', async () => {
    const alpha = status('alpha', 'active');
    const v = await readPairView(addresses, fetchFrom({ 'http://127.0.0.1:7101': alpha, 'http://127.0.0.1:7102': status('beta', 'passive') }), () => T0);
    const doc = pairViewJson(v);
    for (const k of ['node', 'role', 'state', 'generation', 'peer', 'links', 'replication'] as const) expect(doc[k]).toEqual(alpha[k]);
    expect(doc.nodes).toMatchObject([
      { name: 'alpha', url: 'http://127.0.0.1:7101', ok: true, status: { node: 'alpha' } },
      { name: 'beta', url: 'http://127.0.0.1:7102', ok: true, status: { node: 'beta' } },
    ]);
  });

  it('shows a node that does not answer with its error, and never guesses its state', async () => {
    const down = new TandemError({ code: 'TANDEM_ERR_CONTROL_UNREACHABLE', op: 'GET http://127.0.0.1:7102/v1/status', reason: 'connect ECONNREFUSED 127.0.0.1:7102', hint: 'is the agent running?' });
    const v = await readPairView(addresses, fetchFrom({ 'http://127.0.0.1:7101': status('alpha', 'active'), 'http://127.0.0.1:7102': down }), () => T0);
    const screen = formatPairView(v);
    expect(screen).toContain('beta does not answer');
    expect(screen).toMatch(/beta\s+\?\s+no answer/);
    expect(screen).toMatch(/beta\s+does not answer at http:\/\/127\.0\.0\.1:7102: connect ECONNREFUSED 127\.0\.0\.1:7102/);
    expect(pairViewJson(v).nodes).toMatchObject([{ name: 'alpha', ok: true }, { name: 'beta', ok: false, error: { code: 'TANDEM_ERR_CONTROL_UNREACHABLE', message: expect.stringContaining('ECONNREFUSED') } }]);

    // The asked node down: its name, the pair and its error at the top level, its peer in nodes.
    const v2 = await readPairView(addresses, fetchFrom({ 'http://127.0.0.1:7101': new Error('connect ECONNREFUSED 127.0.0.1:7101'), 'http://127.0.0.1:7102': status('beta', 'passive') }), () => T0);
    const doc = pairViewJson(v2);
    expect(doc).toMatchObject({ node: 'alpha', pair: 'demo', error: { code: 'TANDEM_ERR_CONTROL_UNREACHABLE' } });
    expect(doc.role).toBeUndefined();
    expect(doc.nodes).toMatchObject([{ name: 'alpha', ok: false }, { name: 'beta', ok: true, status: { role: 'passive' } }]);
  });

  it('changes its --watch key on a role change, not on heartbeat ages, byte counters or round-trip jitter', async () => {
    const view = (a: AgentStatus, b: AgentStatus) => readPairView(addresses, fetchFrom({ 'http://127.0.0.1:7101': a, 'http://127.0.0.1:7102': b }), () => T0);
    const k0 = pairViewKey(await view(status('alpha', 'active'), status('beta', 'passive')));
    const noisy = status('alpha', 'active', { links: { channel: 'up', public: 'up', heartbeat: { lastHeardMsAgo: 900, longestGapMs: 1100, rttMs: 0.61 } }, channel: { bytesIn: 5000, bytesOut: 9000 } });
    expect(pairViewKey(await view(noisy, status('beta', 'passive')))).toBe(k0);
    expect(pairViewKey(await view(status('alpha', 'passive'), status('beta', 'active')))).not.toBe(k0);
    expect(pairViewKey(await view(status('alpha', 'active', { state: 'standalone' }), status('beta', 'passive')))).not.toBe(k0);
  });
});
