// How much bulk data the sender lets wait in the channel socket: a quarter second of what the
// link drains, measured from the socket's write completions while data queued, between 512 KiB
// and 8 MiB. Times are given, as the sender gives them.
import { describe, expect, it } from 'vitest';
import { MAX_BYTES, MIN_BYTES, SocketBudget } from '../../../agent/replication/socket-budget.ts';

const MIB = 1 << 20;

/** Completions of `n` writes of `bytes` each at `bytesPerSecond`, each leaving `queued` behind it. */
function drain(b: SocketBudget, start: number, n: number, bytes: number, bytesPerSecond: number, queued = 4 * MIB): number {
  let at = start;
  for (let i = 0; i < n; i++) {
    at += (bytes * 1000) / bytesPerSecond;
    b.written(bytes, at, queued);
  }
  return at;
}

describe('socket budget', () => {
  it('keeps a quarter second of a slow link queued, and the most allowed on a fast one', () => {
    const slow = new SocketBudget();
    expect(slow.bytes).toBe(MIN_BYTES);
    drain(slow, 0, 40, 256 * 1024, 4 * MIB);
    expect(slow.bytesPerSecond).toBeCloseTo(4 * MIB, -3);
    expect(slow.bytes).toBe(MIB); // 4 MiB/s × 250 ms
    const fast = new SocketBudget();
    drain(fast, 0, 200, 4 * MIB, 1000 * MIB);
    expect(fast.bytes).toBe(MAX_BYTES);
    const crawl = new SocketBudget();
    drain(crawl, 0, 20, 64 * 1024, 100 * 1024);
    expect(crawl.bytes).toBe(MIN_BYTES);
  });

  it('follows the link when it slows down, and learns nothing while the socket does not queue', () => {
    const b = new SocketBudget();
    let at = drain(b, 0, 100, 4 * MIB, 400 * MIB);
    expect(b.bytes).toBe(MAX_BYTES);
    // An idle link: completions with nothing behind them, far apart. Not a rate.
    for (let i = 0; i < 10; i++) b.written(4096, (at += 1000), 0);
    expect(b.bytes).toBe(MAX_BYTES);
    at = drain(b, at, 200, 256 * 1024, 2 * MIB);
    expect(b.bytes).toBeLessThan(MIB);
    b.reset();
    expect(b.bytes).toBe(MIN_BYTES);
  });

  it('reads a cluster of completions over their queued time, not as one write in no time', () => {
    const b = new SocketBudget();
    // 1 MiB/s: the kernel takes four 64 KiB writes at once every 250 ms.
    let at = 0;
    b.written(64 * 1024, at, MIB);
    for (let i = 0; i < 20; i++) {
      at += 250;
      for (let k = 0; k < 4; k++) b.written(64 * 1024, at, MIB);
    }
    expect(b.bytesPerSecond).toBeGreaterThan(0.9 * MIB);
    expect(b.bytesPerSecond).toBeLessThan(1.1 * MIB);
  });
});
