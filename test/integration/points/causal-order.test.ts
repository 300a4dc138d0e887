// The causal-order test of issue 9: a writer appends record k to file i only once record k of
// file i-1 is durable, across files small and large (a 20 MiB head); the active (agent and
// writer) is killed at a random moment, the passive takes over, and its copy must hold a prefix
// of the writer's history: never record k of file i without record k of file i-1. On a btrfs
// subvolume (consistency points) that must hold every time, and the loss must stay within the
// rpoMs status showed just before the crash. On ext4 (file-level consistency only) it may not:
// there the test asserts what status says. Needs root and btrfs-progs.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { btrfsUnavailable, cleanupLoops, makeLoopFs, makeSubvolume } from '../../helpers/btrfs-loop.ts';
import { PROJECT, sleep, type TestPair } from '../../helpers/pair.ts';
import { killAll, spawnTracked } from '../../helpers/processes.ts';
import { pointsPair, statusSampler } from '../../helpers/points-pair.ts';
import { allEvents } from '../../helpers/events.ts';
import { tandem } from '../../helpers/cli.ts';

const skip = btrfsUnavailable();
if (skip !== undefined) console.warn(`skipping the causal-order test: ${skip}`);

const WRITER = path.join(PROJECT, 'test/helpers/causal-writer.mjs');
const FILES = 8;
const LARGE = new Set([2, 5]);
const HEAD_BYTES = 20 * 1024 * 1024;
const RECORD_BYTES = 64;

let pair: TestPair | undefined;

afterEach(async () => {
  await killAll();
  await pair?.cleanup();
  pair = undefined;
  cleanupLoops();
});

function seed(root: string): void {
  for (let i = 0; i < FILES; i++) fs.writeFileSync(path.join(root, `f${String(i).padStart(2, '0')}`), LARGE.has(i) ? crypto.randomBytes(HEAD_BYTES) : Buffer.alloc(0));
}

/**
 * Complete records of each file (after its head), the writer's time of the last one, and the
 * writer's times of every record in the order it wrote them (k, then i).
 */
function histories(root: string): { counts: number[]; lastAt: number; stamps: number[] } {
  const counts: number[] = [];
  const byFile: number[][] = [];
  let lastAt = 0;
  for (let i = 0; i < FILES; i++) {
    const p = path.join(root, `f${String(i).padStart(2, '0')}`);
    const buf = fs.existsSync(p) ? fs.readFileSync(p) : Buffer.alloc(0);
    const head = LARGE.has(i) ? HEAD_BYTES : 0;
    let c = 0;
    const stamps: number[] = [];
    for (let off = head; off + RECORD_BYTES <= buf.length; off += RECORD_BYTES) {
      const m = /^k=(\d{9}) i=(\d{2}) t=(\d+) /.exec(buf.toString('latin1', off, off + RECORD_BYTES));
      if (m === null || Number(m[1]) !== c + 1 || Number(m[2]) !== i) break;
      c++;
      stamps.push(Number(m[3]));
      lastAt = Math.max(lastAt, Number(m[3]));
    }
    counts.push(c);
    byFile.push(stamps);
  }
  const stamps: number[] = [];
  for (let k = 0; byFile.some((f) => k < f.length); k++) for (const f of byFile) if (k < f.length) stamps.push(f[k]!);
  return { counts, lastAt, stamps };
}

/**
 * The longest the writer took for one record (stamp to the next stamp: a write and its
 * fdatasync) from `sinceMs` on. A record is stamped before it is written, and a write can wait
 * out a snapshot being taken: the record stamped just before a point's instant may land just
 * after it, so the loss measured from stamps exceeds the data at risk by up to one such cycle.
 */
function longestCycleMs(stamps: number[], sinceMs: number): number {
  let longest = 0;
  for (let j = 1; j < stamps.length; j++) if (stamps[j - 1]! >= sinceMs) longest = Math.max(longest, stamps[j]! - stamps[j - 1]!);
  return longest;
}

