// channel.compression with two real agents: text-like files arrive byte-identical while the
// channel carries a fraction of their size; random data costs no more bytes than with
// compression off; and a compressed block that does not inflate is refused with its own code.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initHash, hash64 } from '../../../shared/hash.ts';
import { loadConfig } from '../../../shared/config/index.ts';
import { readPairKey } from '../../../shared/pair-key.ts';
import { silentLogger } from '../../../shared/log.ts';
import { ChannelServer, channelOptionsFromConfig, type PeerConnection } from '../../../agent/channel/index.ts';
import { compressWrite, encodeFrame, PROTOCOL_VERSION, type DataRecord, type WriteRecord } from '../../../shared/protocol/index.ts';
import { TestPair } from '../../helpers/pair.ts';

let pair: TestPair | undefined;
const servers: ChannelServer[] = [];
beforeAll(async () => {
  await initHash();
});
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  await pair?.cleanup();
  pair = undefined;
});

const MIB = 1 << 20;

/** Log-like text: repeated structure with varying numbers, about what an application writes. */
function textLike(bytes: number, seed: number): Buffer {
  const levels = ['INFO', 'WARN', 'DEBUG', 'ERROR'];
  const lines: string[] = [];
  let n = 0;
  let x = seed;
  while (n < bytes) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const line = `2026-11-23T08:${String(x % 60).padStart(2, '0')}:${String((x >> 6) % 60).padStart(2, '0')}.${x % 1000} ${levels[x % 4]} request id=${x.toString(16)} path=/api/v1/items/${x % 9973} status=${200 + (x % 5)} took=${x % 731}ms\n`;
    lines.push(line);
    n += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

/** Bytes alpha put on the channel while `write` replicated, and the time it took. */
async function sentWhile(p: TestPair, write: () => void): Promise<{ bytes: number; ms: number }> {
  const before = (await p.status('alpha')).channel.bytesOut;
  const t0 = Date.now();
  write();
  await p.waitIdentical(60_000);
  const ms = Date.now() - t0;
  return { bytes: (await p.status('alpha')).channel.bytesOut - before, ms };
}

/** A pair with `compression` on alpha (beta keeps the default, off: it inflates regardless). */
async function measure(compression: 'off' | number, text: Buffer, random: Buffer): Promise<{ text: number; random: number; gaps: number[] }> {
  pair = await TestPair.create({
    emptyData: true,
    config: (doc, node) => {
      if (node === 'alpha') doc.channel = { ...doc.channel, compression };
      doc.heartbeat = { interval: '250ms', threshold: 4 };
    },
  });
  const p = pair;
  await p.startBoth();
  await p.waitFor('beta', 'connected and in sync', (s) => s.peer.connected && s.replication.inSync);
  const t = await sentWhile(p, () => {
    fs.mkdirSync(p.data('alpha', 'logs'));
    for (let i = 0; i < 4; i++) fs.writeFileSync(p.data('alpha', `logs/app-${i}.log`), text.subarray((i * text.length) / 4, ((i + 1) * text.length) / 4));
  });
  const r = await sentWhile(p, () => fs.writeFileSync(p.data('alpha', 'random.bin'), random));
  for (let i = 0; i < 4; i++) expect(fs.readFileSync(p.data('beta', `logs/app-${i}.log`)).equals(fs.readFileSync(p.data('alpha', `logs/app-${i}.log`)))).toBe(true);
  expect(fs.readFileSync(p.data('beta', 'random.bin')).equals(random)).toBe(true);
  const gaps = await Promise.all((['alpha', 'beta'] as const).map(async (n) => (await p.status(n)).links.heartbeat.longestGapMs));
  process.stdout.write(
    `[compression] ${compression}: text ${(text.length / MIB).toFixed(0)} MiB -> ${(t.bytes / MIB).toFixed(2)} MiB on the wire in ${t.ms} ms; ` +
      `random ${(random.length / MIB).toFixed(0)} MiB -> ${(r.bytes / MIB).toFixed(2)} MiB in ${r.ms} ms; longest heartbeat silence ${gaps.join(' / ')} ms\n`,
  );
  await p.cleanup();
  pair = undefined;
  return { text: t.bytes, random: r.bytes, gaps };
}

describe('compression', () => {
  it('replicates text byte-identical with a fraction of its bytes on the wire, and random data with no more than uncompressed', async () => {
    const text = textLike(8 * MIB, 7);
    const random = crypto.randomBytes(4 * MIB);
    const on = await measure(6, text, random);
    const off = await measure('off', text, random);
    // Text-like logs deflate to well under a third; the channel carries the compressed blocks.
    expect(on.text).toBeLessThan(text.length / 3);
    expect(off.text).toBeGreaterThan(text.length);
    // Random blocks stay raw: the same bytes as without compression, give or take heartbeats.
    expect(on.random).toBeLessThanOrEqual(off.random * 1.01 + 16 * 1024);
    expect(on.random).toBeLessThan(random.length * 1.02);
    for (const g of [...on.gaps, ...off.gaps]) expect(g).toBeLessThan(1_000);
  });

  it('compresses the initial synchronisation too, and a passive with compression on of its own reads it', async () => {
    pair = await TestPair.create({
      emptyData: true,
      config: (doc) => {
        doc.channel = { ...doc.channel, compression: 1 };
      },
    });
    const p = pair;
    const text = textLike(6 * MIB, 11);
    fs.mkdirSync(p.data('alpha', 'old'));
    for (let i = 0; i < 3; i++) fs.writeFileSync(p.data('alpha', `old/app-${i}.log`), text.subarray(i * 2 * MIB, (i + 1) * 2 * MIB));
    // alpha starts alone, journals nothing for what was already there (baseline), then beta
    // joins empty: what it gets comes through the synchronisation.
    await p.start('alpha');
    await p.waitFor('alpha', 'capture running', (s) => s.capture?.state === 'running');
    await p.start('beta');
    await p.waitIdentical(60_000);
    const sent = (await p.status('alpha')).channel.bytesOut;
    process.stdout.write(`[compression] initial synchronisation at level 1: ${(text.length / MIB).toFixed(0)} MiB of text -> ${(sent / MIB).toFixed(2)} MiB on the wire\n`);
    expect(sent).toBeLessThan(text.length / 3);
    expect(p.logLines('beta').some((l) => String(l.msg).startsWith('sync: complete'))).toBe(true);
  });

  it('refuses a batch whose compressed block does not inflate, writes nothing of it, and raises an alarm', async () => {
    pair = await TestPair.create({ emptyData: true });
    const p = pair;
    // A stand-in for alpha on its channel address, holding the real pair key.
    const config = loadConfig(p.node('alpha').config);
    const server = new ChannelServer(channelOptionsFromConfig(config, readPairKey(config.keyFile), silentLogger()).server);
    servers.push(server);
    const conn = new Promise<PeerConnection>((resolve) => server.once('connection', resolve));
    await server.listen();
    await p.start('beta');
    const c = await conn;
    const raw = textLike(64 * 1024, 3);
    const good = compressWrite<WriteRecord>({ op: 'write', seq: 2, root: 'data', path: 'bad.log', offset: 0, data: raw, hash: hash64(raw) }, 6);
    const records: DataRecord[] = [
      { op: 'file', seq: 1, root: 'data', path: 'bad.log', size: raw.length },
      { ...good, data: crypto.randomBytes(good.data.length) },
    ];
    const frames = Buffer.concat([...records.map((r) => encodeFrame(r)), encodeFrame({ op: 'commit', first: 1, last: 2, consistent: true, ts: Date.now(), generation: 'rogue' })]);
    c.send({ t: 'hello', proto: PROTOCOL_VERSION, pair: 'demo', node: 'alpha', role: 'active', generation: 'rogue', epoch: 9, serving: true, blockSize: 65536, headSeq: 2, firstSeq: 1, appliedSeq: 0, syncId: '' });
    c.send({ t: 'batch', first: 1, last: 2, frames });
    const s = await p.waitFor('beta', 'an alarm', (st) => st.alarms.some((a) => a.code === 'TANDEM_ERR_BLOCK_UNDECODABLE'));
    expect(s.replication.appliedSeq).toBe(0);
    expect(fs.existsSync(path.join(p.data('beta'), 'bad.log'))).toBe(false);
    const line = p.logLines('beta').find((l) => l.code === 'TANDEM_ERR_BLOCK_UNDECODABLE');
    expect(line?.msg).toContain('do not inflate');
  });
});
