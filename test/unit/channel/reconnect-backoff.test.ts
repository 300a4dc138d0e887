import { describe, expect, it } from 'vitest';
import { FAILURE_LOG_INTERVAL_MS, ReconnectBackoff, STABLE_CONNECTION_MS, backoffDelayMs } from '../../../agent/channel/reconnect-backoff.ts';
import { FakeClock } from '../../../shared/clock.ts';
import { configSchema } from '../../../shared/config/schema.ts';

const noJitter = () => 0.5;

describe('backoffDelayMs', () => {
  it('doubles from the minimum and stops at the maximum', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 100].map((l) => backoffDelayMs(l, 100, 5_000, noJitter))).toEqual([100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000, 5_000]);
  });

  it('moves each delay by at most 20 % and never above the maximum', () => {
    expect(backoffDelayMs(2, 100, 5_000, () => 0)).toBe(320);
    expect(backoffDelayMs(2, 100, 5_000, () => 0.999_999)).toBe(480);
    expect(backoffDelayMs(10, 100, 5_000, () => 0)).toBe(4_000);
    expect(backoffDelayMs(10, 100, 5_000, () => 0.999_999)).toBe(5_000);
    for (let i = 0; i < 1_000; i++) {
      const d = backoffDelayMs(i % 8, 100, 5_000);
      expect(d).toBeGreaterThanOrEqual(80);
      expect(d).toBeLessThanOrEqual(5_000);
    }
  });
});

describe('ReconnectBackoff', () => {
  function make() {
    const clock = new FakeClock();
    return { clock, b: new ReconnectBackoff({ minMs: 100, maxMs: 1_000, clock, random: noJitter }) };
  }

  it('gives doubling delays up to the cap while attempts keep failing', () => {
    const { b } = make();
    expect(Array.from({ length: 7 }, () => b.nextDelayMs())).toEqual([100, 200, 400, 800, 1_000, 1_000, 1_000]);
  });

  it('starts again from the minimum after a connection that stayed open 10 s', () => {
    const { clock, b } = make();
    b.nextDelayMs();
    b.nextDelayMs();
    b.nextDelayMs();
    b.connected();
    clock.advance(STABLE_CONNECTION_MS);
    b.disconnected();
    expect(b.nextDelayMs()).toBe(100);
  });

  it('keeps backing off after a connection that dropped sooner, so a flapping peer is not hammered', () => {
    const { clock, b } = make();
    b.nextDelayMs();
    b.nextDelayMs();
    b.connected();
    clock.advance(STABLE_CONNECTION_MS - 1);
    b.disconnected();
    expect(b.nextDelayMs()).toBe(400);
  });

  it('logs a failure once per delay level, then once per 30 s at the cap', () => {
    const { clock, b } = make();
    const logged: boolean[] = [];
    const fail = () => {
      const d = b.nextDelayMs();
      logged.push(b.shouldLogFailure('ECONNREFUSED'));
      clock.advance(d);
    };
    for (let i = 0; i < 5; i++) fail(); // 100, 200, 400, 800, 1000: each a new level
    expect(logged).toEqual([true, true, true, true, true]);
    logged.length = 0;
    for (let i = 0; i < 29; i++) fail(); // 29 s at the cap
    expect(logged.every((x) => !x)).toBe(true);
    fail();
    expect(logged.at(-1)).toBe(true);
    expect(b.takeSuppressed()).toBe(29);
    expect(b.takeSuppressed()).toBe(0);
    expect(FAILURE_LOG_INTERVAL_MS).toBe(30_000);
  });

  it('logs at once when the kind of failure changes, and again after a connection', () => {
    const { b } = make();
    for (let i = 0; i < 6; i++) b.nextDelayMs();
    expect(b.shouldLogFailure('ECONNREFUSED')).toBe(true);
    b.nextDelayMs();
    expect(b.shouldLogFailure('ECONNREFUSED')).toBe(false);
    b.nextDelayMs();
    expect(b.shouldLogFailure('TANDEM_ERR_AUTH_FAILED')).toBe(true);
    b.connected();
    b.disconnected();
    b.nextDelayMs();
    expect(b.shouldLogFailure('TANDEM_ERR_AUTH_FAILED')).toBe(true);
  });

  it("with the product's defaults, dials again within a second however long the peer was away", () => {
    // A catch-up after an outage starts when the channel opens again: with a cap of 5 s the
    // next dial after the peer came back was up to 5 s away.
    const { reconnectMin, reconnectMax } = configSchema.shape.channel.parse(undefined);
    for (const random of [() => 0, () => 0.5, () => 0.999_999]) {
      const clock = new FakeClock();
      const b = new ReconnectBackoff({ minMs: reconnectMin, maxMs: reconnectMax, clock, random });
      let waited = 0;
      let longest = 0;
      while (waited < 600_000) {
        const d = b.nextDelayMs();
        longest = Math.max(longest, d);
        waited += d;
      }
      expect(longest).toBeLessThanOrEqual(1_000);
      expect(longest).toBeGreaterThanOrEqual(800);
    }
  });
});
