// The last hour of a node's figures, sampled on the fake clock: one row per interval from the
// start, never more than the window holds, columns named.
import { describe, expect, it } from 'vitest';
import { HISTORY_FIELDS, StatusHistory } from '../../../agent/control/status-history.ts';
import { FakeClock } from '../../../shared/clock.ts';
import { statusDoc } from '../events/status-fixture.ts';

describe('status history', () => {
  it('samples the status document every interval and keeps the window only', () => {
    const clock = new FakeClock();
    let sent = 0;
    const h = new StatusHistory({ status: () => statusDoc({ channel: { bytesIn: 0, bytesOut: (sent += 100) }, links: { channel: 'down', public: 'up', heartbeat: { lastHeardMsAgo: null, longestGapMs: 0, rttMs: null } } }), clock, sampleMs: 5000, windowMs: 60_000 });
    h.start();
    clock.advance(12_000);
    let a = h.answer('alpha');
    expect(a.fields).toEqual(HISTORY_FIELDS);
    expect(a.rows.map((r) => r[0] - 1_700_000_000_000)).toEqual([0, 5000, 10_000]);
    expect(a.rows[2]).toEqual([1_700_000_010_000, 1, 0, null, 0, 0, 10, 10, 300, 0]);
    clock.advance(3_600_000);
    a = h.answer('alpha');
    expect(a.rows.length).toBe(13);
    expect(a.rows[a.rows.length - 1]![0] - a.rows[0]![0]).toBe(60_000);
    h.stop();
    expect(clock.pendingTimers()).toBe(0);
  });
});
