// A connection that goes silent for good while new ones would pass: a firewall or NAT between
// the nodes forgot the flow (or TCP's retransmissions back off for a minute after a long
// outage). Neither end is told; only the heartbeat's silence can tell. The nodes must drop it
// and dial again, and the change written meanwhile must arrive: the channel may not wait for
// TCP to give up (about a quarter of an hour). Tuned timing (250 ms × 4): down after 1 s,
// closed after 2 s.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { FailoverPair, TUNED } from '../helpers/failover-pair.ts';

let fp: FailoverPair | undefined;
afterEach(async () => {
  await fp?.cleanup();
  fp = undefined;
});

describe('a silent connection', () => {
  it('is closed after twice the silence that calls the channel down, and the nodes reconnect and replicate without a failover', { timeout: 120_000 }, async () => {
    fp = await FailoverPair.create(TUNED);
    const p = fp.pair;
    await p.startBoth();
    await p.waitFor('beta', 'connected and in sync', (s) => s.peer.connected && s.replication.inSync, 60_000);
    const logFrom = fp.scriptsLog().length;
    const t0 = Date.now();
    for (const x of fp.channelProxies()) x.strand();
    const data = crypto.randomBytes(256 * 1024);
    fs.writeFileSync(p.data('alpha', 'after-the-cut.bin'), data);
    // Seen down first: the stranded connection is not taken for a live one.
    await p.waitFor('beta', 'the channel down', (s) => !s.peer.connected, 30_000);
    // 20 s: closed at 2 s, a dial is at most channel.reconnectMax (1 s) away; a busy machine
    // gets the rest. Without the close the connection stays silent until TCP gives up.
    await p.waitIdentical(20_000);
    const ms = Date.now() - t0;
    const closes = (['alpha', 'beta'] as const).flatMap((n) =>
      p
        .logLines(n)
        .filter((l) => l.msg === 'channel: closing the connection' && l.code === 'TANDEM_ERR_CHANNEL_SILENT')
        .map((l) => `${n}: ${l.reason}`),
    );
    process.stdout.write(`[silent-connection] replicated over a new connection ${ms} ms after the old one went silent; ${closes.join('; ')}\n`);
    expect(fs.readFileSync(p.data('beta', 'after-the-cut.bin')).equals(data)).toBe(true);
    expect(closes.length).toBeGreaterThanOrEqual(1);
    // The silence counted is at least twice interval × threshold (2,000 ms), never less.
    for (const c of closes) expect(Number(/for (\d+) ms/.exec(c)?.[1])).toBeGreaterThan(2_000);
    const [a, b] = await Promise.all([p.waitFor('alpha', 'connected', (s) => s.peer.connected, 20_000), p.waitFor('beta', 'connected', (s) => s.peer.connected, 20_000)]);
    expect([a.role, b.role]).toEqual(['active', 'passive']);
    expect(fp.starts('beta', logFrom)).toEqual([]);
    expect(fp.overlaps()).toEqual([]);
  });
});
