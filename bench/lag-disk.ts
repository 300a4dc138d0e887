// (a)'s reference: what this disk alone can do at the same load. The same paced writer and the
// same poller as (a), and instead of the pair a plain mirroring process (bench/lag-mirror.ts)
// that copies each new file into a second tree on the same file system with write + fsync, one
// file at a time and with group commit. Tandem's lag reads against these: it cannot be below
// what a durable copy costs on this disk.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { exited, stopChild } from './children.ts';
import { lagDirs } from './lag-files.ts';
import { lagsOf, startHelper, startPoller, writeLagFiles, type LagOptions } from './lag.ts';
import type { MirrorMode, MirrorResult, MirrorStart } from './lag-mirror.ts';
import { percentiles, type Percentiles } from './stats.ts';

export interface DiskLagResult {
  mode: MirrorMode;
  written: number;
  arrived: number;
  lagMs: Percentiles | null;
  over100ms: number;
  writerLatenessMs: Percentiles;
  /** Files copied (a file copied again after a later event counts again), fsyncs, rounds of the mirror. */
  copies: number;
  fsyncs: number;
  rounds: number;
  mirrorCpuMs: number;
}

export async function measureDiskLag(dir: string, opts: LagOptions, mode: MirrorMode, progress: (line: string) => void): Promise<DiskLagResult> {
  const base = fs.mkdtempSync(path.join(dir, `lag-disk-${mode}-`));
  const src = path.join(base, 'src');
  const dst = path.join(base, 'dst');
  for (const d of lagDirs(opts.dirCount)) {
    fs.mkdirSync(path.join(src, d), { recursive: true });
    fs.mkdirSync(path.join(dst, d), { recursive: true });
  }
  const count = Math.round(opts.rate * opts.seconds);
  const start: MirrorStart = { type: 'start', src, dst, dirCount: opts.dirCount, mode };
  let mirror: ChildProcess | undefined;
  try {
    const helper = await startHelper<MirrorResult>('bench/lag-mirror.ts', start);
    mirror = helper.child;
    const poller = await startPoller(dst, opts.dirCount, count);
    try {
      progress(`(a) disk alone (${mode}): writing ${count} files at ${opts.rate}/s for ${opts.seconds} s, mirrored with write + fsync`);
      const w = await writeLagFiles(src, opts, count);
      const r = await poller.result();
      mirror.send({ type: 'stop' });
      const m = await helper.result;
      await exited(mirror);
      const lags = lagsOf(w.writtenAt, r);
      return {
        mode,
        written: count,
        arrived: lags.length,
        lagMs: percentiles(lags),
        over100ms: lags.filter((l) => l > 100).length,
        writerLatenessMs: percentiles(w.lateness)!,
        copies: m.copies,
        fsyncs: m.fsyncs,
        rounds: m.rounds,
        mirrorCpuMs: m.cpuUserMs + m.cpuSystemMs,
      };
    } finally {
      await poller.stop();
    }
  } finally {
    if (mirror !== undefined) await stopChild(mirror, 'SIGTERM', 1000);
    fs.rmSync(base, { recursive: true, force: true });
  }
}
