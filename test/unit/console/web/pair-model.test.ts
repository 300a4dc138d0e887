// What the console says about the pair, for someone who does not know Tandem: one health level,
// one headline, notes with what to do, and the facts of each node's card; a node that does not
// answer is said to be so, never guessed from its peer.
import { describe, expect, it } from 'vitest';
import type { TandemEvent } from '../../../../agent/events/event.ts';
import { nodeFacts, roleBadge, summarise, syncSince, type NodeReading } from '../../../../console/web/pair-model.ts';
import { statusDoc } from '../../events/status-fixture.ts';

const NOW = 1_700_000_100_000;
const up = (s: ReturnType<typeof statusDoc>): NodeReading => ({ name: s.node, at: NOW, ok: true, status: s });
const down = (name: string, message = 'GET http://127.0.0.1:7102/v1/status: connect ECONNREFUSED'): NodeReading => ({ name, at: NOW - 5000, ok: false, error: { code: 'TANDEM_ERR_CONTROL_UNREACHABLE', message, hint: 'is the agent running?' } });
const alpha = (p: Parameters<typeof statusDoc>[0] = {}) => statusDoc(p);
const beta = (p: Parameters<typeof statusDoc>[0] = {}) =>
  statusDoc({ node: 'beta', role: 'passive', peer: { name: 'alpha', connected: true, role: 'active' }, capture: null, failover: { serving: false, reason: 'passive' }, ...p });

describe('the pair at a glance', () => {
  it('says all is well when the active serves and the passive is in sync', () => {
    const s = summarise([up(alpha()), up(beta())], NOW);
    expect(s).toMatchObject({ health: 'ok', pair: 'demo', active: 'alpha', short: 'alpha serves · beta in sync', notes: [] });
    expect(s.headline).toBe('alpha serves the application; beta is in sync and ready to take over.');
  });

  it('says the standby is not ready while it is synchronised, with how much it received (not what the active journaled)', () => {
    const s = summarise([up(alpha({ state: 'syncing', replication: { caughtUp: false, queueBytes: 10, sync: { id: 's1', bytesDone: 25, bytesTotal: 100, etaMs: 30_000 } } })), up(beta({ state: 'syncing' }))], NOW);
    expect(s.health).toBe('warn');
    expect(s.headline).toBe('alpha serves the application; beta is being synchronised (15% of 100 B received): not ready to take over yet.');
    expect(s.short).toBe('alpha serves · beta syncing 15%');
  });

  it('says a peer that does not answer does not, with the error and what to do', () => {
    const s = summarise([up(alpha({ state: 'standalone', peer: { connected: false, role: null } })), down('beta')], NOW);
    expect(s.health).toBe('warn');
    expect(s.headline).toBe('alpha serves the application; beta does not answer: no standby is ready to take over.');
    expect(s.short).toBe('alpha serves · beta down');
    expect(s.notes).toEqual(['beta does not answer (GET http://127.0.0.1:7102/v1/status: connect ECONNREFUSED). What to do: is the agent running?']);
  });

  it('sounds the alarm when nothing serves: the active is gone and the survivor is passive', () => {
    const s = summarise([down('alpha'), up(beta({ state: 'standalone', peer: { connected: false, role: null } }))], NOW);
    expect(s.health).toBe('bad');
    expect(s.headline).toBe('No node serves the application: beta is passive, alpha does not answer.');
    expect(s.active).toBeUndefined();
  });

  it('says a survivor that is taking over is doing so', () => {
    const s = summarise([down('alpha'), up(beta({ state: 'failing-over', failover: { phase: 'busy', pending: 'promote' } }))], NOW);
    expect(s).toMatchObject({ health: 'warn', short: 'beta taking over' });
  });

  it('says an active that does not serve does not (a failed start), and an active still starting is only a warning', () => {
    expect(summarise([up(alpha({ failover: { serving: false }, state: 'in-sync' })), up(beta())], NOW)).toMatchObject({ health: 'bad', short: 'alpha NOT serving · beta in sync' });
    expect(summarise([up(alpha({ failover: { serving: false }, state: 'starting' })), up(beta())], NOW).health).toBe('warn');
  });

  it('calls two active nodes and a split brain what they are', () => {
    const two = summarise([up(alpha()), up(beta({ role: 'active' }))], NOW);
    expect(two).toMatchObject({ health: 'bad', short: 'TWO ACTIVE NODES' });
    const sb = { generation: 'g1', commonSeq: 7, activeChanges: 3, passiveChanges: 2, resolving: null };
    const split = summarise([up(alpha({ state: 'split-brain', replication: { splitBrain: sb, caughtUp: false } })), up(beta({ state: 'split-brain', replication: { splitBrain: sb } }))], NOW);
    expect(split.health).toBe('bad');
    expect(split.headline).toContain('split brain');
  });

  it('lists maintenance and every alarm with its hint, the passive\'s alarm once (not again as the active\'s echo)', () => {
    const alarm = { code: 'TANDEM_ERR_APPLY_FAILED', message: 'apply: disk full', hint: 'free space on beta', source: 'apply' };
    const s = summarise([up(alpha({ maintenance: true, alarms: [{ ...alarm, source: 'peer' }], replication: { caughtUp: false } })), up(beta({ maintenance: true, state: 'degraded', alarms: [alarm] }))], NOW);
    expect(s.health).toBe('bad');
    expect(s.notes).toEqual([
      'Maintenance is on for alpha: no automatic failover, switchover or application restart there.',
      'Maintenance is on for beta: no automatic failover, switchover or application restart there.',
      'beta: apply: disk full. What to do: free space on beta',
    ]);
    expect(s.headline).toBe('alpha serves the application; beta reports a problem: apply: disk full.');
  });

  it('says a paused replication is paused', () => {
    expect(summarise([up(alpha({ state: 'paused', replication: { paused: true, caughtUp: false } })), up(beta({ state: 'paused' }))], NOW)).toMatchObject({ health: 'warn', short: 'alpha serves · beta paused' });
  });
});

