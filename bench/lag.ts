// (a) Replication lag under load: small files written on the active at a paced rate, each
// timed from "written on the active" to "complete on the passive", measured from outside the
// agents (the writer here, the poller in its own process; both read CLOCK_MONOTONIC).
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { nowMs, sleep } from './clock.ts';
import { exited, spawnTracked, stopChild } from './children.ts';
import { PROJECT, type BenchPair } from './bench-pair.ts';
import { lagDirs, lagFile } from './lag-files.ts';
import type { PollerResult, PollerStart } from './lag-poller.ts';
import { percentiles, type Percentiles } from './stats.ts';
import { StatusTimeline, type TimelineSample } from './status-timeline.ts';

export interface LagOptions {
  /** Files per second. */
  rate: number;
  seconds: number;
  dirCount: number;
  /**
   * A first pass of this many seconds at the same rate, into other directories, measured on its
   * own: the first burst after the agents start is slower (0: none).
   */
  coldSeconds: number;
}

/** The first pass, on agents that just started (and a file system not written before). */
export interface LagColdPass {
  seconds: number;
  written: number;
  arrived: number;
  lagMs: Percentiles | null;
  over100ms: number;
}

export interface LagResult {
  rate: number;
  seconds: number;
  dirCount: number;
  written: number;
  bytesWritten: number;
  writeSeconds: number;
  achievedRate: number;
  /** How late the writer was against its schedule (ms): p50/p99/max. */
  writerLatenessMs: Percentiles;
  arrived: number;
  allArrived: boolean;
  lagMs: Percentiles | null;
  over100ms: number;
  foundByScan: number;
  pollerCpuMs: number;
  /** Poller CPU as a share of one core over its run. */
  pollerCpuPercent: number;
  wireBytes: number;
  /** Where the time went, from the agents' own status sampled every TIMELINE_INTERVAL_MS. */
  stages: LagStages;
  /** The pass before this one, on agents that just started (null: none was made). */
  cold: LagColdPass | null;
}

export interface LagStages {
  intervalMs: number;
  /** Seconds after the first write when capture had journaled everything (head final, nothing pending). */
  journaledAllAfterS: number | null;
  /** …when the active held the passive's acknowledgement of the final head. */
  acknowledgedAllAfterS: number | null;
  peakPendingPaths: number;
  peakQueueBytes: number;
  /** Files capture read and hashed during the load (capture.filesHashed delta). */
  filesHashed: number;
}

const TIMELINE_INTERVAL_MS = 100;

function stagesOf(samples: TimelineSample[], t0: number, finalHead: number): LagStages {
  // Samples are taken from just before the first write; the first one is the baseline.
  const after = (x: TimelineSample | undefined) => (x === undefined ? null : (x.at - t0) / 1000);
  const journaled = samples.find((x) => x.alpha.replication.headSeq >= finalHead && x.alpha.capture?.pendingPaths === 0);
  const acked = samples.find((x) => x.alpha.replication.appliedSeq >= finalHead);
  const hashed = (x: TimelineSample | undefined) => x?.alpha.capture?.filesHashed ?? 0;
  return {
    intervalMs: TIMELINE_INTERVAL_MS,
    journaledAllAfterS: after(journaled),
    acknowledgedAllAfterS: after(acked),
    peakPendingPaths: Math.max(0, ...samples.map((x) => x.alpha.capture?.pendingPaths ?? 0)),
    peakQueueBytes: Math.max(0, ...samples.map((x) => x.alpha.replication.queueBytes)),
    filesHashed: hashed(samples[samples.length - 1]) - hashed(samples[0]),
  };
}

const SUBDIR = 'lag';
/** The cold pass's files: apart from the measured ones, which the poller knows by name. */
const COLD_SUBDIR = 'lag-cold';
const ARRIVAL_TIMEOUT_MS = 60_000;

