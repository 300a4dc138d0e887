// `npm run bench:points`: what consistency points cost PostgreSQL, and the data at risk they
// leave (issue 9). On one loop btrfs, each run starts PostgreSQL on a fresh writable snapshot of
// one pgbench cluster (a btrfs subvolume) and runs pgbench -n -c 4 -j 2 for D seconds, either
// alone or with a Tandem pair protecting the subvolume (capture.pointInterval 1 s or 500 ms; the
// other settings the product's). Every round runs each configuration, every second round in
// reverse order; a ratio is taken against the unprotected run of the same round. While Tandem
// runs, the passive's replication.rpoMs is sampled every 100 ms (RPO p50/p99). --checkpoints
// adds a CHECKPOINT every second and a 32 MB WAL (the crash trials' load). Reports, never asserts;
// writes bench/results/points.md (points-checkpoints.md with --checkpoints).
//
//   npm run bench:points -- [--rounds N] [--seconds D] [--scale S] [--checkpoints] [--passive-shm] [--intervals 1s,500ms,1s/8KiB] [--cpu-prof DIR] [--perf FILE]
//
// --passive-shm: the passive's tree and state on /dev/shm, standing in for the second server's
// own disk (both nodes otherwise share this machine's one disk with PostgreSQL).
//
// An interval may name a blockSize after a slash (1s/8KiB: PostgreSQL's page size, so that a
// changed page costs 8 KiB on the wire instead of a 64 KiB block).
import fs from 'node:fs';
import { procCpuSeconds, procThreadCpuSeconds } from './process-sampler.ts';
import path from 'node:path';
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { btrfsUnavailable } from '../test/helpers/btrfs-loop.ts';
import { killAll } from '../test/helpers/processes.ts';
import { PgCrashLab, postgresUnavailable } from '../test/helpers/pg-crash.ts';
import { pointsPair, statusSampler } from '../test/helpers/points-pair.ts';
import { PROJECT } from './bench-pair.ts';

const execFileP = promisify(execFile);

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, seconds: { type: 'string', default: '20' }, scale: { type: 'string', default: '10' }, checkpoints: { type: 'boolean' }, 'passive-shm': { type: 'boolean' }, intervals: { type: 'string', default: '1s,500ms,1s/8KiB' }, 'cpu-prof': { type: 'string' }, perf: { type: 'string' } } });
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const scale = Number(values.scale);
const intervals = values.intervals.split(',').filter((x) => x !== '');
const checkpoints = values.checkpoints === true;
// A second server writes its copy on a disk of its own; on this one machine both nodes share one.
// --passive-shm puts the passive's tree and state on /dev/shm so that its writes (receive log,
// the applied files, their fsyncs) stop competing with PostgreSQL's for the disk. The CPU stays
// shared. The active's journal stays on the disk beside PostgreSQL, as on a real pair.
const passiveShm = values['passive-shm'] === true;
// --cpu-prof DIR: the active agent runs under node --cpu-prof and is stopped with SIGTERM after
// each run so that its profile is written there (NODE_OPTIONS cannot carry --cpu-prof).
const cpuProfDir = values['cpu-prof'] === undefined ? undefined : path.resolve(values['cpu-prof']);
if (cpuProfDir !== undefined) fs.mkdirSync(cpuProfDir, { recursive: true });
const why = btrfsUnavailable() ?? postgresUnavailable();
if (why !== undefined) {
  process.stderr.write(`bench:points: cannot run: ${why}\n`);
  process.exit(2);
}

interface Run {
  round: number;
  config: string;
  tps: number;
  rpo: number[];
  /** The active's point rounds seen (capture.points.last): ms to take the snapshot, list its changes, read and journal them. */
  rounds: { snapshotMs: number; listMs: number; processMs: number }[];
  /** CPU seconds (user + system) each agent spent while pgbench ran; the benchmark's own status sampling. */
  cpu?: { active: number; passive: number; sampler: number; activeThreads: Map<string, number> };
  /** Bytes the active sent on the channel while pgbench ran (as its status samples saw). */
  sentBytes?: number;
}

/** CPU seconds (user + system) a process has used so far; NaN when it is gone. */
const cpuSeconds = (pid: number): number => procCpuSeconds(pid) ?? NaN;

/** CPU seconds of a process's main thread (the event loop) and of its other threads (libuv's pool, V8's workers). */
function threadCpu(pid: number | undefined): Map<string, number> {
  const t = pid === undefined ? null : procThreadCpuSeconds(pid);
  return new Map(t === null ? [] : [['main thread', t.main], ['other threads', t.other]]);
}

const configs = ['without Tandem', ...intervals.map((i) => `Tandem, points every ${i.split('/')[0]}${i.includes('/') ? `, blockSize ${i.split('/')[1]}` : ''}`)];
const lab = new PgCrashLab(scale, 6144);
const runs: Run[] = [];
/** The passive's directories on /dev/shm (--passive-shm), removed after each run. */
const shmDirs: string[] = [];
lab.cleanupOnSignals();
const t0 = Date.now();

