// (a)'s reference: what this disk alone can do at the same load. The same paced writer and the
// same poller as (a), and instead of the pair a plain mirroring process (bench/lag-mirror.ts)
// that copies each new file into a second tree on the same file system with write + fsync, one
// file at a time and with group commit. Tandem's lag reads against these: it cannot be below
// what a durable copy costs on this disk.
import fs from 'node:fs';
import path from 'node:path';
import { exited, spawnTracked, stopChild } from './children.ts';
import { PROJECT } from './bench-pair.ts';
import { lagDirs } from './lag-files.ts';
import { lagsOf, startPoller, writeLagFiles, type LagOptions } from './lag.ts';
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
  const mirror = spawnTracked(process.execPath, [path.join(PROJECT, 'bin/run-ts.mjs'), path.join(PROJECT, 'bench/lag-mirror.ts')], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    let ready: () => void = () => {};
    const started = new Promise<void>((r) => (ready = r));
    const messages = new Promise<MirrorResult>((resolve, reject) => {
      mirror.on('message', (m: { type: string }) => {
        if (m.type === 'ready') ready();
        if (m.type === 'result') resolve(m as MirrorResult);
      });
      mirror.once('exit', (code) => reject(new Error(`lag mirror exited with ${code} before it reported`)));
    });
    messages.catch(() => {});
    mirror.send({ type: 'start', src, dst, dirCount: opts.dirCount, mode } satisfies MirrorStart);
    await Promise.race([started, messages]);
    const poller = await startPoller(dst, opts.dirCount, count);
    try {
      progress(`(a) disk alone (${mode}): writing ${count} files at ${opts.rate}/s for ${opts.seconds} s, mirrored with write + fsync`);
      const w = await writeLagFiles(src, opts, count);
      const r = await poller.result();
      mirror.send({ type: 'stop' });
      const m = await messages;
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
    await stopChild(mirror, 'SIGTERM', 1000);
    fs.rmSync(base, { recursive: true, force: true });
  }
}
