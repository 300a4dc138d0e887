import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../shared/clock.ts';
import { applyPresenceResult, initialPresenceView, type PresenceProbeResult, type PresenceView } from '../../../agent/links/presence-state.ts';
import type { PresenceAnswer } from '../../../agent/links/presence-proof.ts';

const ANSWER: PresenceAnswer = { node: 'beta', role: 'active', epoch: 4, serving: true, publicState: 'ok', at: 1 };
const alive: PresenceProbeResult = { verdict: 'alive', latencyMs: 1, answer: ANSWER };
const stalled: PresenceProbeResult = { verdict: 'stalled', latencyMs: 500, error: 'connected, but no answer within 500 ms' };
const dead: PresenceProbeResult = { verdict: 'dead', latencyMs: 1, error: 'connection refused' };

function feed(clock: FakeClock, view: PresenceView, results: PresenceProbeResult[]) {
  const changes: string[] = [];
  for (const r of results) {
    clock.advance(500);
    const next = applyPresenceResult(view, r, clock.now());
    view = next.view;
    if (next.change) changes.push(`${next.change.from}>${next.change.to}`);
  }
  return { view, changes };
}

describe('presence state', () => {
  it('starts unknown, or unconfigured when the peer has no public address', () => {
    const clock = new FakeClock();
    expect(initialPresenceView(clock.now(), true)).toEqual({ state: 'unknown', since: clock.now(), consecutive: 0 });
    expect(initialPresenceView(clock.now(), false)).toEqual({ state: 'unconfigured', since: clock.now(), consecutive: 0 });
  });

  it('counts probes in the same state and keeps the time the state began', () => {
    const clock = new FakeClock();
    const start = clock.now();
    const { view, changes } = feed(clock, initialPresenceView(start, true), [alive, alive, alive]);
    expect(view).toMatchObject({ state: 'alive', since: start + 500, consecutive: 3, lastProbeAt: clock.now() });
    expect(view.lastAnswer).toEqual({ ...ANSWER, receivedAt: clock.now() });
    expect(changes).toEqual(['unknown>alive']);
  });

  it('keeps the last answer through a stall and a death, with the time it was received', () => {
    const clock = new FakeClock();
    const { view, changes } = feed(clock, initialPresenceView(clock.now(), true), [alive, stalled, stalled, dead, dead, dead]);
    const answeredAt = clock.now() - 2500;
    expect(view).toMatchObject({ state: 'dead', since: clock.now() - 1000, consecutive: 3, error: 'connection refused' });
    expect(view.lastAnswer?.receivedAt).toBe(answeredAt);
    expect(changes).toEqual(['unknown>alive', 'alive>stalled', 'stalled>dead']);
  });

  it('needs three dead probes in a row: one between answers changes nothing, and the verdict dates from the first', () => {
    const clock = new FakeClock();
    const up = feed(clock, initialPresenceView(clock.now(), true), [alive]).view;
    const blip = feed(clock, up, [dead, dead, alive, dead, alive]);
    expect(blip.changes).toEqual([]);
    expect(blip.view).toMatchObject({ state: 'alive', since: up.since });
    expect(blip.view.deadInRow).toBeUndefined();
    const firstDead = clock.now() + 500;
    const gone = feed(clock, blip.view, [dead, dead, dead]);
    expect(gone.changes).toEqual(['alive>dead']);
    expect(gone.view).toMatchObject({ state: 'dead', since: firstDead, consecutive: 3 });
    // An unconfirmed dead run that meets a probe this node could not make goes on counting.
    const error: PresenceProbeResult = { verdict: 'error', latencyMs: 0, error: 'EMFILE' };
    const mixed = feed(clock, blip.view, [dead, error, dead, dead]);
    expect(mixed.changes).toEqual(['alive>dead']);
  });

  it('keeps the verdict and its start through a few probes this node could not make, then says error', () => {
    const clock = new FakeClock();
    const error: PresenceProbeResult = { verdict: 'error', latencyMs: 0, error: 'the probe could not be made: EMFILE' };
    const gone = feed(clock, initialPresenceView(clock.now(), true), [dead, dead, dead]).view;
    const t = gone.since;
    const blind = feed(clock, gone, [error, error, error]).view;
    expect(blind).toMatchObject({ state: 'dead', since: t });
    expect(feed(clock, blind, [dead]).view).toMatchObject({ state: 'dead', since: t });
    expect(feed(clock, blind, [error]).view.state).toBe('error');
  });

  it('reports each change with the probe error as its reason', () => {
    const clock = new FakeClock();
    const r = applyPresenceResult(initialPresenceView(clock.now(), true), stalled, clock.now());
    expect(r.change).toEqual({ from: 'unknown', to: 'stalled', reason: stalled.error });
    expect(applyPresenceResult(r.view, stalled, clock.now()).change).toBeUndefined();
  });
});