/**
 * Creates the directories the files go to. Call it before the agents start: they are then part
 * of the baseline, as an application's directories would be. (A directory created a moment
 * before a burst was sometimes never watched, and its files waited for the periodic scan.)
 */
export function createLagDirs(pair: BenchPair, dirCount: number): void {
  for (const sub of [COLD_SUBDIR, SUBDIR]) {
    for (const d of lagDirs(dirCount)) fs.mkdirSync(path.join(pair.data('alpha', sub), d), { recursive: true });
  }
}

export async function measureLag(pair: BenchPair, opts: LagOptions, progress: (line: string) => void): Promise<LagResult> {
  const activeRoot = pair.data('alpha', SUBDIR);
  const passiveRoot = pair.data('beta', SUBDIR);
  await pair.waitSettled();
  for (const sub of [COLD_SUBDIR, SUBDIR]) {
    for (const d of lagDirs(opts.dirCount)) {
      const deadline = Date.now() + 30_000;
      while (!fs.existsSync(path.join(pair.data('beta', sub), d))) {
        if (Date.now() > deadline) throw new Error(`lag: directory ${sub}/${d} never reached the passive`);
        await sleep(20);
      }
    }
  }

  // The first burst after the agents start is slower: on a fresh ext4 its first second or so
  // made most of the p99 of a 10 s pass (cold p99 125-212 ms, the pass after it 75-128 ms), and
  // on tmpfs, where the disk plays no part, its p99 was 55-166 ms against 50-55 ms after (4
  // runs each). A first pass is measured on its own, then the measured one runs on agents (and
  // a file system) that have run before, as those of a running pair have.
  let cold: LagColdPass | null = null;
  if (opts.coldSeconds > 0) {
    const coldCount = Math.round(opts.rate * opts.coldSeconds);
    const coldPoller = await startPoller(pair.data('beta', COLD_SUBDIR), opts.dirCount, coldCount);
    try {
      progress(`(a) cold pass: writing ${coldCount} files at ${opts.rate}/s for ${opts.coldSeconds} s on agents that just started`);
      const w = await writeLagFiles(pair.data('alpha', COLD_SUBDIR), opts, coldCount);
      const lags = lagsOf(w.writtenAt, await coldPoller.result());
      cold = { seconds: opts.coldSeconds, written: coldCount, arrived: lags.length, lagMs: percentiles(lags), over100ms: lags.filter((l) => l > 100).length };
    } finally {
      await coldPoller.stop();
    }
    await pair.waitSettled();
  }

  const count = Math.round(opts.rate * opts.seconds);
  const poller = await startPoller(passiveRoot, opts.dirCount, count);
  try {
    const before = await pair.status('alpha');
    const timeline = new StatusTimeline(pair, TIMELINE_INTERVAL_MS);
    timeline.start();
    progress(`(a) writing ${count} files at ${opts.rate}/s for ${opts.seconds} s`);
    const w = await writeLagFiles(activeRoot, opts, count);
    const r = await poller.result();
    await pair.waitSettled();
    const after = await pair.status('alpha');
    const samples = await timeline.stop();

    const lags = lagsOf(w.writtenAt, r);
    const cpuMs = r.cpuUserMs + r.cpuSystemMs;
    return {
      rate: opts.rate,
      seconds: opts.seconds,
      dirCount: opts.dirCount,
      written: count,
      bytesWritten: w.bytesWritten,
      writeSeconds: w.writeSeconds,
      achievedRate: count / (w.writeSeconds + 1 / opts.rate),
      writerLatenessMs: percentiles(w.lateness)!,
      arrived: lags.length,
      allArrived: lags.length === count,
      lagMs: percentiles(lags),
      over100ms: lags.filter((l) => l > 100).length,
      foundByScan: r.foundByScan,
      pollerCpuMs: cpuMs,
      pollerCpuPercent: (100 * cpuMs) / r.wallMs,
      wireBytes: after.channel.bytesOut - before.channel.bytesOut + (after.channel.bytesIn - before.channel.bytesIn),
      stages: stagesOf(samples, w.t0, after.replication.headSeq),
      cold,
    };
  } finally {
    await poller.stop();
  }
}