async function one(round: number, config: string, n: number): Promise<Run> {
  const root = path.join(lab.lfs.dir, `run-${n}`);
  execFileSync('btrfs', ['subvolume', 'snapshot', lab.template, root], { stdio: 'ignore' });
  const interval = config.startsWith('Tandem') ? intervals[configs.indexOf(config) - 1] : undefined;
  const [every, blockSize] = (interval ?? '').split('/');
  const pair =
    interval === undefined
      ? undefined
      : await pointsPair(root, {
          extra: (doc, node) => {
            // The product's defaults ("with defaults", as the goal says), not the crash tests'
            // quick timing: their heartbeat every 250 ms and presence probe every 100 ms cost
            // both agents CPU that PostgreSQL, CPU-bound on these 2 cores, would otherwise get.
            for (const k of ['heartbeat', 'links', 'channel', 'apply']) delete doc[k];
            doc.capture = { pointInterval: every };
            if (blockSize !== undefined) doc.blockSize = blockSize;
            if (passiveShm && node === 'beta') {
              const shm = fs.mkdtempSync('/dev/shm/tandem-bench-passive-');
              shmDirs.push(shm);
              fs.mkdirSync(path.join(shm, 'data'), { mode: 0o700 });
              doc.stateDir = path.join(shm, 'state');
              doc.protect = [{ name: 'data', path: path.join(shm, 'data') }];
            }
          },
        });
  try {
    let pids: number[] = [];
    if (pair !== undefined) {
      // --perf: JIT frames named in perf's samples (node writes /tmp/perf-PID.map).
      const wrap = values.perf !== undefined ? ['sh', '-c', 'exec "$0" --perf-basic-prof "$@"'] : cpuProfDir === undefined ? undefined : ['sh', '-c', 'exec "$0" --cpu-prof --cpu-prof-dir="$PROF_DIR" "$@"'];
      pids = (await Promise.all([pair.start('alpha', wrap === undefined ? {} : { wrap, env: { PROF_DIR: cpuProfDir ?? '' } }), pair.start('beta')])).map((c) => c.pid!);
      await pair.waitFor('beta', 'synchronised', (s) => s.replication.inSync && s.replication.point !== null, 600_000);
    }
    const server = await lab.start(path.join(root, 'pg'));
    const ck = checkpoints ? lab.checkpointEverySecond() : undefined;
    const sampler = pair === undefined ? undefined : statusSampler(pair, 'beta');
    const seen = new Map<number, { snapshotMs: number; listMs: number; processMs: number }>();
    // Every 250 ms: at 500 ms points that still sees nearly every round, and costs the agent less.
    let sent: [number, number] | undefined;
    const active = pair === undefined ? undefined : statusSampler(pair, 'alpha', 250, (s) => {
      sent = [sent?.[0] ?? s.channel.bytesOut, s.channel.bytesOut];
      const l = s.capture?.points?.last;
      if (l !== undefined && l !== null) seen.set(l.at, { snapshotMs: l.snapshotMs, listMs: l.listMs, processMs: l.processMs });
    });
    const cpu0 = pids.map(cpuSeconds);
    const threads0 = threadCpu(pids[0]);
    const self0 = process.cpuUsage();
    // --perf FILE: on-CPU samples (kernel and user) of the active while pgbench runs; FILE gets the run's number.
    const perf = values.perf === undefined || pids[0] === undefined ? undefined : spawn('perf', ['record', '-q', '-F', '499', '-g', '-p', String(pids[0]), '-o', `${values.perf}.${n}`, '--', 'sleep', String(seconds)], { stdio: 'ignore' });
    // Asynchronously: the samplers run meanwhile.
    const out = await execFileP('setpriv', [...lab.setpriv(), path.join(lab.bin, 'pgbench'), ...lab.conn(), '-n', '-c', '4', '-j', '2', '-T', String(seconds), 'postgres'], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C', HOME: '/tmp' }, timeout: (seconds + 120) * 1000 });
    const cpu1 = pids.map(cpuSeconds);
    if (perf !== undefined) await new Promise((r) => perf.on('close', r));
    const threads1 = threadCpu(pids[0]);
    const self1 = process.cpuUsage(self0);
    await sampler?.stop();
    await active?.stop();
    await ck?.stop();
    await lab.stop(server);
    const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out.stdout)?.[1] ?? NaN);
    const cpu = pair === undefined ? undefined : { active: cpu1[0]! - cpu0[0]!, passive: cpu1[1]! - cpu0[1]!, sampler: (self1.user + self1.system) / 1e6, activeThreads: new Map([...threads1].map(([n, c]) => [n, c - (threads0.get(n) ?? 0)])) };
    return { round, config, tps, rpo: sampler?.samples() ?? [], rounds: [...seen.values()], cpu, ...(sent === undefined ? {} : { sentBytes: sent[1] - sent[0] }) };
  } finally {
    // A profile is written only when the agent ends by itself (SIGTERM: its orderly stop).
    if (cpuProfDir !== undefined) await pair?.kill('alpha', 'SIGTERM');
    await pair?.cleanup();
    for (const d of shmDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
    spawnSync('btrfs', ['subvolume', 'delete', root], { stdio: 'ignore' });
  }
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}
const median = (xs: number[]): number => pct(xs, 50);
const cpuText = (r: Run): string =>
  (r.cpu === undefined
    ? ''
    : `, CPU s active ${r.cpu.active.toFixed(2)} (${[...r.cpu.activeThreads].filter(([, c]) => c > 0).map(([n, c]) => `${n.trim()} ${c.toFixed(2)}`).join(', ')}) passive ${r.cpu.passive.toFixed(1)} sampling ${r.cpu.sampler.toFixed(1)}`) +
  (r.sentBytes === undefined ? '' : `, ${(r.sentBytes / 2 ** 20).toFixed(1)} MiB sent`);

