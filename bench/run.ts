// `npm run bench`: measures Tandem side by side with its anchors in one run and writes
// bench/results/latest.json and latest.md. See "Goals" in DESIGN.md. Benchmarks report; they
// never assert.
//
//   npm run bench -- [--quick] [--only a,b,c,e,o,f,s,v,z,u,i] [--trials N] [--encryption tls-psk|none] [--tmpfs | --fresh-fs] [--keep]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BenchPair, PROJECT } from './bench-pair.ts';
import { BIG_FILE_NAME, QUIET_MS, measureNewFile, measureOverwrite } from './big-file.ts';
import { killAllChildrenNow, stopAllChildren } from './children.ts';
import { measureCatchUp, renderCatchUp } from './catch-up.ts';
import { catchUpChannel, measureCatchUpIsolated } from './catch-up-isolated.ts';
import { measureCliStartup, writeCliStartup } from './cli-startup.ts';
import { measureCompression, writeCompressionResults } from './compression.ts';
import { measureFailover } from './failover-gap.ts';
import { measureInitialSync, renderInitialSync } from './initial-sync.ts';
import { measureInstallSync } from './install-sync.ts';
import { closeAllHaPairs, closeProblems, killAllHaPairsNow } from './ha-pair.ts';
import { writeRandomFile } from './file-checks.ts';
import { createLagDirs, measureLag } from './lag.ts';
import { measureDiskLag } from './lag-disk.ts';
import { machineInfo } from './machine.ts';
import { ProcessSampler } from './process-sampler.ts';
import { renderMarkdown, renderText, type BenchResults } from './report.ts';
import { ensureRsync, RsyncDaemon, type RsyncAvailability } from './rsync-daemon.ts';
import { cleanupLoops, makeLoopFs } from '../test/helpers/btrfs-loop.ts';
import { measureSwitchover } from './switchover.ts';
import { measureVerify } from './verify-throughput.ts';

const PARTS = ['a', 'b', 'c', 'e', 'o', 'f', 's', 'v', 'z', 'u', 'i'] as const;
type Part = (typeof PARTS)[number];
/** What runs without --only: (v) writes a tree of its own on both nodes, so it is asked for by name. */
/**
 * (b) and (c) run with the tuned heartbeat (250 ms × 4, the failover bench's tuned series): the
 * longest channel silence (no heartbeat, no other byte) while 1 GiB streams must stay well under 1 s.
 */
const TUNED_HEARTBEAT = { interval: '250ms', threshold: 4 };
const DEFAULT_PARTS: Part[] = ['a', 'b', 'c', 'e', 'f', 's'];

interface Options {
  quick: boolean;
  only: Part[];
  encryption: 'tls-psk' | 'none';
  tmpfs: boolean;
  /** Put everything on a new ext4 made for this run (a loop file on the same disk; root only). */
  freshFs: boolean;
  keep: boolean;
  cpuProf: boolean;
  lagRate: number;
  onePair: boolean;
  /** Trials of (f) per timing and of (s); undefined: 3 (1 with --quick). */
  trials: number | undefined;
}

