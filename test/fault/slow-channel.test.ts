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
    for (const x of fp.channelProxies()) await x.throttle(MIB);
    const t0 = Date.now();
    const data = crypto.randomBytes(24 * MIB);
    fs.writeFileSync(p.data('alpha', 'big.bin'), data);
    // How old beta's last heartbeat from alpha got meanwhile (for the record: the heartbeat waits
    // behind the socket's queue and the kernel's buffers, but the channel does not go down).
    // And the lag beta showed: its queue is empty most of the time, yet what alpha journaled
    // within the channel's delay is on its way.
    // The least lag it showed from 6 s to 18 s into the file, while the link was sure to be full
    // (24 MiB take 24 s at least).
    let oldestView = 0;
    let leastLag = Infinity;
    const poll = setInterval(() => {
      const asked = Date.now() - t0;
      void p.status('beta').then(
        (s) => {
          oldestView = Math.max(oldestView, s.links.heartbeat.lastHeardMsAgo ?? 0);
          if (asked >= 6_000 && asked <= 18_000) leastLag = Math.min(leastLag, s.replication.lagMs);
        },
        () => undefined,
      );
    }, 200);
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
    process.stdout.write(`[slow-channel] 24 MiB through 1 MiB/s in ${ms} ms; longest silence ${gaps.join(' / ')} ms; beta's view of alpha up to ${oldestView} ms old; beta's lag at least ${leastLag} ms from 6 to 18 s\n`);
    expect(ms).toBeGreaterThan(20_000); // the link was the limit
    expect(downs).toEqual([]);
    // Seconds of batches were in flight (the view above) all along: a lag of a few ms would be a
    // passive claiming to hold what it has not seen (its queue was empty most of the time).
    expect(leastLag).toBeGreaterThanOrEqual(1_000);
    expect(fs.readFileSync(p.data('beta', 'big.bin')).equals(data)).toBe(true);
  });

  it('refuses to take over from an active that vanished with seconds of data in flight (failover.maxLagOnFailover 2s)', { timeout: 150_000 }, async () => {
    fp = await FailoverPair.create(DEFAULTS, (doc) => (doc.failover = { ...(doc.failover ?? {}), maxLagOnFailover: '2s' }));
    const p = fp.pair;
    await p.startBoth();
    await p.waitFor('beta', 'connected and in sync', (s) => s.peer.connected && s.replication.inSync, 60_000);
    for (const x of fp.channelProxies()) await x.throttle(MIB);
    fs.writeFileSync(p.data('alpha', 'big.bin'), crypto.randomBytes(24 * MIB));
    // alpha's own measure: what it journaled has waited this long for beta's acknowledgement.
    // 10 s: the sockets' queues are full by then (beta's view of alpha is ~8 s old at most).
    const a = await p.waitFor('alpha', 'its passive 10 s behind', (s) => s.replication.lagMs >= 10_000, 60_000);
    const b = await p.status('beta');
    const logFrom = fp.scriptsLog().length;
    // alpha vanishes: its channel and its public side go at once, as with a dead machine.
    await fp.cutChannel(true);
    await fp.cutPublic('alpha', true);
    const refused = await p.waitFor('beta', 'a refusal', (s) => s.alarms.some((x) => x.code === 'TANDEM_ERR_FAILOVER_REFUSED'), 60_000);
    const why = refused.alarms.find((x) => x.code === 'TANDEM_ERR_FAILOVER_REFUSED')?.message ?? '';
    process.stdout.write(`[slow-channel] alpha ${a.replication.lagMs} ms behind by its own count, beta's lag ${b.replication.lagMs} ms; beta: ${why}\n`);
    expect(why).toMatch(/behind when it last heard from the active \(failover\.maxLagOnFailover is 2000 ms\)/);
    // As far behind as alpha counted (10 s at the cut): alpha's heartbeats say how old the
    // oldest change is that it had not sent yet, and beta adds the way their word took.
    expect(Number(/it was (\d+) ms behind/.exec(why)?.[1])).toBeGreaterThanOrEqual(8_000);
    expect(refused.role).toBe('passive');
    expect(fp.starts('beta', logFrom)).toEqual([]);
  });
});
