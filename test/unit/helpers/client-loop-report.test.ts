import { describe, expect, it } from 'vitest';
import { format, summarize, UNKNOWN_NODE, type ClientRequestRecord } from '../../helpers/client-loop.ts';

const T0 = new Date(2025, 0, 1, 12, 1, 0, 0).getTime();
const run = (stoppedAfterMs: number) => ({ url: 'http://demo/', ratePerSecond: 20, startedAt: T0, stoppedAt: T0 + stoppedAfterMs });

/** One request every 50 ms over [fromMs, toMs), answered after `latencyMs`. */
function requests(fromMs: number, toMs: number, r: Partial<ClientRequestRecord> & { latencyMs?: number }): ClientRequestRecord[] {
  const out: ClientRequestRecord[] = [];
  const latencyMs = r.latencyMs ?? 10;
  for (let t = fromMs; t < toMs; t += 50) {
    out.push({ ok: true, ...r, startedAt: T0 + t, endedAt: T0 + t + latencyMs, latencyMs });
  }
  return out;
}

describe('summarize', () => {
  it('finds the outage between the last answer of one node and the first of the next', () => {
    const records = [
      ...requests(0, 1_000, { servedBy: 'one' }),
      ...requests(1_000, 2_500, { ok: false, error: 'ECONNREFUSED', latencyMs: 2 }),
      ...requests(2_500, 3_000, { servedBy: 'two' }),
    ];
    const r = summarize(records, run(3_000));
    expect(r).toMatchObject({ requests: 60, ok: 30, failed: 30, errors: { ECONNREFUSED: 30 } });
    // Last success answered at 950 + 10, the next at 2500 + 10.
    expect(r.longestGapMs).toBe(1_550);
    expect(r.longestGap).toEqual({ fromMs: T0 + 960, toMs: T0 + 2_510, durationMs: 1_550 });
    expect(r.gaps).toEqual([r.longestGap]);
    expect(r.servedBy).toEqual([
      { node: 'one', from: T0 + 10, to: T0 + 960, count: 20 },
      { node: 'two', from: T0 + 2_510, to: T0 + 2_960, count: 10 },
    ]);
    expect(r.firstFailureAt).toBe(T0 + 1_000);
    expect(r.recoveredAt).toBe(T0 + 2_510);
  });

  it('orders by response time, so a slow answer does not hide a gap behind a quick one', () => {
    const records: ClientRequestRecord[] = [
      { startedAt: T0, endedAt: T0 + 10, latencyMs: 10, ok: true, servedBy: 'a' },
      { startedAt: T0 + 50, endedAt: T0 + 900, latencyMs: 850, ok: true, servedBy: 'a' },
      { startedAt: T0 + 100, endedAt: T0 + 110, latencyMs: 10, ok: true, servedBy: 'a' },
    ];
    const r = summarize(records, run(900));
    expect(r.longestGapMs).toBe(790);
    expect(r.longestGap).toMatchObject({ fromMs: T0 + 110, toMs: T0 + 900 });
  });

  it('counts the gap up to the stop when the service never came back', () => {
    const records = [...requests(0, 500, { servedBy: 'one' }), ...requests(500, 2_000, { ok: false, error: 'timeout' })];
    const r = summarize(records, run(2_000));
    expect(r.longestGap).toEqual({ fromMs: T0 + 460, toMs: T0 + 2_000, durationMs: 1_540 });
    expect(r.firstFailureAt).toBe(T0 + 500);
    expect(r.recoveredAt).toBeUndefined();
  });

  it('does not count the time before the first success, nor a short tail, as gaps', () => {
    const records = [...requests(0, 400, { ok: false, error: 'ECONNREFUSED' }), ...requests(400, 1_000, { servedBy: 'one' })];
    const r = summarize(records, run(1_000));
    expect(r.longestGapMs).toBe(50);
    expect(r.gaps).toEqual([]);
    expect(r.recoveredAt).toBe(T0 + 410);
  });

  it('recovers only after the last failure, and names each run of a flapping service', () => {
    const records = [
      ...requests(0, 200, { servedBy: 'a' }),
      ...requests(200, 400, { ok: false, error: 'HTTP 503', status: 503 }),
      ...requests(400, 600, { servedBy: 'b' }),
      ...requests(600, 800, { ok: false, error: 'HTTP 503', status: 503 }),
      ...requests(800, 1_000, { servedBy: 'a' }),
      ...requests(1_000, 1_100, {}),
    ];
    const r = summarize(records, run(1_100));
    expect(r.servedBy.map((s) => s.node)).toEqual(['a', 'b', 'a', UNKNOWN_NODE]);
    expect(r.gaps).toHaveLength(2);
    expect(r.firstFailureAt).toBe(T0 + 200);
    expect(r.recoveredAt).toBe(T0 + 810);
  });

  it('reports the whole run as the gap when nothing succeeded', () => {
    const r = summarize(requests(0, 1_000, { ok: false, error: 'timeout' }), run(1_000));
    expect(r).toMatchObject({ ok: 0, failed: 20, longestGapMs: 1_000, servedBy: [], firstFailureAt: T0 });
    expect(r.gaps).toEqual([{ fromMs: T0, toMs: T0 + 1_000, durationMs: 1_000 }]);
  });
});

describe('format', () => {
  it('says in one line how it went, with the longest gap in clock time and the serving nodes', () => {
    const records = [
      ...requests(0, 3_100, { servedBy: 'alpha' }),
      ...requests(3_100, 8_900, { ok: false, error: 'ECONNREFUSED' }),
      ...requests(8_900, 31_200, { servedBy: 'beta' }),
    ];
    const r = summarize(records, run(31_200));
    expect(format(r)).toBe('20 req/s for 31.2 s: 508 ok, 116 failed (ECONNREFUSED 116); longest gap 5.85 s (12:01:03.060 → 12:01:08.910); served by alpha then beta');
  });

  it('says when nothing answered, and abbreviates a long list of runs', () => {
    expect(format(summarize(requests(0, 500, { ok: false, error: 'timeout' }), run(500)))).toBe('20 req/s for 0.5 s: 0 ok, 10 failed (timeout 10); no successful response');
    const flapping = Array.from({ length: 10 }, (_, i) => requests(i * 100, i * 100 + 100, { servedBy: i % 2 === 0 ? 'a' : 'b' })).flat();
    expect(format(summarize(flapping, run(1_000)))).toMatch(/served by a then b then a then b then a then b … \(10 runs\)$/);
  });
});