const USAGE = `usage: npm run bench -- [options]
  --quick                 256 MiB file, 3 s of lag load and 1 trial of (f) and (s), instead of
                          1 GiB, 10 s and 3 trials
  --only a,b,c,e,o,f,s,v,z,u,i  parts to run: a = lag under load, b = new big file, c = 4 KiB overwrite,
                          e = initial synchronisation of 100,000 files of 1 KiB against rsync -a +
                          sync (TANDEM_BENCH_SYNC_FILES, _FILE_BYTES; writes results/initial-sync.md),
                          o = catch-up after an outage (bench/catch-up.ts; sizes from
                          TANDEM_BENCH_CATCHUP_OUTAGE, _BYTES, _FILES; writes results/catchup.md),
                          f = failover gap (the active server dies), s = switchover,
                          v = tandem verify throughput against a plain hash of the same tree
                          (tree size: TANDEM_BENCH_VERIFY_BYTES, default 1 GiB; not run by
                          default; results in bench/results/verify.md)
                          z = channel.compression off / level 1 / level 6 (writes
                          bench/results/compression.md; not run unless asked)
                          u = start-up of the CLI: node -e 0, tandem --help and tandem status
                          against a running pair, in turn (writes bench/results/cli.md; not
                          run unless asked)
                          i = tandem install secondary: from the end of the install to in sync
                          for a 1 GiB tree (TANDEM_BENCH_INSTALL_BYTES), against rsync -a of it
                          (writes bench/results/install.md; not run unless asked)
  --trials N              trials of (f) per heartbeat timing, and of (s) (default 3)
  --encryption MODE       channel.encryption: tls-psk (default, the product default) or none
  --tmpfs                 put both trees and the agents' state on /dev/shm (takes the disk out)
  --fresh-fs              put everything on an ext4 made for this run (a 64 GiB sparse loop file
                          in TMPDIR; root only): a file system that years of churn have not
                          aged, so that runs can be compared. On this VM's /tmp, ext4 skips
                          inodes freed in the last 30 s on every create and (a) and (e) do not
                          repeat (bench/results/phase1.md)
  --keep                  keep the temp dir (logs, state) after the run, and the pair dirs of (f) and (s)
  --lag-rate N            files per second in (a) (default 1000, the goal's load)
  --one-pair              run (b) and (c) on the pair (a) used, instead of a fresh one
  --cpu-prof              run the agents with node --cpu-prof (a-c, e, o); profiles go to bench/results/profiles/
`;

