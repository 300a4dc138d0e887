// Part (z): channel.compression. Two real agents replicate a text-like file (log lines) and a
// random one with compression off, at level 1 and at level 6, side by side in one run, once on
// the unlimited loopback and once through channel.bandwidthLimit standing in for a slow link.
// For each: seconds until the passive acknowledged the file and holds it byte-identical, bytes
// on the channel (both directions, TLS and framing included), the active agent's CPU seconds,
// and the longest heartbeat silence either node saw (heartbeat every 250 ms here, so a stall of
// the event loop shows). Before the pairs, the codec alone: one 64 KiB block at a time, as the
// journal compresses it, on this process's event loop. Writes bench/results/compression.{md,json}.
import fs from 'node:fs';
import { procCpuSeconds } from './process-sampler.ts';
import path from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { AgentStatus } from '../agent/control/index.ts';
import { hash64, initHash } from '../shared/hash.ts';
import { compressWrite, compressWriteAsync, decompressWrite, type WriteRecord } from '../shared/protocol/index.ts';
import { BenchPair } from './bench-pair.ts';
import { nowMs, sleep } from './clock.ts';
import { sha256File, sizeOf, writeRandomFile } from './file-checks.ts';
import { PROJECT } from './bench-pair.ts';

export type Level = 'off' | 1 | 6;
export const LEVELS: Level[] = ['off', 1, 6];
type Kind = 'text' | 'random';
const KINDS: Kind[] = ['text', 'random'];
const BLOCK_BYTES = 64 * 1024;
const HEARTBEAT = { interval: '250ms', threshold: 4 };
const DONE_TIMEOUT_MS = 10 * 60_000;

export interface CodecRow {
  kind: Kind;
  level: Level;
  /** Compressed (or kept raw) bytes / raw bytes. */
  ratio: number;
  /** Raw MiB per second through compressWrite, one block after another on the event loop (small files, synchronisation runs). */
  compressMiBs: number | null;
  /** Raw MiB per second through compressWriteAsync, 16 blocks (a 1 MiB chunk) at a time in the thread pool (big files). */
  poolMiBs: number | null;
  /** Raw MiB per second through decompressWrite (the passive). */
  inflateMiBs: number | null;
  /** Median and slowest single block, ms: how long one block holds the event loop. */
  medianBlockMs: number | null;
  maxBlockMs: number | null;
  /** Blocks kept compressed / all blocks. */
  compressedShare: number | null;
}

export interface PairRow {
  link: string;
  level: Level;
  kind: Kind;
  bytes: number;
  seconds: number;
  /** bytes / seconds, MiB/s of file data. */
  throughputMiBs: number;
  wireBytes: number;
  /** wireBytes / bytes. */
  wireRatio: number;
  /** The active agent's user + system CPU seconds over the transfer. */
  activeCpuSeconds: number | null;
  passiveCpuSeconds: number | null;
  /** Longest heartbeat silence alpha and beta saw over the pair's life (interval 250 ms). */
  longestHeartbeatGapMs: number;
  /** Longest time since the last heartbeat either node reported while this file replicated (polled every 20 ms). */
  transferSilenceMs: number;
  verified: boolean;
}

export interface CompressionResult {
  fileBytes: number;
  limitedFileBytes: number;
  limitBytesPerSecond: number;
  codec: CodecRow[];
  pairs: PairRow[];
  notes: string[];
}

/** Log-like text: a fixed line structure with varying numbers (as the integration test writes). */
export function writeTextFile(file: string, bytes: number, seed = 7): void {
  const levels = ['INFO', 'WARN', 'DEBUG', 'ERROR'];
  const fd = fs.openSync(file, 'w');
  let x = seed;
  let written = 0;
  try {
    while (written < bytes) {
      const lines: string[] = [];
      let n = 0;
      while (n < 1 << 20) {
        x = (x * 1103515245 + 12345) & 0x7fffffff;
        const line = `2026-11-23T08:${String(x % 60).padStart(2, '0')}:${String((x >> 6) % 60).padStart(2, '0')}.${x % 1000} ${levels[x % 4]} request id=${x.toString(16)} path=/api/v1/items/${x % 9973} status=${200 + (x % 5)} took=${x % 731}ms\n`;
        lines.push(line);
        n += line.length;
      }
      const chunk = Buffer.from(lines.join('')).subarray(0, Math.min(1 << 20, bytes - written));
      fs.writeSync(fd, chunk);
      written += chunk.length;
    }
  } finally {
    fs.closeSync(fd);
  }
}

