import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../shared/clock.ts';
import { applyPublicRound, initialPublicLinkView, type PublicLinkView, type PublicRound } from '../../../agent/links/public-link-state.ts';

const TARGETS = [{ url: 'tcp://10.0.0.1:80' }, { url: 'http://gw.example/' }];
const THRESHOLD = 3;

function round(clock: FakeClock, oks: (boolean | null)[], checked = true): PublicRound {
  return { at: clock.now(), checked, targets: TARGETS.map((t, i) => ({ url: t.url, ok: oks[i] ?? null, ...(oks[i] === false ? { error: 'ECONNREFUSED' } : {}) })) };
}

/** Feeds rounds one interval apart; returns every view and the changes they caused. */
function feed(clock: FakeClock, start: PublicLinkView, rounds: (boolean | null)[][]) {
  let view = start;
  const changes: { from: string; to: string; at: number }[] = [];
  for (const oks of rounds) {
    clock.advance(1000);
    const r = applyPublicRound(view, round(clock, oks), THRESHOLD);
    view = r.view;
    if (r.change) changes.push({ from: r.change.from, to: r.change.to, at: clock.now() });
  }
  return { view, changes };
}

describe('public link state', () => {
  it('is unknown before the first round, with nothing checked yet', () => {
    const clock = new FakeClock();
    const v = initialPublicLinkView(clock.now(), TARGETS);
    expect(v).toMatchObject({ state: 'unknown', since: clock.now(), checked: true, consecutiveFailures: 0, lastRoundAt: undefined });
    expect(v.targets.map((t) => t.ok)).toEqual([null, null]);
  });

  it('becomes ok at the first round in which any target answers', () => {
    const clock = new FakeClock();
    const { view, changes } = feed(clock, initialPublicLinkView(clock.now(), TARGETS), [[false, true]]);
    expect(view).toMatchObject({ state: 'ok', since: clock.now(), consecutiveFailures: 0, lastRoundAt: clock.now() });
    expect(changes).toEqual([{ from: 'unknown', to: 'ok', at: clock.now() }]);
  });

  it('stays ok through one and two failed rounds: a lost probe is never a failure', () => {
    const clock = new FakeClock();
    const okAt = clock.now() + 1000;
    const { view, changes } = feed(clock, initialPublicLinkView(clock.now(), TARGETS), [[true, true], [false, false], [false, false]]);
    expect(view).toMatchObject({ state: 'ok', since: okAt, consecutiveFailures: 2 });
    expect(changes.map((c) => c.to)).toEqual(['ok']);
  });

  it('becomes failing at the round that reaches the threshold, with since set to that round', () => {
    const clock = new FakeClock();
    const { view, changes } = feed(clock, initialPublicLinkView(clock.now(), TARGETS), [[true, true], [false, false], [false, false], [false, false], [false, false]]);
    const crossedAt = clock.now() - 1000;
    expect(view).toMatchObject({ state: 'failing', since: crossedAt, consecutiveFailures: 4 });
    expect(changes).toEqual([
      { from: 'unknown', to: 'ok', at: expect.any(Number) },
      { from: 'ok', to: 'failing', at: crossedAt },
    ]);
    expect(view.targets.map((t) => t.error)).toEqual(['ECONNREFUSED', 'ECONNREFUSED']);
  });

  it('dates a failing link from the last answered round, so an isolated active counts its isolation from then', () => {
    const clock = new FakeClock();
    const { view } = feed(clock, initialPublicLinkView(clock.now(), TARGETS), [[true, true], [true, false], [false, false], [false, false], [false, false]]);
    const lastAnswered = clock.now() - 3000;
    expect(view).toMatchObject({ state: 'failing', failingSince: lastAnswered });
    const back = feed(clock, view, [[true, false]]).view;
    expect(back).toMatchObject({ state: 'ok', failingSince: undefined });
  });

  it('does not count failures that a successful round interrupted', () => {
    const clock = new FakeClock();
    const { view } = feed(clock, initialPublicLinkView(clock.now(), TARGETS), [[true, true], [false, false], [false, false], [true, false], [false, false], [false, false]]);
    expect(view).toMatchObject({ state: 'ok', consecutiveFailures: 2 });
  });

  it('recovers to ok at the first answered round after failing', () => {
    const clock = new FakeClock();
    const { view, changes } = feed(clock, initialPublicLinkView(clock.now(), TARGETS), [[true, true], [false, false], [false, false], [false, false], [false, true]]);
    expect(view).toMatchObject({ state: 'ok', since: clock.now(), consecutiveFailures: 0 });
    expect(changes.map((c) => `${c.from}>${c.to}`)).toEqual(['unknown>ok', 'ok>failing', 'failing>ok']);
  });

  it('stays unknown while the first rounds fail, and goes from unknown straight to failing at the threshold', () => {
    const clock = new FakeClock();
    const start = initialPublicLinkView(clock.now(), TARGETS);
    const two = feed(clock, start, [[false, false], [false, false]]);
    expect(two.view).toMatchObject({ state: 'unknown', since: start.since, consecutiveFailures: 2 });
    const three = feed(clock, two.view, [[false, false]]);
    expect(three.view).toMatchObject({ state: 'failing', since: clock.now() });
    expect(three.changes.map((c) => `${c.from}>${c.to}`)).toEqual(['unknown>failing']);
  });

  it('is ok and unchecked from the start when no target is configured', () => {
    const clock = new FakeClock();
    const v = initialPublicLinkView(clock.now(), []);
    expect(v).toMatchObject({ state: 'ok', checked: false, since: clock.now(), targets: [] });
  });

  it('turns ok and unchecked when no target can be checked any more, even while failing', () => {
    const clock = new FakeClock();
    const failing = feed(clock, initialPublicLinkView(clock.now(), TARGETS), [[false, false], [false, false], [false, false]]).view;
    clock.advance(1000);
    const r = applyPublicRound(failing, round(clock, [null, null], false), THRESHOLD);
    expect(r.view).toMatchObject({ state: 'ok', checked: false, consecutiveFailures: 0, since: clock.now() });
    expect(r.change).toMatchObject({ from: 'failing', to: 'ok' });
  });
});