try {
  process.stderr.write(`bench:points: pgbench -i -s ${scale}…\n`);
  await lab.init({ smallWal: checkpoints });
  let n = 0;
  for (let r = 1; r <= rounds; r++) {
    const order = r % 2 === 1 ? configs : [...configs].reverse();
    for (const c of order) {
      // A run that cannot start (a port taken meanwhile by another process on this shared
      // machine) is run again once; a second failure ends the benchmark.
      const run = await one(r, c, n++).catch((err: unknown) => {
        process.stderr.write(`round ${r}: ${c}: ${(err as Error).message.split('\n')[0]}; running it again\n`);
        return one(r, c, n++);
      });
      runs.push(run);
      process.stderr.write(`round ${r}: ${c}: ${run.tps.toFixed(1)} tps${run.rpo.length === 0 ? '' : `, rpoMs p50 ${median(run.rpo)} p99 ${pct(run.rpo, 99)} max ${Math.max(...run.rpo)}`}${cpuText(run)}\n`);
    }
  }
} finally {
  await lab.cleanup();
  await killAll();
}

const lines = [
  `# Consistency points: pgbench with and without Tandem${checkpoints ? ' (CHECKPOINT every second, max_wal_size 32 MB)' : ''}`,
  '',
  `${new Date().toISOString().slice(0, 16)} UTC, ${rounds} rounds of ${seconds} s, pgbench -n -c 4 -j 2, scale ${scale}, PostgreSQL on a btrfs subvolume of a loop device${passiveShm ? "; the passive's tree and state on /dev/shm (its own disk, as on a second server)" : "; both agents on this machine's one disk"}; each ratio against the run without Tandem of the same round; RPO = the passive's replication.rpoMs sampled every 100 ms during the load. Wall time ${Math.round((Date.now() - t0) / 1000)} s.`,
  '',
  '| configuration | tps median (min-max) | ratio to without, median (min-max) | RPO p50 / p99 / max (ms) | point round p50 / p99 (ms): snapshot, list, read + journal |',
  '|---|---|---|---|---|',
];
for (const c of configs) {
  const mine = runs.filter((x) => x.config === c);
  const tps = mine.map((x) => x.tps);
  const ratios = mine.map((x) => x.tps / runs.find((y) => y.round === x.round && y.config === configs[0])!.tps);
  const rpo = mine.flatMap((x) => x.rpo);
  const rr = mine.flatMap((x) => x.rounds);
  const fig = (f: (r: Run['rounds'][number]) => number): string => `${pct(rr.map(f), 50)} / ${pct(rr.map(f), 99)}`;
  lines.push(
    `| ${c} | ${median(tps).toFixed(0)} (${Math.min(...tps).toFixed(0)}-${Math.max(...tps).toFixed(0)}) | ${c === configs[0] ? '1' : `${median(ratios).toFixed(2)}× (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`} | ${rpo.length === 0 ? '-' : `${pct(rpo, 50)} / ${pct(rpo, 99)} / ${Math.max(...rpo)}`} | ${rr.length === 0 ? '-' : `${fig((r) => r.snapshotMs)}, ${fig((r) => r.listMs)}, ${fig((r) => r.processMs)}`} |`,
  );
}
lines.push('', 'Runs:', '', ...runs.map((r) => `- round ${r.round}, ${r.config}: ${r.tps.toFixed(1)} tps${r.rpo.length === 0 ? '' : `, RPO p50 ${median(r.rpo)} p99 ${pct(r.rpo, 99)} ms`}${cpuText(r)}`), '');
const text = lines.join('\n');
const file = path.join(PROJECT, 'bench/results', `points${checkpoints ? '-checkpoints' : ''}${passiveShm ? '-passive-shm' : ''}.md`);
fs.mkdirSync(path.dirname(file), { recursive: true });
fs.writeFileSync(file, text);
process.stdout.write(`${text}\n(written to ${path.relative(PROJECT, file)})\n`);