async function codecRow(kind: Kind, level: Level, sample: Buffer): Promise<CodecRow> {
  const blocks: WriteRecord[] = [];
  for (let o = 0; o < sample.length; o += BLOCK_BYTES) {
    const data = sample.subarray(o, o + BLOCK_BYTES);
    blocks.push({ op: 'write', seq: 1, root: 'data', path: 'f', offset: o, data, hash: hash64(data) });
  }
  if (level === 'off') return { kind, level, ratio: 1, compressMiBs: null, poolMiBs: null, inflateMiBs: null, medianBlockMs: null, maxBlockMs: null, compressedShare: null };
  const blockMs: number[] = [];
  let out = 0;
  const packed: WriteRecord[] = [];
  const t0 = nowMs();
  for (const b of blocks) {
    const s = nowMs();
    const c = compressWrite(b, level);
    blockMs.push(nowMs() - s);
    out += c.data.length;
    packed.push(c);
  }
  const compressMs = nowMs() - t0;
  const t1 = nowMs();
  const t2 = nowMs();
  for (let i = 0; i < blocks.length; i += 16) await Promise.all(blocks.slice(i, i + 16).map((b) => compressWriteAsync(b, level)));
  const poolMs = nowMs() - t2;
  const compressed = packed.filter((c) => c.encoding !== undefined);
  for (const c of compressed) decompressWrite(c);
  const inflateMs = nowMs() - t1;
  const mib = sample.length / 2 ** 20;
  const inflatedMib = compressed.reduce((n, c) => n + c.rawLength!, 0) / 2 ** 20;
  blockMs.sort((a, b) => a - b);
  return {
    kind,
    level,
    ratio: out / sample.length,
    compressMiBs: mib / (compressMs / 1000),
    poolMiBs: mib / (poolMs / 1000),
    inflateMiBs: compressed.length === 0 ? null : inflatedMib / (inflateMs / 1000),
    medianBlockMs: blockMs[blockMs.length >> 1]!,
    maxBlockMs: blockMs[blockMs.length - 1]!,
    compressedShare: compressed.length / packed.length,
  };
}

/** utime + stime of a process, seconds (Linux /proc). */
const cpuSeconds = (pid: number | undefined): number | null => (pid === undefined ? null : procCpuSeconds(pid));

function wire(s: AgentStatus): number {
  return s.channel.bytesOut + s.channel.bytesIn;
}

async function pairWith(dir: string, level: Level, limit: string | undefined, encryption: 'tls-psk' | 'none'): Promise<BenchPair> {
  const p = await BenchPair.create(dir, { encryption });
  for (const n of ['alpha', 'beta'] as const) {
    const file = p.node(n).config;
    const doc = parseYaml(fs.readFileSync(file, 'utf8')) as Record<string, any>;
    doc.channel = { ...(doc.channel ?? {}), compression: level, ...(limit === undefined ? {} : { bandwidthLimit: limit }) };
    doc.heartbeat = HEARTBEAT;
    fs.writeFileSync(file, stringifyYaml(doc));
  }
  await p.start('alpha');
  await p.start('beta');
  await p.waitSettled();
  return p;
}

