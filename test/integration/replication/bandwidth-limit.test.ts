// channel.bandwidthLimit with two real agents: 8 MiB at 2 MiB/s takes its time (a lower bound,
// which a slow machine cannot break), arrives intact, and the heartbeats keep their rhythm.
import fs from 'node:fs';
import crypto from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { TestPair } from '../../helpers/pair.ts';

let pair: TestPair | undefined;
afterEach(async () => {
  await pair?.cleanup();
  pair = undefined;
});

describe('bandwidth limit', () => {
  it('sends no faster than channel.bandwidthLimit, loses nothing, and never holds back the heartbeat', async () => {
    pair = await TestPair.create({
      emptyData: true,
      config: (doc) => {
        doc.channel = { ...doc.channel, bandwidthLimit: '2MiB' };
        // Batches small against the limit, so that the pace shows within 8 MiB.
        doc.journal = { ...doc.journal, batchBytes: '256KiB' };
        doc.heartbeat = { interval: '250ms', threshold: 4 };
      },
    });
    await pair.startBoth();
    await pair.waitFor('beta', 'connected and in sync', (s) => s.peer.connected && s.replication.inSync);
    const data = crypto.randomBytes(8 << 20);
    const t0 = Date.now();
    fs.writeFileSync(pair.data('alpha', 'big.bin'), data);
    await pair.waitIdentical(60_000);
    const tookMs = Date.now() - t0;
    const gaps = await Promise.all((['alpha', 'beta'] as const).map(async (n) => (await pair!.status(n)).links.heartbeat.longestGapMs));
    process.stdout.write(`[bandwidth] 8 MiB at 2 MiB/s: in sync after ${(tookMs / 1000).toFixed(2)} s; longest heartbeat silence ${gaps.join(' / ')} ms (down after 1000 ms)\n`);
    // One second's worth may leave at once and the last batch overdraws; the rest goes at
    // 2 MiB/s: well over 2.4 s (unlimited, 8 MiB take a fraction of a second here).
    expect(tookMs).toBeGreaterThanOrEqual(2_400);
    expect(crypto.createHash('sha256').update(fs.readFileSync(pair.data('beta', 'big.bin'))).digest('hex')).toBe(crypto.createHash('sha256').update(data).digest('hex'));
    for (const g of gaps) expect(g).toBeLessThan(1_000);
  });
});