/** The copy holds a prefix of the history: c_0 >= c_1 >= … >= c_{N-1} >= c_0 - 1. */
function isPrefix(c: number[]): boolean {
  for (let i = 1; i < c.length; i++) if (c[i]! > c[i - 1]!) return false;
  return c[c.length - 1]! >= c[0]! - 1;
}

type Status = Awaited<ReturnType<TestPair['status']>>;

async function crashTrial(root: string, p: TestPair): Promise<{ beta: ReturnType<typeof histories>; alpha: ReturnType<typeof histories>; rpoAtCrashMs: number | null; before: Status; after: Status; events: Awaited<ReturnType<typeof allEvents>> }> {
  await p.waitFor('beta', 'synchronised', (s) => s.replication.inSync, 180_000);
  const writer = spawnTracked(process.execPath, [WRITER, root, String(FILES)], { stdio: 'ignore' });
  for (let i = 0; !fs.existsSync(path.join(root, 'writer.ready')); i++) {
    if (i > 200) throw new Error('the writer did not start');
    await sleep(50);
  }
  const sampler = statusSampler(p, 'beta');
  await sleep(3000 + Math.floor(Math.random() * 4000));
  // The active server dies: the writer and the agent at the same moment.
  writer.kill('SIGKILL');
  p.procs.get('alpha')!.kill('SIGKILL');
  const crashAt = Date.now();
  await sampler.stop();
  const before = sampler.last()!;
  const r = before.status.replication;
  const rpoAtCrashMs = r.rpoMs === null || r.rpoMs === undefined ? null : r.rpoMs + (crashAt - before.at);
  const after = await p.waitFor('beta', 'took over', (s) => s.role === 'active' && s.failover.phase !== 'busy', 60_000);
  const events = await allEvents(p.node('beta').controlUrl);
  await p.kill('beta', 'SIGTERM');
  return { beta: histories(p.data('beta')), alpha: histories(root), rpoAtCrashMs, before: before.status, after, events };
}

