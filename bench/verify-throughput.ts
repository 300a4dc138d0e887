// (v) `tandem verify` throughput: a pair in sync holding a tree of TANDEM_BENCH_VERIFY_BYTES
// (default 1 GiB; the issue asks for 10 GiB), verified with verify.rate 0 (no limit), side by
// side with a plain hash of the same tree in one process (read + xxhash64 per block, what
// capture does): the ratio says what the verification's protocol costs over the hashing it
// cannot avoid. Both run on the same machine, so verify reads the tree twice (once per node)
// where the plain hash reads it once. Results go to bench/results/verify.md and verify.json.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { readBlocks } from '../agent/capture/index.ts';
import { initHash } from '../shared/hash.ts';
import { BenchPair, PROJECT } from './bench-pair.ts';
import { machineInfo } from './machine.ts';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const BIG_FILE_BYTES = 16 * MiB;
const SMALL_FILE_BYTES = 16 * 1024;
/** A quarter of the bytes in small files, in directories of 250: many paths, not only big reads. */
const SMALL_SHARE = 0.25;

export interface VerifyBenchResult {
  treeBytes: number;
  files: number;
  blockSize: number;
  plainHash: { ms: number; gbPerSec: number };
  plainHashBothTrees: { ms: number; gbPerSec: number };
  verify: { ms: number; gbPerSec: number; differences: number; pathsDone: number; bytesDone: number; channelBytes: number };
  ratio: number;
  ratioBothTrees: number;
}

export function verifyTreeBytes(): number {
  const v = process.env.TANDEM_BENCH_VERIFY_BYTES;
  if (v === undefined || v === '') return GiB;
  const n = Number(v);
  if (!Number.isFinite(n) || n < MiB) throw new Error(`TANDEM_BENCH_VERIFY_BYTES: expected a number of bytes (at least 1 MiB), got ${JSON.stringify(v)}`);
  return Math.floor(n);
}

/** Writes the same tree into both data directories; returns the number of files. */
export function writeTree(dirs: string[], bytes: number): number {
  const smallBytes = Math.floor(bytes * SMALL_SHARE);
  const small = Math.floor(smallBytes / SMALL_FILE_BYTES);
  const big = Math.max(1, Math.floor((bytes - small * SMALL_FILE_BYTES) / BIG_FILE_BYTES));
  const buf = Buffer.allocUnsafe(BIG_FILE_BYTES);
  let seed = 1;
  const fillRandom = (b: Buffer) => {
    for (let i = 0; i + 4 <= b.length; i += 4) b.writeUInt32LE((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0), i);
  };
  for (let i = 0; i < big; i++) {
    fillRandom(buf);
    for (const d of dirs) {
      fs.mkdirSync(path.join(d, 'big'), { recursive: true });
      fs.writeFileSync(path.join(d, 'big', `f${i}.bin`), buf);
    }
  }
  const sb = buf.subarray(0, SMALL_FILE_BYTES);
  for (let i = 0; i < small; i++) {
    fillRandom(sb);
    for (const d of dirs) {
      const sub = path.join(d, 'small', `d${Math.floor(i / 250)}`);
      if (i % 250 === 0) fs.mkdirSync(sub, { recursive: true });
      fs.writeFileSync(path.join(sub, `s${i}.bin`), sb);
    }
  }
  return big + small;
}

/** Reads and hashes every file under `dirs`, block by block, in this process. */
async function plainHash(dirs: string[], blockSize: number): Promise<number> {
  await initHash();
  const t0 = performance.now();
  for (const d of dirs) {
    for (const e of fs.readdirSync(d, { recursive: true, withFileTypes: true })) {
      if (!e.isFile()) continue;
      const r = await readBlocks(path.join(e.parentPath, e.name), blockSize, Date.now, () => {});
      if (r.kind !== 'file') throw new Error(`plain hash: ${e.name} is not a file`);
    }
  }
  return performance.now() - t0;
}

