// What path resolution and metadata cost on the two hot paths, measured alone (no agents, no
// channel): capture of many small files (hint, lstat, open, read, hash, journal in memory) and
// apply of many small files (records file + write + meta, applied with fsync replaced by a
// no-op so the disk does not hide the CPU). Run before and after a change to either:
//   node bin/run-ts.mjs bench/path-cost.ts [--files N] [--depth D] [--rounds R] [--only capture|apply]
//     [--xattrs]            every file carries one user.* attribute (capture reads it, apply sets it)
//     [--no-xattr-module]   as if @napi-rs/xattr had not loaded (what attributes cost when absent)
// Prints µs per file (median of the rounds) for each path; nothing is asserted.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Capture } from '../agent/capture/index.ts';
import { Applier } from '../agent/apply/applier.ts';
import { Manifest } from '../agent/manifest/index.ts';
import { systemClock } from '../shared/clock.ts';
import { hash64, initHash } from '../shared/hash.ts';
import { silentLogger } from '../shared/log.ts';
import type { DataRecord } from '../shared/protocol/index.ts';
import { MemoryJournal } from '../test/helpers/memory-journal.ts';
import { disableXattrsForTests } from '../agent/tree/index.ts';
import { execFileSync } from 'node:child_process';

const BS = 64 * 1024;

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? def : Number(process.argv[i + 1]);
}

const FILES = arg('files', 5000);
const DEPTH = arg('depth', 3);
const ROUNDS = arg('rounds', 5);
const XATTRS = process.argv.includes('--xattrs');
if (process.argv.includes('--no-xattr-module')) disableXattrsForTests('disabled for this measurement');

function relOf(i: number): string {
  const dirs: string[] = [];
  for (let d = 0; d < DEPTH - 1; d++) dirs.push(`d${d}-${i % (7 + d)}`);
  return [...dirs, `f${i}.txt`].join('/');
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

async function captureRound(): Promise<{ wallUs: number; cpuUs: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-pathcost-c-'));
  try {
    const rels: string[] = [];
    for (let i = 0; i < FILES; i++) {
      const rel = relOf(i);
      fs.mkdirSync(path.join(dir, path.dirname(rel)), { recursive: true });
      fs.writeFileSync(path.join(dir, rel), `file ${i} `.repeat(100));
      rels.push(rel);
    }
    const manifest = new Manifest(['data']);
    const journal = new MemoryJournal();
    const capture = new Capture({
      roots: [{ name: 'data', path: dir, exclude: [] }],
      manifest,
      journal,
      blockSize: BS,
      batchBytes: 4 << 20,
      batchDelayMs: 0,
      settleMs: 60_000,
      scanIntervalMs: 0,
      renameWindowMs: 60,
      baseline: false,
      afterCommit: async () => {},
      log: silentLogger(),
      clock: systemClock,
      watch: false,
    });
    // The start scan journals the directories; the files are what is measured.
    for (const rel of rels) fs.rmSync(path.join(dir, rel));
    await capture.start();
    await capture.whenIdle();
    for (let i = 0; i < FILES; i++) fs.writeFileSync(path.join(dir, rels[i]!), `file ${i} `.repeat(100));
    if (XATTRS) execFileSync('sh', ['-c', `find . -type f -exec setfattr -n user.origin -v bench {} +`], { cwd: dir });
    const t0 = performance.now();
    const c0 = cpuMs();
    for (const rel of rels) capture.hint('data', rel);
    await capture.whenIdle();
    const wallUs = ((performance.now() - t0) * 1000) / FILES;
    const cpuUs = ((cpuMs() - c0) * 1000) / FILES;
    await capture.stop();
    if (journal.records.filter((r) => r.op === 'write').length < FILES) throw new Error('capture missed files');
    return { wallUs, cpuUs };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function applyRound(): Promise<{ wallUs: number; cpuUs: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-pathcost-a-'));
  try {
    const records: DataRecord[] = [];
    let seq = 1;
    const dirs = new Set<string>();
    for (let i = 0; i < FILES; i++) {
      const rel = relOf(i);
      const parts = rel.split('/');
      for (let k = 1; k < parts.length; k++) {
        const d = parts.slice(0, k).join('/');
        if (!dirs.has(d)) {
          dirs.add(d);
          records.push({ op: 'mkdir', seq: seq++, root: 'data', path: d, mode: 0o755 });
        }
      }
      const data = Buffer.from(`file ${i} `.repeat(100));
      records.push({ op: 'file', seq: seq++, root: 'data', path: rel, size: data.length });
      records.push({ op: 'write', seq: seq++, root: 'data', path: rel, offset: 0, data, hash: hash64(data) });
      records.push({ op: 'meta', seq: seq++, root: 'data', path: rel, mode: 0o640, mtimeMs: 1_700_000_000_000 + i, uid: 0, gid: 0, xattrs: XATTRS ? [['user.origin', Buffer.from('bench')]] : [] });
    }
    const manifest = new Manifest(['data']);
    const applier = new Applier({ roots: [{ name: 'data', path: dir, exclude: [] }], manifest, blockSize: BS, log: silentLogger(), seams: { fsync: async () => {} } });
    await applier.init();
    const t0 = performance.now();
    const c0 = cpuMs();
    // Batches of about 4 MiB / 1,000 files, as capture commits them at this rate.
    for (let i = 0; i < records.length; i += 4000) await applier.apply(records.slice(i, i + 4000), async () => {});
    const wallUs = ((performance.now() - t0) * 1000) / FILES;
    const cpuUs = ((cpuMs() - c0) * 1000) / FILES;
    await applier.close();
    return { wallUs, cpuUs };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await initHash();
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
const results: Record<string, { wallUs: number; cpuUs: number }[]> = {};
if (only !== 'apply') results.capture = [];
if (only !== 'capture') results.apply = [];
for (let r = 0; r < ROUNDS; r++) {
  if (results.capture !== undefined) results.capture.push(await captureRound());
  if (results.apply !== undefined) results.apply.push(await applyRound());
}
console.log(`path cost: ${FILES} small files at depth ${DEPTH}${XATTRS ? ', one xattr each' : ''}, median of ${ROUNDS} rounds (tmpdir ${os.tmpdir()})`);
for (const [k, rs] of Object.entries(results)) {
  console.log(`  ${k.padEnd(8)} ${median(rs.map((x) => x.wallUs)).toFixed(1)} µs/file wall, ${median(rs.map((x) => x.cpuUs)).toFixed(1)} µs/file CPU`);
}
