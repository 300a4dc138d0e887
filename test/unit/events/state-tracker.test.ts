// The state tracker: every change a status document shows becomes one event, causes first, with
// its trigger; nothing is reported twice, and an action is reported before what it does.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentStatus } from '../../../agent/control/index.ts';
import { EventHistory, StateTracker, type TandemEvent } from '../../../agent/events/index.ts';
import { FakeClock } from '../../../shared/clock.ts';
import { silentLogger } from '../../../shared/log.ts';
import { statusDoc } from './status-fixture.ts';

let dir = '';
afterEach(() => {
  if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
  dir = '';
});

function tracker(first: AgentStatus, lagBoundMs = 10_000) {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-tracker-'));
  const clock = new FakeClock();
  const history = EventHistory.open({ file: path.join(dir, 'events.ndjson'), keep: 100, clock, log: silentLogger() });
  let doc = first;
  const t = new StateTracker({ node: 'alpha', peer: 'beta', history, build: () => doc, lagBoundMs, clock, log: silentLogger() });
  const seen: TandemEvent[] = [];
  t.subscribe((e) => seen.push(e));
  t.refresh();
  return {
    t,
    seen,
    clock,
    set(next: AgentStatus) {
      doc = next;
      return t.refresh();
    },
    /** What the components say now, not read by anyone yet. */
    stage(next: AgentStatus) {
      doc = next;
    },
    story: () => seen.map((e) => `${e.kind}${e.kind === 'link' ? `:${String(e.details.link)}` : e.kind === 'alarm' ? `:${String(e.details.code)}` : ''} ${e.from}→${e.to} ${e.trigger}`),
  };
}

describe('StateTracker', () => {
  it('reports nothing for the first document and nothing for an unchanged one', () => {
    const x = tracker(statusDoc());
    x.set(statusDoc());
    x.set(statusDoc({ replication: { headSeq: 12, appliedSeq: 11, lagMs: 40 } }));
    expect(x.seen).toEqual([]);
  });

  it('tells a passive\'s failover as one story: link, presence, action, state, role, serving', () => {
    const passive = statusDoc({ role: 'passive', failover: { serving: false, reason: 'passive' }, capture: null });
    const x = tracker(passive);
    x.set(statusDoc({ ...passive, links: { channel: 'down' }, peer: { connected: false, role: null }, state: 'standalone' }));
    x.set(statusDoc({ ...passive, links: { channel: 'down' }, peer: { connected: false, role: null }, state: 'standalone', failover: { serving: false, presence: 'dead', reason: 'passive' } }));
    const reason = 'failover: channel down and the active\'s agent refuses connections (gone) for 1.0 s';
    const busy = statusDoc({ ...passive, links: { channel: 'down' }, peer: { connected: false, role: null }, state: 'failing-over', failover: { serving: false, presence: 'dead', phase: 'busy', pending: 'promote', reason, trigger: 'automatic', epoch: 1 } });
    x.set(busy);
    x.t.onStep({ input: { kind: 'tick', now: 0, obs: {} as never }, effects: [{ kind: 'promote', reason, epoch: 2 }], reason, trigger: 'automatic' });
    x.set(statusDoc({ ...busy, role: 'active' }));
    const done = statusDoc({ ...busy, role: 'active', state: 'standalone', failover: { serving: true, presence: 'dead', phase: 'steady', pending: null, reason, trigger: 'automatic', epoch: 2 } });
    x.set(done);
    x.t.onStep({ input: { kind: 'done', now: 0, action: 'promote', ok: true, epoch: 2 }, effects: [], reason, trigger: 'automatic' });
    expect(x.story()).toEqual([
      'link:channel up→down automatic',
      'state in-sync→standalone automatic',
      'link:presence alive→dead automatic',
      'state standalone→failing-over automatic',
      'failover beta→alpha automatic',
      'role passive→active automatic',
      'serving stopped→serving automatic',
      'state failing-over→standalone automatic',
      'failover beta→alpha automatic',
    ]);
    const failovers = x.seen.filter((e) => e.kind === 'failover');
    expect(failovers.map((e) => e.details.phase)).toEqual(['started', 'done']);
    expect(failovers[0]!.reason).toBe(reason);
    expect(x.seen.find((e) => e.kind === 'role')!.reason).toBe(reason);
    // Numbered in order, and kept.
    expect(x.seen.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(x.t.history.since(0)).toHaveLength(9);
    expect(x.t.actions.get('failover done')).toBe(1);
    expect(x.t.roleChanges.get('automatic')).toBe(1);
  });

  it('reports an action before the state it puts the node in, and its outcome after the role moved', () => {
    const x = tracker(statusDoc());
    const reason = 'operator asked for a switchover';
    const busy = statusDoc({ state: 'switching', failover: { phase: 'busy', pending: 'switchover', reason, trigger: 'operator' } });
    // The runner tells the tracker of the step before anyone read the document it changed.
    x.stage(busy);
    x.t.onStep({ input: { kind: 'operator-switchover', now: 0 }, effects: [{ kind: 'switchover', reason }], reason, trigger: 'operator' });
    expect(x.story()).toEqual(['switchover alpha→beta operator', 'state in-sync→switching operator']);
  });

  it('reports an alarm raised and cleared once each, whatever its message does meanwhile', () => {
    const x = tracker(statusDoc());
    const alarm = (message: string) => statusDoc({ state: 'degraded', alarms: [{ code: 'TANDEM_ERR_APPLY_FAILED', message, source: 'peer' }] });
    x.set(alarm('apply: ENOSPC at seq 12'));
    x.set(alarm('apply: ENOSPC at seq 13'));
    x.set(statusDoc());
    expect(x.story()).toEqual(['alarm:TANDEM_ERR_APPLY_FAILED clear→raised automatic', 'state in-sync→degraded automatic', 'alarm:TANDEM_ERR_APPLY_FAILED raised→clear automatic', 'state degraded→in-sync automatic']);
    expect(x.seen[0]!.details).toMatchObject({ code: 'TANDEM_ERR_APPLY_FAILED', source: 'peer' });
  });

  it('says who paused replication and held the pair, with the operator\'s words', () => {
    const x = tracker(statusDoc());
    x.set(statusDoc({ replication: { paused: true, caughtUp: false }, state: 'paused' }));
    x.set(statusDoc({ replication: { paused: true, caughtUp: false }, state: 'paused', maintenance: true }));
    expect(x.story()).toEqual(['replication running→paused operator', 'state in-sync→paused operator', 'maintenance off→on operator']);
  });

  it('reports a lag beyond the bound once, and back within only under half of it', () => {
    const x = tracker(statusDoc(), 10_000);
    for (const lag of [5_000, 11_000, 9_000, 6_000, 12_000, 4_000, 8_000]) x.set(statusDoc({ replication: { lagMs: lag } }));
    expect(x.story()).toEqual(['lag within→beyond automatic', 'lag beyond→within automatic']);
    expect(x.seen[0]!.reason).toContain('11000 ms');
  });

  it('bounds what an event carries: a long reason is cut', () => {
    const x = tracker(statusDoc());
    const e = x.t.emit({ kind: 'script', from: 'running', to: 'failed', reason: 'x'.repeat(5000), trigger: 'automatic', details: { blob: 'y'.repeat(10_000) } });
    expect(e.reason.length).toBeLessThanOrEqual(1001);
    expect(e.details).toEqual({ truncated: true });
  });
});
