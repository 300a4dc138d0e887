// `npm run bench:points-cpu`: the active agent's CPU per consistency point under a steady,
// repeatable load (no PostgreSQL: its tps is too noisy on a shared machine to see a few per cent).
// A btrfs subvolume on a loop device is protected by a points pair (the passive on /dev/shm);
// for D seconds a writer in this process appends fsync'd 8 KiB pages to a log file (a WAL) at
// `--wal` MiB/s and rewrites random 8 KiB pages of a 64 MiB table `--pages` times a second. The
// active's CPU seconds (user + system, from /proc, main thread and the others apart) while the
// agents are idle for D seconds and then under the load, and the MiB it sent, per run.
//
//   npm run bench:points-cpu -- [--runs N] [--seconds D] [--wal MiB/s] [--pages N] [--interval 500ms] [--cpu-prof DIR]
import fs from 'node:fs';
import { procThreadCpuSeconds } from './process-sampler.ts';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { btrfsUnavailable, cleanupLoops, makeLoopFs, makeSubvolume } from '../test/helpers/btrfs-loop.ts';
import { killAll } from '../test/helpers/processes.ts';
import { pointsPair } from '../test/helpers/points-pair.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, seconds: { type: 'string', default: '15' }, wal: { type: 'string', default: '4' }, pages: { type: 'string', default: '200' }, interval: { type: 'string', default: '500ms' }, 'cpu-prof': { type: 'string' }, perf: { type: 'string' } } });
// --cpu-prof DIR: the active runs under node --cpu-prof (stopped with SIGTERM so that it writes the profile).
const profDir = values['cpu-prof'] === undefined ? undefined : path.resolve(values['cpu-prof']);
const runs = Number(values.runs);
const seconds = Number(values.seconds);
const walMiBs = Number(values.wal);
const pagesPerS = Number(values.pages);
const why = btrfsUnavailable();
if (why !== undefined) {
  process.stderr.write(`bench:points-cpu: cannot run: ${why}\n`);
  process.exit(2);
}

/** CPU seconds of a process: [main thread, other threads]. */
function cpu(pid: number): [number, number] {
  const t = procThreadCpuSeconds(pid);
  return t === null ? [NaN, NaN] : [t.main, t.other];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PAGE = 8192;
const TABLE_BYTES = 64 * 2 ** 20;

async function load(root: string, ms: number): Promise<number> {
  const wal = fs.openSync(path.join(root, 'wal'), 'a');
  const table = fs.openSync(path.join(root, 'table'), 'r+');
  const page = Buffer.alloc(PAGE);
  let written = 0;
  const t0 = Date.now();
  const tickMs = 20;
  let n = 0;
  try {
    while (Date.now() - t0 < ms) {
      n++;
      const walPages = Math.round((walMiBs * 2 ** 20 * tickMs) / 1000 / PAGE);
      for (let i = 0; i < walPages; i++) {
        page.fill((n + i) & 0xff);
        page.writeUInt32LE(n, 0);
        fs.writeSync(wal, page);
        written += PAGE;
      }
      fs.fdatasyncSync(wal);
      const tablePages = Math.round((pagesPerS * tickMs) / 1000);
      for (let i = 0; i < tablePages; i++) {
        page.fill((n * 7 + i) & 0xff);
        fs.writeSync(table, page, 0, PAGE, Math.floor(Math.random() * (TABLE_BYTES / PAGE)) * PAGE);
        written += PAGE;
      }
      const due = t0 + n * tickMs - Date.now();
      if (due > 0) await sleep(due);
    }
  } finally {
    fs.closeSync(wal);
    fs.closeSync(table);
  }
  return written;
}

const lines: string[] = [];
try {
  for (let r = 1; r <= runs; r++) {
    const lfs = makeLoopFs({ sizeMiB: 2048, tag: 'cpu' });
    const root = makeSubvolume(lfs, 'data');
    const t = fs.openSync(path.join(root, 'table'), 'w');
    const chunk = Buffer.alloc(2 ** 20, 0x5a);
    for (let i = 0; i < TABLE_BYTES / chunk.length; i++) fs.writeSync(t, chunk);
    fs.closeSync(t);
    const shm = fs.mkdtempSync('/dev/shm/tandem-bench-cpu-');
    fs.mkdirSync(path.join(shm, 'data'), { mode: 0o700 });
    const pair = await pointsPair(root, {
      extra: (doc, node) => {
        doc.capture = { pointInterval: values.interval };
        if (node === 'beta') {
          doc.stateDir = path.join(shm, 'state');
          doc.protect = [{ name: 'data', path: path.join(shm, 'data') }];
        }
      },
    });
    try {
      const wrap = values.perf !== undefined ? { wrap: ['sh', '-c', 'exec "$0" --perf-basic-prof "$@"'] } : profDir === undefined ? {} : { wrap: ['sh', '-c', 'exec "$0" --cpu-prof --cpu-prof-dir="$PROF_DIR" "$@"'], env: { PROF_DIR: profDir } };
      const alpha = (await pair.start('alpha', wrap)).pid!;
      await pair.start('beta');
      await pair.waitFor('beta', 'synchronised', (s) => s.replication.inSync && s.replication.point !== null, 300_000);
      await sleep(2000);
      const i0 = cpu(alpha);
      await sleep(seconds * 1000);
      const i1 = cpu(alpha);
      const sent0 = (await pair.status('alpha')).channel.bytesOut;
      const c0 = cpu(alpha);
      // --perf FILE: on-CPU samples of the active (kernel and user, JIT frames named) during the load.
      const perf = values.perf === undefined ? undefined : spawn('perf', ['record', '-q', '-F', '499', '-g', '-p', String(alpha), '-o', values.perf, '--', 'sleep', String(seconds)], { stdio: 'ignore' });
      const written = await load(root, seconds * 1000);
      if (perf !== undefined) await new Promise((r) => perf.on('close', r));
      const c1 = cpu(alpha);
      // What the load's last round sends is counted too: wait for the passive to hold it.
      const sent1 = (await pair.status('alpha')).channel.bytesOut;
      const points = (await pair.status('alpha')).capture?.points;
      const idle = i1[0] - i0[0] + i1[1] - i0[1];
      const busy = c1[0] - c0[0] + c1[1] - c0[1];
      const mib = (sent1 - sent0) / 2 ** 20;
      const line = `run ${r}: idle ${idle.toFixed(2)} CPU s; load ${busy.toFixed(2)} CPU s (main ${(c1[0] - c0[0]).toFixed(2)}, other threads ${(c1[1] - c0[1]).toFixed(2)}), written ${(written / 2 ** 20).toFixed(1)} MiB, sent ${mib.toFixed(1)} MiB, ${(((busy - idle) * 1000) / mib).toFixed(1)} ms CPU per MiB above idle; points taken ${points?.taken}`;
      process.stderr.write(`${line}\n`);
      lines.push(line);
    } finally {
      if (profDir !== undefined) await pair.kill('alpha', 'SIGTERM');
      await pair.cleanup();
      fs.rmSync(shm, { recursive: true, force: true });
      cleanupLoops();
    }
  }
} finally {
  await killAll();
  cleanupLoops();
}
process.stdout.write(`${seconds} s idle, then ${seconds} s of ${walMiBs} MiB/s log appends (fdatasync every 20 ms) and ${pagesPerS} random 8 KiB page writes/s to a 64 MiB file; capture.pointInterval ${values.interval}\n${lines.join('\n')}\n`);