describe.skipIf(skip !== undefined)('causal order across files after a crash of the active', () => {
  it('on a btrfs subvolume: the passive holds a prefix of the history, within the rpoMs status showed', async () => {
    const lfs = makeLoopFs({ sizeMiB: 1024 });
    const root = makeSubvolume(lfs, 'alpha-data');
    seed(root);
    pair = await pointsPair(root);
    await pair.startBoth();
    const t = await crashTrial(root, pair);
    const cycleMs = longestCycleMs(t.alpha.stamps, t.beta.lastAt);
    console.log(`causal order (btrfs): alpha ${t.alpha.counts.join(',')} beta ${t.beta.counts.join(',')}; ${((t.alpha.lastAt - t.beta.lastAt) / 1000).toFixed(3)} s lost, rpoMs at the crash ${t.rpoAtCrashMs}, the writer's longest record since ${cycleMs} ms`);
    expect(t.beta.counts[0]).toBeGreaterThan(0);
    expect(isPrefix(t.beta.counts), `beta holds ${t.beta.counts.join(',')}`).toBe(true);
    // What status said just before the crash: a point, and the data at risk it bounds.
    expect(t.before.replication.point).not.toBeNull();
    expect(t.rpoAtCrashMs).not.toBeNull();
    // Within the rpoMs shown, give or take the one record in flight at the point's instant.
    expect(t.alpha.lastAt - t.beta.lastAt).toBeLessThanOrEqual(t.rpoAtCrashMs! + cycleMs);
    expect(pair.logLines('beta').filter((l) => l.msg?.startsWith?.('roles: promoting to active')).map((l) => l.consistency)).toEqual(['point']);
    // beta's promotion says what it left out, in status and as one event.
    const d = t.after.replication.discarded;
    const discards = t.events.filter((e) => e.kind === 'discard');
    if (d === null || d === undefined) expect(discards).toEqual([]);
    else expect(discards.map((e) => e.details.records)).toEqual([d.records]);
  }, 300_000);

  it('on a btrfs subvolume, a switchover under the writer loses nothing: the stop script stops it and the drain closes a final point', async () => {
    const lfs = makeLoopFs({ sizeMiB: 1024 });
    const root = makeSubvolume(lfs, 'alpha-data');
    seed(root);
    pair = await pointsPair(root);
    const p = pair;
    // The writer is alpha's application: its stop script stops it (and waits until it is gone).
    const stop = path.join(p.node('alpha').scriptsDir, 'stop.sh');
    const ready = path.join(root, 'writer.ready');
    const script = fs.readFileSync(stop, 'utf8').split('\n');
    script.splice(1, 0, `if [ -f '${ready}' ]; then w=$(cat '${ready}'); kill -KILL "$w" 2>/dev/null || true; while kill -0 "$w" 2>/dev/null && [ "$(cut -d' ' -f3 /proc/$w/stat 2>/dev/null)" != Z ]; do sleep 0.05; done; fi`);
    fs.writeFileSync(stop, script.join('\n'));
    await p.startBoth();
    await p.waitFor('beta', 'synchronised', (s) => s.replication.inSync, 180_000);
    const writer = spawnTracked(process.execPath, [WRITER, root, String(FILES)], { stdio: 'ignore' });
    for (let i = 0; !fs.existsSync(ready); i++) {
      if (i > 200) throw new Error('the writer did not start');
      await sleep(50);
    }
    await sleep(3000);
    await p.waitFor('alpha', 'caught up, no role change running', (s) => s.replication.caughtUp && s.failover.phase === 'steady' && s.failover.serving, 60_000);
    const sw = await tandem(['switchover', '-c', p.node('alpha').config], 120_000);
    expect(sw.code, sw.stderr).toBe(0);
    expect(writer.exitCode !== null || writer.signalCode !== null).toBe(true);
    const b = await p.waitFor('beta', 'active', (s) => s.role === 'active');
    const a = histories(root);
    console.log(`switchover under the writer (btrfs): alpha ${a.counts.join(',')} beta ${histories(p.data('beta')).counts.join(',')}`);
    expect(a.counts[0]).toBeGreaterThan(0);
    expect(histories(p.data('beta')).counts).toEqual(a.counts);
    expect(b.replication.discarded).toBeNull();
    expect((await allEvents(p.node('beta').controlUrl)).filter((e) => e.kind === 'discard')).toEqual([]);
  }, 300_000);

  it('on ext4: status says file-level consistency only, and the copy may mix moments', async () => {
    const lfs = makeLoopFs({ type: 'ext4', sizeMiB: 512 });
    const root = path.join(lfs.dir, 'alpha-data');
    fs.mkdirSync(root, { mode: 0o755 });
    seed(root);
    pair = await pointsPair(root);
    await pair.startBoth();
    const a = await pair.waitFor('alpha', 'running', (s) => s.replication.consistency !== undefined && s.replication.consistency.length > 0);
    expect(a.replication.consistency).toEqual([{ root: 'data', mode: 'file', reason: expect.stringMatching(/^file-level consistency only: the root is on ext4/) }]);
    const t = await crashTrial(root, pair);
    // No points from a file-level active: the data at risk is the lag, a moment per file.
    expect(t.before.replication.point).toBeNull();
    expect(typeof t.before.replication.rpoMs).toBe('number');
    // The takeover says what the copy is.
    expect(pair.logLines('beta').filter((l) => l.msg?.startsWith?.('roles: promoting to active')).map((l) => l.consistency)).toEqual(['file']);
    console.log(`causal order (ext4, file-level only): alpha ${t.alpha.counts.join(',')} beta ${t.beta.counts.join(',')}: ${isPrefix(t.beta.counts) ? 'a prefix this time' : 'NOT a prefix: record k of a file without record k of the one before'}`);
  }, 300_000);
});