describe('a node\'s card', () => {
  const ev = (seq: number, node: string, from: string, to: string, time: number): TandemEvent => ({ seq, time, node, kind: 'state', from, to, reason: 'r', trigger: 'automatic', details: {} });

  it('says since when the node is in sync (or out of it), from its events', () => {
    const events = [ev(1, 'beta', 'syncing', 'in-sync', NOW - 60_000), ev(2, 'alpha', 'syncing', 'in-sync', NOW - 50_000), ev(3, 'beta', 'in-sync', 'syncing', NOW - 10_000), ev(4, 'beta', 'syncing', 'in-sync', NOW - 5_000)];
    expect(syncSince(events, 'beta', true)).toBe(NOW - 5_000);
    expect(syncSince(events, 'beta', false)).toBe(NOW - 10_000);
    const facts = nodeFacts(up(beta()), events, NOW);
    expect(facts.map((f) => f.label)).toEqual(['Role', 'State', 'In sync since', 'Data generation', 'Last role change', 'Maintenance', 'Agent']);
    expect(facts[1]).toEqual({ label: 'State', value: 'in-sync — the standby holds everything the active wrote', level: 'ok' });
    expect(facts[2]!.value).toMatch(/\(5\.0 s ago\)$/);
  });

  it('tells the last role change with its reason and trigger', () => {
    const s = alpha({ failover: { lastRoleChange: { at: NOW - 120_000, from: 'passive', to: 'active', epoch: 2, reason: 'failover: channel down and the active is gone', trigger: 'automatic' } } });
    const f = nodeFacts(up(s), [], NOW).find((x) => x.label === 'Last role change')!;
    expect(f.value).toMatch(/^passive → active at \d\d:\d\d:\d\d \(2 min ago\): failover: channel down and the active is gone \[automatic\]$/);
  });

  it('shows a node that does not answer as such, with the last thing it said', () => {
    const n: NodeReading = { ...down('alpha'), last: alpha() } as NodeReading;
    const facts = nodeFacts(n, [], NOW);
    expect(facts[0]).toMatchObject({ label: 'Answer', level: 'bad' });
    expect(facts.find((f) => f.label === 'Last answer')!.value).toBe('5.0 s ago, when it was active (in-sync)');
    expect(roleBadge(n)).toEqual({ text: 'NOT ANSWERING', level: 'bad' });
    expect(roleBadge(up(alpha()))).toEqual({ text: 'ACTIVE · SERVING', level: 'ok' });
    expect(roleBadge(up(beta()))).toEqual({ text: 'PASSIVE', level: 'idle' });
  });
});