function parseOptions(argv: string[]): Options {
  const o: Options = { quick: false, only: [...DEFAULT_PARTS], encryption: 'tls-psk', tmpfs: false, freshFs: false, keep: false, cpuProf: false, lagRate: 1000, onePair: false, trials: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const eq = a.indexOf('=');
      if (eq >= 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    const name = a.split('=')[0];
    if (name === '--quick') o.quick = true;
    else if (name === '--tmpfs') o.tmpfs = true;
    else if (name === '--fresh-fs') o.freshFs = true;
    else if (name === '--keep') o.keep = true;
    else if (name === '--cpu-prof') o.cpuProf = true;
    else if (name === '--one-pair') o.onePair = true;
    else if (name === '--lag-rate') {
      const v = Number(value());
      if (!Number.isInteger(v) || v < 1 || v > 100_000) throw new Error(`--lag-rate: expected files per second (1-100000)\n${USAGE}`);
      o.lagRate = v;
    }
    else if (name === '--trials') {
      const v = Number(value());
      if (!Number.isInteger(v) || v < 1 || v > 100) throw new Error(`--trials: expected a number of trials (1-100)\n${USAGE}`);
      o.trials = v;
    }
    else if (name === '--only') {
      const parts = value().split(',').map((s) => s.trim()).filter((s) => s !== '');
      const bad = parts.filter((p) => !(PARTS as readonly string[]).includes(p));
      if (bad.length > 0 || parts.length === 0) throw new Error(`--only: expected a comma list of a, b, c, e, o, f, s, v, z, u, i; got ${JSON.stringify(parts)}\n${USAGE}`);
      o.only = PARTS.filter((p) => parts.includes(p));
    } else if (name === '--encryption') {
      const v = value();
      if (v !== 'tls-psk' && v !== 'none') throw new Error(`--encryption: expected tls-psk or none, got ${JSON.stringify(v)}\n${USAGE}`);
      o.encryption = v;
    } else if (name === '--help' || name === '-h') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else throw new Error(`unknown option ${a}\n${USAGE}`);
  }
  if (o.tmpfs && o.freshFs) throw new Error(`--tmpfs and --fresh-fs: choose one\n${USAGE}`);
  if (o.freshFs && process.getuid?.() !== 0) throw new Error(`--fresh-fs makes a loop device and mounts it: run as root\n${USAGE}`);
  return o;
}

function progress(line: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const fileBytes = opts.quick ? 256 * 2 ** 20 : 2 ** 30;
  const lag = { rate: opts.lagRate, seconds: opts.quick ? 3 : 10, dirCount: 4, coldSeconds: opts.quick ? 1 : 3 };
  const trials = opts.trials ?? (opts.quick ? 1 : 3);
  const want = (p: Part) => opts.only.includes(p);
  const wantABC = want('a') || want('b') || want('c');
  const startedAt = new Date().toISOString();
  const fresh = opts.freshFs ? makeLoopFs({ type: 'ext4', sizeMiB: 64 * 1024, tag: 'bench' }) : undefined;
  const baseDir = opts.tmpfs ? '/dev/shm' : (fresh?.dir ?? os.tmpdir());
  const dir = fs.mkdtempSync(path.join(baseDir, 'tandem-bench-'));

  let pair: BenchPair | undefined;
  let daemon: RsyncDaemon | undefined;
  let cleaned: Promise<void> | undefined;
  let keepForEvidence = false;
  const cleanup = () =>
    (cleaned ??= (async () => {
      await pair?.stop().catch(() => {});
      await daemon?.stop().catch(() => {});
      // The pairs of (f) and (s): agents, demo applications and their directories.
      await closeAllHaPairs(opts.keep).catch(() => {});
      await stopAllChildren(2000);
      if (opts.cpuProf) progress('CPU profiles of the agents: bench/results/profiles/');
      if (opts.keep || keepForEvidence) progress(`kept ${dir}${keepForEvidence ? " (a part failed: the agents' logs and state are there; delete it when done)" : ''}`);
      // rm -rf: fs.rmSync of the (e) trees (300,000 files) took minutes of CPU on a loaded machine.
      else spawnSync('rm', ['-rf', dir]);
      if (fresh !== undefined) {
        if (opts.keep || keepForEvidence) progress(`the fresh file system stays mounted on ${fresh.dir} (${fresh.device}): umount it, losetup -d ${fresh.device}, and delete ${fresh.image}`);
        else cleanupLoops();
      }
    })());
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      progress(`${sig}: stopping the agents, the demo applications and the rsync daemon`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  process.once('exit', () => {
    killAllChildrenNow();
    killAllHaPairsNow();
  });

  const sampler = new ProcessSampler(() => ({ alpha: pair?.pid('alpha'), beta: pair?.pid('beta') }));
  /** A fresh pair for each group of parts (unless --one-pair), started and in sync. */
  const freshPair = async (label: string, prepare: (p: BenchPair) => void = () => {}, heartbeat?: { interval: string; threshold: number }): Promise<BenchPair> => {
    if (pair !== undefined) {
      sampler.closePair();
      await pair.stop();
    }
    const pairDir = path.join(dir, `pair-${label}`);
    progress(`writing a pair into ${pairDir}`);
    const cpuProfileDir = opts.cpuProf ? path.join(PROJECT, 'bench/results/profiles', label) : undefined;
    const p = await BenchPair.create(pairDir, { encryption: opts.encryption, cpuProfileDir, heartbeat });
    prepare(p);
    pair = p;
    await p.start('alpha');
    await p.start('beta');
    sampler.setPhase('start');
    progress('agents started; waiting for the initial synchronisation');
    await p.waitSettled();
    return p;
  };

  try {
    const machine = machineInfo(dir);
    const rsync: RsyncAvailability = want('b') || want('c') ? ensureRsync(progress) : { available: false, version: null, note: 'not needed (no part b or c)' };
    if (!rsync.available && (want('b') || want('c'))) progress(`rsync ${rsync.note}: the rsync columns will say so`);

    // The pair of (a), (b), (c); for (f) and (s) alone only a written (never started) pair, to
    // report the configuration the product defaults give.
    const abcLabel = want('a') && !opts.onePair ? 'a' : opts.only.filter((p) => p === 'a' || p === 'b' || p === 'c').join('');
    let first: BenchPair | undefined;
    if (wantABC) {
      sampler.start();
      first = await freshPair(
        abcLabel,
        (p) => {
          if (want('a')) createLagDirs(p, lag.dirCount);
        },
        want('a') ? undefined : TUNED_HEARTBEAT,
      );
    }
    const cfg = (first ?? (await BenchPair.create(path.join(dir, 'config-only'), { encryption: opts.encryption }))).config('alpha');
    const results: BenchResults = {
      startedAt,
      finishedAt: '',
      options: { quick: opts.quick, only: opts.only, encryption: opts.encryption, tmpfs: opts.tmpfs, onePair: opts.onePair, fileBytes, lagSeconds: lag.seconds, lagRate: lag.rate, trials },
      machine,
      rsync,
      tandem: {
        blockSize: cfg.blockSize,
        encryption: cfg.channel.encryption,
        settleMs: cfg.capture.settle,
        batchDelayMs: cfg.journal.batchDelay,
        journalMaxBytes: cfg.journal.maxBytes,
        windowBytes: cfg.channel.windowBytes,
      },
      lag: null,
      newFile: null,
      overwrite: null,
      failover: null,
      switchover: null,
      catchUp: null,
      memory: {},
      agentWarnings: {},
      failures: {},
      notes: [],
    };
    const collectWarnings = (p: BenchPair) => {
      for (const n of ['alpha', 'beta'] as const) {
        const w = p.warnings(n);
        const r = (results.agentWarnings[n] ??= { count: 0, first: [] });
        r.count += w.length;
        r.first.push(...w.slice(0, 3 - r.first.length).map((x) => String(x.msg ?? JSON.stringify(x))));
      }
    };

    // A part that fails is reported as failed and the run goes on: a benchmark reports, and the
    // temp dir (agents' logs and state) is kept as the evidence.
    const attempt = async (part: Part, fn: () => Promise<void>): Promise<boolean> => {
      try {
        await fn();
        return true;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        results.failures[part] = message;
        keepForEvidence = true;
        progress(`(${part}) FAILED: ${message}`);
        return false;
      }
    };

    if (first !== undefined && want('a')) {
      sampler.setPhase('a');
      await attempt('a', async () => {
        results.lag = await measureLag(first, lag, progress);
      });
      // The same load without Tandem: what this disk alone makes of it (bench/lag-disk.ts).
      await attempt('a', async () => {
        results.lagDisk = [];
        for (const mode of ['each', 'group'] as const) results.lagDisk.push(await measureDiskLag(dir, lag, mode, progress));
      });
    }

    if (first !== undefined && (want('b') || want('c'))) {
      // (b) and (c) start from a pair of their own: what (a) left in the journal and the
      // manifest is not theirs to carry (--one-pair runs everything on one pair).
      collectWarnings(first);
      const p = want('a') && !opts.onePair ? await freshPair('bc', undefined, TUNED_HEARTBEAT) : first;
      sampler.setPhase('prepare');
      const srcDir = path.join(dir, 'src');
      fs.mkdirSync(srcDir);
      const src = path.join(srcDir, BIG_FILE_NAME);
      progress(`writing a ${fileBytes}-byte random source file`);
      const srcSha = writeRandomFile(src, fileBytes);
      spawnSync('sync');
      if (rsync.available) daemon = await RsyncDaemon.start(path.join(dir, 'rsync'), path.join(dir, 'rsync', 'dest'));
      const rsyncd = daemon ?? null;

      let haveBigFile: boolean;
      if (want('b')) {
        sampler.setPhase('b');
        haveBigFile = await attempt('b', async () => {
          results.newFile = await measureNewFile(p, src, srcSha, fileBytes, rsyncd, progress);
        });
      } else {
        progress('(c) putting the big file on both nodes first (not measured)');
        haveBigFile = await attempt('c', async () => {
          fs.copyFileSync(src, p.data('alpha', BIG_FILE_NAME));
          await p.waitQuiet(QUIET_MS);
        });
      }
      if (want('c') && haveBigFile) {
        sampler.setPhase('c');
        await attempt('c', async () => {
          results.overwrite = await measureOverwrite(p, src, fileBytes, rsyncd, !want('b'), progress);
        });
      } else if (want('c') && results.failures.c === undefined) {
        results.failures.c = 'not run: (b) did not put the big file on both nodes';
      }
      if (p !== first) collectWarnings(p);
    } else if (first !== undefined) {
      collectWarnings(first);
    }

    if (first !== undefined) {
      results.memory = sampler.finish();
      // (f) and (s) time failovers to the millisecond, (e) and (o) compare with rsync: nothing of
      // (a)-(c) may run beside them.
      const running = pair;
      if (running !== undefined && (want('e') || want('o') || want('f') || want('s') || want('z'))) {
        progress('stopping the agents of (a)-(c) and the rsync daemon before the other parts');
        await running.stop();
        await daemon?.stop();
        daemon = undefined;
      }
    }

    if (want('e')) {
      await attempt('e', async () => {
        const e = await measureInitialSync(dir, { encryption: opts.encryption, cpuProfileDir: opts.cpuProf ? path.join(PROJECT, 'bench/results/profiles', 'e') : undefined }, progress);
        results.initialSync = e;
        const outDir = path.join(PROJECT, 'bench/results');
        fs.mkdirSync(outDir, { recursive: true });
        fs.writeFileSync(path.join(outDir, 'initial-sync.json'), `${JSON.stringify({ startedAt, machine: results.machine, ...e }, null, 2)}\n`);
        const machine = `${results.machine.cpus} CPUs (${results.machine.cpuModel}), ${results.machine.disk}, Node ${results.machine.node}`;
        fs.writeFileSync(path.join(outDir, 'initial-sync.md'), renderInitialSync(e, startedAt, machine));
        process.stdout.write(`\n${renderInitialSync(e, startedAt, machine)}\n`);
      });
    }

    if (want('o')) {
      await attempt('o', async () => {
        const co = { encryption: opts.encryption, baseDir: dir, keep: opts.keep, cpuProfileDir: opts.cpuProf ? path.join(PROJECT, 'bench/results/profiles', 'o') : undefined };
        const c = catchUpChannel() === 'direct' ? await measureCatchUpIsolated(co, progress) : await measureCatchUp({ ...co, channel: 'proxy' }, progress);
        results.catchUp = c;
        const outDir = path.join(PROJECT, 'bench/results');
        fs.mkdirSync(outDir, { recursive: true });
        fs.writeFileSync(path.join(outDir, 'catchup.json'), `${JSON.stringify({ startedAt, machine: results.machine, ...c }, null, 2)}\n`);
        const machine = `${results.machine.cpus} CPUs (${results.machine.cpuModel}), ${results.machine.disk}, Node ${results.machine.node}`;
        fs.writeFileSync(path.join(outDir, 'catchup.md'), renderCatchUp(c, startedAt, machine));
        process.stdout.write(`\n${renderCatchUp(c, startedAt, machine)}\n`);
      });
    }

    if (want('z')) {
      await attempt('z', async () => {
        const z = await measureCompression({ quick: opts.quick, baseDir: dir, encryption: opts.encryption }, progress);
        const header = `## (z) channel.compression: off, level 1, level 6\n\n${startedAt}, ${machine.cpus} × ${machine.cpuModel}, Node ${machine.node}, ${machine.disk}; channel.encryption ${opts.encryption}${opts.quick ? ', --quick' : ''}.`;
        process.stdout.write(`\n${writeCompressionResults(z, header)}\n`);
        results.notes.push('(z) compression: see bench/results/compression.md.');
        for (const p of z.pairs) if (!p.verified) results.notes.push(`(z) ${p.link} ${p.level} ${p.kind}: the passive's copy differs.`);
      });
    }

    if (want('u')) {
      await attempt('u', async () => {
        const u = await measureCliStartup({ runs: opts.quick ? 10 : 30, baseDir: dir, encryption: opts.encryption }, progress);
        const header = `## (u) start-up of the CLI\n\n${startedAt}, ${machine.cpus} × ${machine.cpuModel}, Node ${machine.node}.`;
        process.stdout.write(`\n${writeCliStartup(u, header)}\n`);
        results.notes.push('(u) CLI start-up: see bench/results/cli.md.');
      });
    }

    if (want('i')) {
      await attempt('i', async () => {
        const r = await measureInstallSync(dir, progress);
        results.notes.push(`(i) install secondary: in sync ${(r.syncMs / 1000).toFixed(1)} s after its agent started, for ${(r.treeBytes / 2 ** 30).toFixed(2)} GiB${r.rsync === null ? '' : ` (rsync -a ${(r.rsync.ms / 1000).toFixed(1)} s, + sync ${(r.rsync.syncMs / 1000).toFixed(1)} s)`}; see bench/results/install.md.`);
        process.stdout.write(`\n${fs.readFileSync(path.join(PROJECT, 'bench/results/install.md'), 'utf8')}\n`);
      });
    }

    if (want('f')) {
      await attempt('f', async () => {
        results.failover = await measureFailover({ trials, keepDirs: opts.keep, encryption: opts.encryption, baseDir: dir }, progress);
        // A trial that went wrong keeps its numbers and says why (its pair's directory is kept).
        for (const s of results.failover.series) {
          for (const e of s.errors) {
            results.notes.push(`(f) ${s.name} ${e}`);
            keepForEvidence = true;
          }
          for (const t of s.trials) {
            for (const f of t.setupFailures ?? []) results.notes.push(`(f) ${s.name} trial ${t.trial}: a pair could not be set up and was replaced by a fresh one: ${f}`);
            if (t.failure === undefined) continue;
            results.notes.push(`(f) ${s.name} trial ${t.trial} went wrong: ${t.failure}`);
            keepForEvidence = true;
          }
        }
      });
    }
    if (want('s')) {
      await attempt('s', async () => {
        results.switchover = await measureSwitchover({ trials, keepDirs: opts.keep, encryption: opts.encryption, baseDir: dir }, progress);
        for (const f of results.switchover.setupFailures ?? []) results.notes.push(`(s) a pair could not be set up and was replaced by a fresh one: ${f}`);
        if (results.switchover.error !== undefined) {
          results.notes.push(`(s) ${results.switchover.error}`);
          keepForEvidence = true;
        }
        for (const t of results.switchover.trials) {
          if (t.failure === undefined) continue;
          results.notes.push(`(s) trial ${t.trial} (${t.from} → ${t.to}) went wrong: ${t.failure}`);
          keepForEvidence = true;
        }
      });
    }

    if (want('v')) {
      await attempt('v', async () => {
        const v = await measureVerify(dir, { encryption: opts.encryption }, progress);
        results.notes.push(
          `(v) tandem verify of a ${(v.treeBytes / 2 ** 30).toFixed(2)} GiB tree: ${v.verify.gbPerSec.toFixed(2)} GB/s, plain hash ${v.plainHash.gbPerSec.toFixed(2)} GB/s (ratio ${v.ratio.toFixed(2)}); bench/results/verify.md`,
        );
      });
    }
    if (opts.tmpfs) results.notes.push('--tmpfs: trees, state and the rsync destination on /dev/shm; disk writes and fsyncs cost nothing here (the pairs of (f) and (s) too).');
    if (fresh !== undefined) results.notes.push(`--fresh-fs: trees, state and the rsync destination on an ext4 made for this run (${fresh.device}, a sparse file on the same disk).`);
    if (want('a') && (want('b') || want('c'))) {
      results.notes.push(opts.onePair ? '--one-pair: (a), (b) and (c) ran on one pair, one after the other.' : '(a) ran on one pair, (b) and (c) on a second, fresh one (same configuration).');
    }
    results.notes.push(...closeProblems.map((p) => `${p}.`));
    if (wantABC && (want('f') || want('s'))) results.notes.push('The agents of (a)-(c) were stopped before (f) and (s), which run pairs of their own.');
    results.finishedAt = new Date().toISOString();

    const outDir = path.join(PROJECT, 'bench/results');
    fs.mkdirSync(outDir, { recursive: true });
    if (Object.keys(results.failures).length > 0) process.exitCode = 1;
    // (e), (z), (u) and (i) alone have their own files: they leave the last run of the other parts in latest.*.
    if (opts.only.some((p) => p !== 'e' && p !== 'z' && p !== 'u' && p !== 'i')) {
      fs.writeFileSync(path.join(outDir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
      fs.writeFileSync(path.join(outDir, 'latest.md'), renderMarkdown(results));
      process.stdout.write(`\n${renderText(results)}\n`);
      progress(`written ${path.relative(process.cwd(), path.join(outDir, 'latest.json'))} and latest.md`);
    } else {
      for (const p of ['e', 'z', 'u', 'i'] as const) if (results.failures[p] !== undefined) process.stdout.write(`\n(${p}) FAILED: ${results.failures[p]}\n`);
    }
  } catch (err) {
    keepForEvidence = true;
    throw err;
  } finally {
    await cleanup();
  }
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  })
  // Everything was stopped by cleanup(); a test helper's socket that never reported closed
  // must not keep the process alive.
  .finally(() => process.exit());