export async function measureVerify(baseDir: string, opts: { encryption: 'tls-psk' | 'none' }, progress: (line: string) => void): Promise<VerifyBenchResult> {
  const treeBytes = verifyTreeBytes();
  const pair = await BenchPair.create(path.join(baseDir, 'verify'), { encryption: opts.encryption });
  try {
    for (const n of ['alpha', 'beta'] as const) {
      const file = pair.node(n).config;
      const doc = parseYaml(fs.readFileSync(file, 'utf8')) as Record<string, any>;
      doc.verify = { rate: '0' };
      fs.writeFileSync(file, stringifyYaml(doc));
    }
    progress(`(v) writing a ${(treeBytes / GiB).toFixed(2)} GiB tree on both nodes`);
    const files = writeTree([pair.data('alpha'), pair.data('beta')], treeBytes);
    const blockSize = pair.config('alpha').blockSize;
    await pair.start('alpha');
    await pair.start('beta');
    progress(`(v) ${files} files; waiting for the pair to be in sync (the passive hashes its tree once)`);
    await pair.waitQuiet(1000, 60 * 60_000);

    progress('(v) plain hash of the tree in one process');
    const plainMs = await plainHash([pair.data('alpha')], blockSize);
    const plainBothMs = await plainHash([pair.data('alpha'), pair.data('beta')], blockSize);

    progress('(v) tandem verify');
    const before = await pair.status('alpha');
    const t0 = performance.now();
    const run = spawnSync(process.execPath, [path.join(PROJECT, 'bin/tandem.mjs'), 'verify', '-c', pair.node('alpha').config, '--json'], { encoding: 'utf8', timeout: 4 * 60 * 60_000 });
    const verifyMs = performance.now() - t0;
    if (run.status !== 0) throw new Error(`tandem verify exited ${run.status}: ${run.stderr.slice(-2000)}`);
    const out = JSON.parse(run.stdout) as { differences: number; pathsDone: number; bytesDone: number; durationMs: number };
    const after = await pair.status('alpha');
    const channelBytes = after.channel.bytesIn + after.channel.bytesOut - before.channel.bytesIn - before.channel.bytesOut;
    const gbps = (bytes: number, ms: number) => bytes / 1e9 / (ms / 1000);
    const r: VerifyBenchResult = {
      treeBytes,
      files,
      blockSize,
      plainHash: { ms: Math.round(plainMs), gbPerSec: gbps(treeBytes, plainMs) },
      plainHashBothTrees: { ms: Math.round(plainBothMs), gbPerSec: gbps(treeBytes, plainBothMs) },
      verify: { ms: Math.round(verifyMs), gbPerSec: gbps(treeBytes, verifyMs), differences: out.differences, pathsDone: out.pathsDone, bytesDone: out.bytesDone, channelBytes },
      ratio: plainMs / verifyMs,
      ratioBothTrees: plainBothMs / verifyMs,
    };
    progress(`(v) verify ${r.verify.gbPerSec.toFixed(2)} GB/s of tree, plain hash ${r.plainHash.gbPerSec.toFixed(2)} GB/s: ratio ${r.ratio.toFixed(2)}`);
    writeVerifyResults(r, baseDir);
    return r;
  } finally {
    await pair.stop();
  }
}

function writeVerifyResults(r: VerifyBenchResult, dir: string): void {
  const m = machineInfo(dir);
  const outDir = path.join(PROJECT, 'bench/results');
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'verify.json'), `${JSON.stringify({ machine: m, finishedAt: new Date().toISOString(), ...r }, null, 2)}\n`);
  const gib = (b: number) => `${(b / GiB).toFixed(2)} GiB`;
  const md = `# tandem verify throughput

\`npm run bench -- --only v\` (tree size from \`TANDEM_BENCH_VERIFY_BYTES\`, default 1 GiB), ${new Date().toISOString()}.
Machine: ${JSON.stringify(m)}.

A pair in sync holding ${gib(r.treeBytes)} in ${r.files} files (three quarters in 16 MiB files, a quarter in
16 KiB files, 250 to a directory), block size ${r.blockSize / 1024} KiB, \`verify.rate: 0\` (no limit). Both
nodes run on this machine, so the verification reads the tree twice (once on each node) where
the plain hash reads it once; the files were just written, so reads come from the page cache
where it holds them. GB/s are of the tree's size (10^9 bytes per second).

| measure | time | throughput |
|---|---|---|
| plain hash of the tree, one process (read + xxhash64 per block) | ${(r.plainHash.ms / 1000).toFixed(2)} s | ${r.plainHash.gbPerSec.toFixed(2)} GB/s |
| plain hash of both nodes' trees, one process | ${(r.plainHashBothTrees.ms / 1000).toFixed(2)} s | ${r.plainHashBothTrees.gbPerSec.toFixed(2)} GB/s |
| \`tandem verify\` (command to result) | ${(r.verify.ms / 1000).toFixed(2)} s | ${r.verify.gbPerSec.toFixed(2)} GB/s |

Ratio verify / plain hash of one tree: **${r.ratio.toFixed(2)}**; verify / plain hash of both trees:
**${r.ratioBothTrees.toFixed(2)}**. The verification found ${r.verify.differences} difference(s) over ${r.verify.pathsDone} paths and sent
${(r.verify.channelBytes / MiB).toFixed(1)} MiB over the channel, both ways (hashes and stat fields only:
${((100 * r.verify.channelBytes) / r.treeBytes).toFixed(2)}% of the tree).
`;
  fs.writeFileSync(path.join(outDir, 'verify.md'), md);
}