export interface LagPoller {
  /** The poller's result: once every file arrived, or ARRIVAL_TIMEOUT_MS after this call. */
  result(): Promise<PollerResult>;
  stop(): Promise<void>;
}

/** Starts the poller on `passiveRoot` (bench/lag-poller.ts) and waits until it watches. */
export async function startPoller(passiveRoot: string, dirCount: number, count: number): Promise<LagPoller> {
  const start: PollerStart = { type: 'start', root: passiveRoot, dirCount, count };
  const { child: poller, result } = await startHelper<PollerResult>('bench/lag-poller.ts', start);
  return {
    result: async () => {
      const timeout = setTimeout(() => poller.send({ type: 'stop' }), ARRIVAL_TIMEOUT_MS);
      try {
        const r = await result;
        await exited(poller);
        return r;
      } finally {
        clearTimeout(timeout);
      }
    },
    stop: () => stopChild(poller, 'SIGTERM', 1000),
  };
}

/**
 * Starts one of the measurement's helper processes (`script`, relative to the project), sends it
 * `start` and waits for its {ready}; `result` settles with its {result} message.
 */
export async function startHelper<R>(script: string, start: object): Promise<{ child: ChildProcess; result: Promise<R> }> {
  const child = spawnTracked(process.execPath, [path.join(PROJECT, 'bin/run-ts.mjs'), path.join(PROJECT, script)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let onReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  const result = new Promise<R>((resolve, reject) => {
    child.on('message', (m: { type: string }) => {
      if (m.type === 'ready') onReady();
      if (m.type === 'result') resolve(m as R);
    });
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code} before it reported`)));
  });
  result.catch(() => {});
  child.send(start);
  try {
    await Promise.race([ready, result]);
  } catch (err) {
    await stopChild(child, 'SIGTERM', 1000);
    throw err;
  }
  return { child, result };
}

export interface LagWrites {
  /** CLOCK_MONOTONIC ms at which each file was written. */
  writtenAt: Float64Array;
  lateness: number[];
  bytesWritten: number;
  t0: number;
  writeSeconds: number;
}

/** The paced writer: `count` files into `activeRoot` at `opts.rate` per second. */
export async function writeLagFiles(activeRoot: string, opts: LagOptions, count: number): Promise<LagWrites> {
  const writtenAt = new Float64Array(count);
  const lateness: number[] = [];
  let bytesWritten = 0;
  const t0 = nowMs();
  const intervalMs = 1000 / opts.rate;
  await new Promise<void>((resolve) => {
    let i = 0;
    // Every tick writes what is due by now, so a late tick catches up instead of slowing the rate.
    const tick = () => {
      const due = Math.min(count, Math.floor((nowMs() - t0) / intervalMs) + 1);
      while (i < due) {
        const f = lagFile(i, opts.dirCount);
        fs.writeFileSync(path.join(activeRoot, f.dir, f.name), f.content);
        writtenAt[i] = nowMs();
        lateness.push(writtenAt[i]! - (t0 + i * intervalMs));
        bytesWritten += f.size;
        i++;
      }
      if (i >= count) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  return { writtenAt, lateness, bytesWritten, t0, writeSeconds: (writtenAt[count - 1]! - t0) / 1000 };
}

/** Each arrived file's lag (ms): when the poller saw it complete minus when it was written. */
export function lagsOf(writtenAt: Float64Array, r: PollerResult): number[] {
  const lags: number[] = [];
  for (let i = 0; i < writtenAt.length; i++) {
    const at = r.appearedAt[i];
    if (at !== null && at !== undefined) lags.push(at - writtenAt[i]!);
  }
  return lags;
}