async function transfer(p: BenchPair, src: string, sha: string, name: string, bytes: number): Promise<Omit<PairRow, 'link' | 'level' | 'kind' | 'longestHeartbeatGapMs'>> {
  const before = (await p.waitQuiet(500)).alpha;
  const cpu0 = [cpuSeconds(p.pid('alpha')), cpuSeconds(p.pid('beta'))];
  const dest = p.data('beta', name);
  const t0 = nowMs();
  fs.copyFileSync(src, p.data('alpha', name));
  let after: AgentStatus | undefined;
  let transferSilenceMs = 0;
  for (;;) {
    if (nowMs() - t0 > DONE_TIMEOUT_MS) throw new Error(`(z) ${name} not on the passive within ${DONE_TIMEOUT_MS / 1000} s`);
    await sleep(20);
    const [s, b] = await Promise.all([p.status('alpha').catch(() => undefined), p.status('beta').catch(() => undefined)]);
    for (const x of [s, b]) transferSilenceMs = Math.max(transferSilenceMs, x?.links.heartbeat.lastHeardMsAgo ?? 0);
    if (s === undefined || !s.replication.inSync || s.capture?.pendingPaths !== 0 || s.replication.appliedSeq <= before.replication.headSeq) continue;
    if (sizeOf(dest) !== bytes) continue;
    after = s;
    break;
  }
  const seconds = (nowMs() - t0) / 1000;
  const cpu1 = [cpuSeconds(p.pid('alpha')), cpuSeconds(p.pid('beta'))];
  const verified = sha256File(dest) === sha;
  const wireBytes = wire(after) - wire(before);
  const d = (i: number) => (cpu0[i] == null || cpu1[i] == null ? null : cpu1[i]! - cpu0[i]!);
  return { bytes, seconds, throughputMiBs: bytes / 2 ** 20 / seconds, wireBytes, wireRatio: wireBytes / bytes, activeCpuSeconds: d(0), passiveCpuSeconds: d(1), transferSilenceMs, verified };
}

export async function measureCompression(
  opts: { quick: boolean; baseDir: string; encryption: 'tls-psk' | 'none' },
  progress: (line: string) => void,
): Promise<CompressionResult> {
  await initHash();
  const fileBytes = opts.quick ? 64 * 2 ** 20 : 256 * 2 ** 20;
  const limitedFileBytes = opts.quick ? 8 * 2 ** 20 : 32 * 2 ** 20;
  const limit = 2 * 2 ** 20;
  const srcDir = path.join(opts.baseDir, 'z-src');
  fs.mkdirSync(srcDir, { recursive: true });
  const src: Record<string, { file: string; sha: string; bytes: number }> = {};
  for (const [label, bytes] of [['', fileBytes], ['-limited', limitedFileBytes]] as const) {
    const t = path.join(srcDir, `text${label}.log`);
    writeTextFile(t, bytes);
    const r = path.join(srcDir, `random${label}.bin`);
    src[`random${label}`] = { file: r, sha: writeRandomFile(r, bytes), bytes };
    src[`text${label}`] = { file: t, sha: sha256File(t), bytes };
  }

  progress('(z) the codec alone, 64 KiB blocks');
  const codec: CodecRow[] = [];
  for (const kind of KINDS) {
    const sample = fs.readFileSync(src[kind]!.file).subarray(0, 32 * 2 ** 20);
    for (const level of LEVELS) codec.push(await codecRow(kind, level, sample));
  }

  const pairs: PairRow[] = [];
  const links: { link: string; limit: string | undefined; label: string }[] = [
    { link: 'loopback', limit: undefined, label: '' },
    { link: `bandwidthLimit ${limit / 2 ** 20} MiB/s`, limit: `${limit / 2 ** 20}MiB`, label: '-limited' },
  ];
  for (const l of links) {
    for (const level of LEVELS) {
      progress(`(z) ${l.link}, compression ${level}: starting a pair`);
      const p = await pairWith(path.join(opts.baseDir, `pair-z-${level}${l.label}`), level, l.limit, opts.encryption);
      try {
        const rows: PairRow[] = [];
        for (const kind of KINDS) {
          const s = src[`${kind}${l.label}`]!;
          progress(`(z) ${l.link}, compression ${level}: ${kind}, ${s.bytes} bytes`);
          rows.push({ link: l.link, level, kind, longestHeartbeatGapMs: 0, ...(await transfer(p, s.file, s.sha, `${kind}.dat`, s.bytes)) });
        }
        const gaps = await Promise.all((['alpha', 'beta'] as const).map(async (n) => (await p.status(n)).links.heartbeat.longestGapMs));
        for (const r of rows) r.longestHeartbeatGapMs = Math.max(...gaps);
        pairs.push(...rows);
      } finally {
        await p.stop();
      }
    }
  }
  fs.rmSync(srcDir, { recursive: true, force: true });
  return {
    fileBytes,
    limitedFileBytes,
    limitBytesPerSecond: limit,
    codec,
    pairs,
    notes: [
      'Wire bytes are alpha\'s channel counters (bytesOut + bytesIn): TLS, framing, heartbeats and acknowledgements included.',
      'Heartbeat silence: the heartbeat interval is 250 ms and a node counts the channel down after 1,000 ms. "During the file": the largest time since the last heartbeat that either node reported while the file replicated (status polled every 20 ms). "Over the pair\'s life": the longest channel silence (no heartbeat, no other byte from the peer) either node saw since it started (start-up, initial synchronisation, both files).',
      'Times include capture\'s wait for a big file to be quiet and fsyncs on both sides; on the loopback they are dominated by the disk, and on 2 shared cores they vary by tens of percent from run to run.',
      'CPU seconds from /proc/<pid>/stat (user + system) over the transfer, all threads: capture compresses the blocks of big files in libuv\'s thread pool.',
      'Both agents and the benchmark share the 2 cores: on two real servers the active has its cores to itself.',
    ],
  };
}

