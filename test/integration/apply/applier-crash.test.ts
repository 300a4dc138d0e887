// A real crash: the applier runs in a child process killed with SIGKILL (at a chosen record, or
// after a random delay, so in the middle of a record too), then a fresh applier redoes the batch
// from the last seq the child reported durable. The tree must equal a clean apply's.
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { initHash } from '../../../shared/hash.ts';
import { silentLogger } from '../../../shared/log.ts';
import type { DataRecord } from '../../../shared/protocol/index.ts';
import { Manifest } from '../../../agent/manifest/index.ts';
import { Applier } from '../../../agent/apply/applier.ts';
import { ROOT, RecordBuilder, bytes, manifestDifferences, snapshot, tmpDir } from '../../unit/apply/helpers.ts';

const BS = 4096;
const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'crash-child.ts');
const T0 = 1_700_000_000_000;

/** Many files, directories and renames: long enough that a random kill lands mid-batch. */
function bigBatch(): DataRecord[] {
  const b = new RecordBuilder();
  for (let i = 0; i < 160; i++) {
    const dir = `d${i % 8}`;
    if (i < 8) b.mkdir(dir, 0o750);
    const p = `${dir}/f${i}`;
    b.content(p, bytes(BS * (1 + (i % 5)) + (i % 3) * 100, i + 1), BS);
    b.meta(p, 0o640, T0 - i * 1000);
    if (i % 10 === 9) {
      b.rename(p, `${dir}/renamed${i}`);
      b.content(p, `re-created ${i}`, BS);
      b.meta(p, 0o600, T0 - i * 1000 - 1);
    }
    if (i % 17 === 16) b.unlink(`d${(i + 1) % 8}/f${i - 15}`);
    if (i === 100) {
      b.mkdir('d7/sub');
      b.content('d7/sub/x', 'x', BS);
      b.meta('d7/sub/x', 0o644, T0);
      b.rename('d7', 'd6'); // a directory over a directory with content
    }
    if (i === 130) b.rmdir('d5');
  }
  return b.records;
}

let base: string;
let children: ChildProcess[] = [];

beforeAll(async () => {
  await initHash();
});

beforeEach(() => {
  base = tmpDir('tandem-crash-');
});

afterEach(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children = [];
  fs.rmSync(base, { recursive: true, force: true });
});

async function applyIn(dir: string, records: DataRecord[]): Promise<Manifest> {
  const manifest = new Manifest([ROOT]);
  const a = new Applier({ roots: [{ name: ROOT, path: dir, exclude: [] }], manifest, blockSize: BS, log: silentLogger() });
  await a.init();
  await a.apply(records, async () => undefined);
  await a.close();
  return manifest;
}

interface ChildRun {
  durable: number[];
  signal: NodeJS.Signals | null;
  done: boolean;
}

/** Runs the child; kills it `delayMs` after it is ready (when given). */
function runChild(recordsFile: string, dir: string, killAtSeq: number, delayMs: number | undefined, behindMin: number | undefined): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const args = [CHILD, recordsFile, dir, String(killAtSeq), 'tandem-test-marker', ...(behindMin === undefined ? [] : [String(behindMin)])];
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => {
      const before = out;
      out += d.toString();
      if (delayMs !== undefined && !before.includes('ready') && out.includes('ready')) setTimeout(() => child.kill('SIGKILL'), delayMs);
    });
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0 && signal === null) return reject(new Error(`child exited ${code}: ${err}`));
      const durable = [...out.matchAll(/^durable (\d+)$/gm)].map((m) => Number(m[1]));
      resolve({ durable, signal, done: out.includes('done') });
    });
  });
}

describe('applier after SIGKILL', () => {
  // Writes made at once, and every write behind (in the thread pool, the applier going on
  // meanwhile): the kill may then land while writes of several files are still to come.
  it.each([
    ['at once (product threshold: these blocks are small)', undefined],
    ['all behind', 0],
  ])('redo from the last durable seq after a kill at random points ends in the clean tree: writes %s', async (_, behindMin) => {
    const records = bigBatch();
    const recordsFile = path.join(base, 'records.bin');
    fs.writeFileSync(recordsFile, v8.serialize(records));
    const cleanDir = path.join(base, 'clean');
    const started = performance.now();
    const cleanManifest = await applyIn(cleanDir, records);
    const cleanMs = performance.now() - started;
    const want = snapshot(cleanDir);
    expect(manifestDifferences(cleanManifest, ROOT, cleanDir, BS)).toEqual([]);

    // A reproducible spread of kill points: at chosen records (every kind of record lands
    // somewhere in this list), and after delays that cut records in the middle.
    const seed = Number(process.env.TANDEM_TEST_SEED ?? Date.now() % 100_000);
    let x = seed || 1;
    const rand = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const plans: { killAt: number; delayMs?: number }[] = [];
    for (let i = 0; i < 3; i++) plans.push({ killAt: records[Math.floor(rand() * records.length)]!.seq });
    for (let i = 0; i < 3; i++) plans.push({ killAt: -1, delayMs: rand() * cleanMs * 0.8 });

    for (const [i, plan] of plans.entries()) {
      const dir = path.join(base, `crash-${i}`);
      const run = await runChild(recordsFile, dir, plan.killAt, plan.delayMs, behindMin);
      const last = run.durable.at(-1) ?? 0;
      await applyIn(dir, records.filter((r) => r.seq > last));
      const context = { seed, plan, behindMin, last, signal: run.signal, done: run.done };
      expect({ ...context, tree: snapshot(dir) }).toEqual({ ...context, tree: want });
    }
  });
});
