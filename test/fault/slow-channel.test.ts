// A slow replication channel: the link carries less than the active sends, so megabytes wait in
// the sockets' buffers and a heartbeat waits behind them. The bytes before it are the peer
// talking too: the channel stays up, and the file arrives whole. The default heartbeat timing
// (1 s × 5) over a link of 1 MiB/s (proxies on both channel addresses).
import crypto from 'node:crypto';
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS, FailoverPair } from '../helpers/failover-pair.ts';

let fp: FailoverPair | undefined;
afterEach(async () => {
  await fp?.cleanup();
  fp = undefined;
});

const MIB = 1 << 20;

describe('slow channel', () => {
  it('keeps the channel up while a 24 MiB file crawls through a 1 MiB/s link', async () => {
    fp = await FailoverPair.create(DEFAULTS);
    const p = fp.pair;
    await p.startBoth();
    await p.waitFor('beta', 'connected and in sync', (s) => s.peer.connected && s.replication.inSync, 60_000);
    for (const x of [fp.proxies.chToAlpha, fp.proxies.chToBeta]) await x.throttle(MIB);
    const t0 = Date.now();
    const data = crypto.randomBytes(24 * MIB);
    fs.writeFileSync(p.data('alpha', 'big.bin'), data);
    // How old beta's last heartbeat from alpha got meanwhile (for the record: the heartbeat waits
    // behind the socket's queue and the kernel's buffers, but the channel does not go down).
    let oldestView = 0;
    const poll = setInterval(() => void p.status('beta').then((s) => (oldestView = Math.max(oldestView, s.links.heartbeat.lastHeardMsAgo ?? 0)), () => undefined), 200);
    await p.waitIdentical(180_000);
    clearInterval(poll);
    const ms = Date.now() - t0;
    const gaps = await Promise.all((['alpha', 'beta'] as const).map(async (n) => (await p.status(n)).links.heartbeat.longestGapMs));
    // Every time either node called the channel down meanwhile (none before the throttle: in sync).
    const downs = (['alpha', 'beta'] as const).flatMap((n) =>
      p
        .logLines(n)
        .filter((l) => l.component === 'events' && l.kind === 'link' && l.to === 'down' && l.details?.link === 'channel')
        .map((l) => `${n} ${l.time}: ${l.reason}`),
    );
    process.stdout.write(`[slow-channel] 24 MiB through 1 MiB/s in ${ms} ms; longest silence ${gaps.join(' / ')} ms; beta's view of alpha up to ${oldestView} ms old\n`);
    expect(ms).toBeGreaterThan(20_000); // the link was the limit
    expect(downs).toEqual([]);
    expect(fs.readFileSync(p.data('beta', 'big.bin')).equals(data)).toBe(true);
  });
});