const f = (n: number | null, d = 2) => (n === null ? '—' : n.toFixed(d));
const mib = (n: number) => (n / 2 ** 20).toFixed(1);

export function renderCompressionMarkdown(r: CompressionResult, header: string): string {
  const out: string[] = [header, ''];
  out.push('### The codec alone (64 KiB blocks, this process)', '');
  out.push('"event loop": one block after another on the event loop (small files, synchronisation runs; the block times are how long each holds it). "thread pool": 16 blocks at a time in libuv\'s pool, as capture compresses big files. Inflate: the passive, on its event loop.', '');
  out.push('| data | level | size after / before | blocks kept compressed | event loop MiB/s | thread pool MiB/s | inflate MiB/s | median block ms | slowest block ms |', '|---|---|---|---|---|---|---|---|---|');
  for (const c of r.codec) {
    out.push(`| ${c.kind} | ${c.level} | ${f(c.ratio, 3)} | ${c.compressedShare === null ? '—' : `${Math.round(c.compressedShare * 100)}%`} | ${f(c.compressMiBs, 0)} | ${f(c.poolMiBs, 0)} | ${f(c.inflateMiBs, 0)} | ${f(c.medianBlockMs, 3)} | ${f(c.maxBlockMs, 2)} |`);
  }
  out.push('');
  for (const link of [...new Set(r.pairs.map((p) => p.link))]) {
    const rows = r.pairs.filter((p) => p.link === link);
    const size = rows[0]?.bytes ?? 0;
    out.push(`### Two agents, ${link}: a new ${mib(size)} MiB file`, '');
    out.push('| data | compression | seconds | MiB/s | wire MiB | wire / data | vs off: wire | vs off: time | active CPU s | passive CPU s | heartbeat silence during the file, ms | over the pair\'s life, ms | identical |', '|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const p of rows) {
      const off = rows.find((x) => x.kind === p.kind && x.level === 'off');
      out.push(
        `| ${p.kind} | ${p.level} | ${f(p.seconds)} | ${f(p.throughputMiBs, 1)} | ${mib(p.wireBytes)} | ${f(p.wireRatio, 3)} | ${off === undefined ? '—' : f(p.wireBytes / off.wireBytes, 3)} | ${off === undefined ? '—' : f(p.seconds / off.seconds, 2)} | ${f(p.activeCpuSeconds)} | ${f(p.passiveCpuSeconds)} | ${p.transferSilenceMs} | ${p.longestHeartbeatGapMs} | ${p.verified ? 'yes' : 'NO'} |`,
      );
    }
    out.push('');
  }
  out.push(...r.notes.map((n) => `- ${n}`), '');
  return out.join('\n');
}

export function writeCompressionResults(r: CompressionResult, header: string): string {
  const dir = path.join(PROJECT, 'bench/results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'compression.json'), `${JSON.stringify(r, null, 2)}\n`);
  const md = renderCompressionMarkdown(r, header);
  fs.writeFileSync(path.join(dir, 'compression.md'), md);
  return md;
}
