// The charts' figures: samples kept in time order whatever order they arrive in (the agent's
// hour comes after the first live reading), an hour at most, and rates that never invent a
// value across an agent restart or a long gap.
import { describe, expect, it } from 'vitest';
import { ProgressMeter, Series, sampleOf, samplesFromHistory, type Sample } from '../../../../console/web/figures.ts';
import { statusDoc } from '../../events/status-fixture.ts';

const s = (t: number, bytesOut: number, extra: Partial<Sample> = {}): Sample => ({ t, active: true, channelUp: true, rttMs: 0.5, lagMs: 0, queueBytes: 0, headSeq: 0, appliedSeq: 0, bytesOut, bytesIn: 0, ...extra });

describe('figures', () => {
  it('keeps samples in time order when the history arrives after a live sample, once per instant', () => {
    const series = new Series();
    series.add(s(20_000, 500));
    series.add(s(5_000, 100), s(10_000, 200), s(20_000, 999));
    series.add(s(15_000, 300));
    expect(series.all.map((x) => [x.t, x.bytesOut])).toEqual([
      [5_000, 100],
      [10_000, 200],
      [15_000, 300],
      [20_000, 500],
    ]);
  });

  it('forgets what falls out of the window', () => {
    const series = new Series(60_000);
    for (let t = 0; t <= 120_000; t += 10_000) series.add(s(t, t));
    expect(series.all[0]!.t).toBe(60_000);
    expect(series.all.length).toBe(7);
  });

  it('gives rates per second, and none where a counter went back (a restart) or the gap is too long', () => {
    const series = new Series();
    series.add(s(0, 0), s(1000, 1000), s(2000, 3000), s(3000, 100), s(60_000, 200));
    expect(series.rate((x) => x.bytesOut)).toEqual([
      { t: 1000, v: 1000 },
      { t: 2000, v: 2000 },
      { t: 3000, v: null },
      { t: 60_000, v: null },
    ]);
    const quiet = new Series();
    quiet.add(s(0, 0), s(2000, 4000), s(4000, 8000), s(6000, 14_000));
    expect(quiet.recentRate((x) => x.bytesOut, 4000)).toBe(2500);
  });

  it('reads GET /v1/history by its field names and skips what it cannot read', () => {
    const rows = samplesFromHistory({ fields: ['bytesOut', 't', 'rttMs', 'future'], rows: [[10, 1000, 0.4, 'x'], 'junk', [20, 'not a time'], [30, 2000, null]] });
    expect(rows).toEqual([s(1000, 10, { rttMs: 0.4, active: false, channelUp: false }), s(2000, 30, { rttMs: null, active: false, channelUp: false })]);
    expect(samplesFromHistory({})).toEqual([]);
  });

  it('makes a sample of a status document', () => {
    expect(sampleOf(statusDoc(), 5)).toEqual({ t: 5, active: true, channelUp: true, rttMs: 0.4, lagMs: 0, queueBytes: 0, headSeq: 10, appliedSeq: 10, bytesOut: 2000, bytesIn: 1000 });
  });
});

describe('progress', () => {
  it('measures a synchronisation\'s rate and time left, and starts over for another one', () => {
    const m = new ProgressMeter();
    m.observe('s1', 0, 1000, 0);
    const r = m.observe('s1', 2000, 600, 400);
    expect(r).toEqual({ rate: 200, done: 400, total: 1000, etaMs: 3000 });
    expect(m.observe('s2', 3000, 50, 0)).toEqual({ rate: null, done: 0, total: 50, etaMs: null });
  });

  it('counts a catch-up\'s progress from the most it had left', () => {
    const m = new ProgressMeter();
    m.observe('c', 0, 800);
    m.observe('c', 1000, 1000);
    const r = m.observe('c', 3000, 400);
    expect(r.total).toBe(1000);
    expect(r.done).toBe(600);
    expect(r.rate).toBeCloseTo(200, 5);
    expect(r.etaMs).toBeCloseTo(2000, 5);
  });
});
