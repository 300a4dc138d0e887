// (o) Catch-up after an outage: a pair in sync on a base tree, the channel cut (see below) for
// the outage while block-aligned changes of known size are made on the active,
// then the time from reconnect to both sides in sync and the bytes sent; against rsync -a of the
// same before/after trees, run locally between two copies of the base tree, once with its
// default for local copies (whole files) and once with --no-whole-file (its delta algorithm, as
// over a network). Sizes and the outage come from the environment:
//
//   TANDEM_BENCH_CATCHUP_OUTAGE  outage, default 60s
//   TANDEM_BENCH_CATCHUP_BYTES   bytes changed, default 1GiB (rounded to whole blocks per file)
//   TANDEM_BENCH_CATCHUP_FILES   files changed, default 10000 (80 % existing, 20 % new)
//   TANDEM_BENCH_CATCHUP_CHANNEL direct (the default where the benchmark runs as root with `ip`)
//                                or proxy
//
// direct: the whole part runs in a private network namespace (catch-up-isolated.ts) and the
// channel joins the agents with nothing between them; the outage removes its addresses. proxy:
// the fault tests' userspace TCP proxy carries the channel and refuses during the outage; every
// byte of the catch-up then crosses one more process (this benchmark's own), which is work and
// latency the real pair does not have, on a machine of two CPUs where the catch-up is CPU-bound.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseDuration, parseSize } from '../shared/sizes.ts';
import { planWrites, runWrites, writeBaseTree, type ChangePlanSpec } from '../test/helpers/change-workload.ts';
import { parseMetrics } from '../test/helpers/metrics.ts';
import { digestTree, treeDiff } from '../test/helpers/tree-hash.ts';
import { nowMs, sleep } from './clock.ts';
import { procCpuSeconds } from './process-sampler.ts';
import { closeHaPair, DEFAULTS, openHaPair, stopProfiled, type Encryption, type FailoverPair } from './ha-pair.ts';

export interface CatchUpBenchOptions {
  encryption: Encryption;
  baseDir: string;
  keep: boolean;
  /** Run the agents under node --cpu-prof; each writes its profile there once the catch-up is measured. */
  cpuProfileDir?: string | undefined;
  /** How the channel is carried and cut (see the head of this file); direct only in a private network namespace. */
  channel: CatchUpChannel;
}

export type CatchUpChannel = 'direct' | 'proxy';

export interface RsyncCatchUp {
  mode: string;
  seconds: number;
  bytesSent: number;
  bytesReceived: number;
  literalBytes: number | null;
  /** A `sync` right after it: what rsync wrote made durable (Tandem acknowledges only fsynced data). */
  syncSeconds: number;
}

export interface CatchUpResult {
  channel: CatchUpChannel;
  outageMs: number;
  blockSize: number;
  baseFiles: number;
  baseBytes: number;
  changes: number;
  filesTouched: number;
  bytesChanged: number;
  writeSeconds: number;
  journalMaxBytes: number;
  tandem: {
    seconds: number;
    /** From the reconnect until both agents report the channel up again (status polled every 50 ms). */
    connectSeconds: number | null;
    /** Active → passive, and passive → active (acks, peer-state, heartbeats), on the channel's TCP socket. */
    bytesOut: number;
    bytesBack: number;
    filesHashedActive: number;
    synchronisations: number;
    captureHeldBack: boolean;
    identical: boolean;
    /** CPU seconds of each agent from the reconnect until in sync (null: not measurable). */
    cpuActive: number | null;
    cpuPassive: number | null;
    /** fsync, fdatasync and syncfs calls of the passive meanwhile (tandem_fsyncs_total). */
    fsyncsPassive: number | null;
  };
  rsync: RsyncCatchUp[];
  notes: string[];
}

const BLOCK = 64 * 1024; // blockSize: the product default

function env(name: string, parse: (v: string) => number | undefined, def: string): number {
  const v = process.env[name] ?? def;
  const n = parse(v);
  if (n === undefined || !(n > 0)) throw new Error(`${name}: cannot read ${JSON.stringify(v)}`);
  return n;
}

function statNumber(out: string, label: string): number | null {
  const m = new RegExp(`^${label}:\\s*([\\d,.]+)`, 'm').exec(out);
  return m ? Number(m[1]!.replace(/,/g, '')) : null;
}

function runRsync(mode: string, args: string[], src: string, dst: string): RsyncCatchUp {
  const t0 = nowMs();
  const r = spawnSync('rsync', ['-a', '--stats', ...args, `${src}/`, `${dst}/`], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  const seconds = (nowMs() - t0) / 1000;
  if (r.status !== 0) throw new Error(`rsync ${mode} exited with ${r.status}: ${r.stderr}`);
  const t1 = nowMs();
  spawnSync('sync');
  return {
    mode,
    seconds,
    syncSeconds: (nowMs() - t1) / 1000,
    bytesSent: statNumber(r.stdout, 'Total bytes sent') ?? 0,
    bytesReceived: statNumber(r.stdout, 'Total bytes received') ?? 0,
    literalBytes: statNumber(r.stdout, 'Literal data'),
  };
}

export async function measureCatchUp(o: CatchUpBenchOptions, progress: (l: string) => void): Promise<CatchUpResult> {
  const outageMs = env('TANDEM_BENCH_CATCHUP_OUTAGE', parseDuration, '60s');
  const bytes = env('TANDEM_BENCH_CATCHUP_BYTES', parseSize, '1GiB');
  const files = Math.round(env('TANDEM_BENCH_CATCHUP_FILES', (v) => Number(v), '10000'));
  const perFile = Math.max(1, Math.round(bytes / files / BLOCK));
  const existing = Math.round(files * 0.8);
  const spec: ChangePlanSpec = {
    // As many untouched files again as touched ones, so a full-tree pass would show.
    base: { files: 2 * existing, blocks: 2, blockSize: BLOCK, mtime: new Date('2024-01-01T00:00:00Z') },
    existing: { files: existing, overwrites: 1, appends: perFile - 1 },
    created: { files: files - existing, blocks: perFile },
  };
  const writes = planWrites(spec);
  const work = fs.mkdtempSync(path.join(o.baseDir, 'catchup-'));
  const rsyncDirs = [path.join(work, 'rsync-whole'), path.join(work, 'rsync-delta')];
  let baseBytes = 0;
  progress(`(o) writing a base tree of ${spec.base.files} files × ${spec.base.blocks * BLOCK} bytes into both nodes and two rsync copies`);
  const fp: FailoverPair = await openHaPair(DEFAULTS, o.encryption, work, (p) => {
    for (const n of ['alpha', 'beta'] as const) for (const e of fs.readdirSync(p.pair.data(n))) fs.rmSync(path.join(p.pair.data(n), e), { recursive: true });
    baseBytes = writeBaseTree([p.pair.data('alpha'), p.pair.data('beta'), ...rsyncDirs], spec.base);
    spawnSync('sync');
  }, o.cpuProfileDir, o.channel === 'direct');
  try {
    progress('(o) pair in sync; cutting the channel');
    const notes: string[] = [];
    const alphaCfgMax = 2 ** 30; // journal.maxBytes: the product default, not changed here
    const atCut = await fp.pair.status('alpha');
    const betaAtCut = await fp.pair.status('beta');
    await fp.cutChannel(true);
    const cutAt = nowMs();
    const writeMs = Math.max(0, outageMs - 15_000);
    progress(`(o) ${writes.length} writes (${perFile} × ${BLOCK} bytes per file) over ${writeMs / 1000} s of a ${outageMs / 1000} s outage`);
    const changed = await runWrites(fp.pair.data('alpha'), writes, writeMs);
    spawnSync('sync');
    const rest = cutAt + outageMs - nowMs();
    if (rest > 0) await sleep(rest);
    else notes.push(`the writes took ${(changed.durationMs / 1000).toFixed(1)} s, longer than the outage: the channel came back ${(-rest / 1000).toFixed(1)} s late`);
    const a0 = await fp.pair.status('alpha');
    const heldBack = a0.capture?.waitingForSpace === true;
    progress(`(o) reconnecting (capture ${heldBack ? 'held back by a full journal' : 'not held back'}, ${a0.capture?.pendingPaths ?? 0} paths pending)`);
    const cpu = () => ({ a: cpuOf(fp.pair.pid('alpha')), b: cpuOf(fp.pair.pid('beta')) });
    const cpu0 = cpu();
    const fsyncs0 = await fsyncsOf(fp.pair.node('beta').controlUrl);
    const t0 = nowMs();
    const reconnectAt = Date.now();
    await fp.cutChannel(false);
    // In sync on both sides, and capture has nothing left (polling status only: digesting the trees would compete).
    const deadline = t0 + 60 * 60_000;
    let connectSeconds: number | null = null;
    for (;;) {
      const [a, b] = await Promise.all([fp.pair.status('alpha').catch(() => undefined), fp.pair.status('beta').catch(() => undefined)]);
      if (connectSeconds === null && a?.peer.connected === true && b?.peer.connected === true) connectSeconds = (nowMs() - t0) / 1000;
      if (a?.replication.inSync === true && b?.replication.inSync === true && a.capture?.pendingPaths === 0) break;
      if (nowMs() > deadline) throw new Error('(o) the passive did not catch up within an hour');
      await sleep(50);
    }
    const seconds = (nowMs() - t0) / 1000;
    const cpu1 = cpu();
    const fsyncs1 = await fsyncsOf(fp.pair.node('beta').controlUrl);
    const a1 = await fp.pair.status('alpha');
    const b1 = await fp.pair.status('beta');
    const syncs = fp.pair.logLines('alpha').filter((l) => /^replication: passive connected, synchronising/.test(String(l.msg)) && Number(l.time) >= reconnectAt).length;
    progress(`(o) Tandem caught up in ${seconds.toFixed(1)} s; checking the trees, then rsync`);
    // The profiles end here (the catch-up's window is its last seconds), before the digests.
    if (o.cpuProfileDir !== undefined) await stopProfiled(fp);
    const diff = treeDiff(digestTree(fp.pair.data('alpha')), digestTree(fp.pair.data('beta')));
    if (diff !== '') notes.push(`trees differ after the catch-up: ${diff.slice(0, 300)}`);
    // Both agents are idle now; rsync reads the active's tree (the after state) into the before copies.
    spawnSync('sync');
    const rsync = [runRsync('rsync -a (local default: whole files)', [], fp.pair.data('alpha'), rsyncDirs[0]!)];
    rsync.push(runRsync('rsync -a --no-whole-file (delta)', ['--no-whole-file'], fp.pair.data('alpha'), rsyncDirs[1]!));
    notes.push('rsync ran after the catch-up, with both agents idle, on warm page caches like the agents had; each is followed by a \`sync\`, timed apart ("+ sync"): Tandem acknowledges only data fsynced on the passive.');
    return {
      channel: o.channel,
      outageMs,
      blockSize: BLOCK,
      baseFiles: spec.base.files,
      baseBytes,
      changes: changed.changes,
      filesTouched: changed.filesTouched,
      bytesChanged: changed.bytesChanged,
      writeSeconds: changed.durationMs / 1000,
      journalMaxBytes: alphaCfgMax,
      tandem: {
        seconds,
        connectSeconds,
        bytesOut: a1.channel.bytesOut - atCut.channel.bytesOut,
        bytesBack: b1.channel.bytesOut - betaAtCut.channel.bytesOut,
        filesHashedActive: (a1.capture?.filesHashed ?? 0) - (a0.capture?.filesHashed ?? 0),
        synchronisations: syncs,
        captureHeldBack: heldBack,
        identical: diff === '',
        cpuActive: cpu0.a === null || cpu1.a === null ? null : cpu1.a - cpu0.a,
        cpuPassive: cpu0.b === null || cpu1.b === null ? null : cpu1.b - cpu0.b,
        fsyncsPassive: fsyncs0 === null || fsyncs1 === null ? null : fsyncs1 - fsyncs0,
      },
      rsync,
      notes,
    };
  } finally {
    await closeHaPair(fp, o.keep);
    if (!o.keep) fs.rmSync(work, { recursive: true, force: true });
  }
}

const secs = (n: number | null) => (n === null ? '?' : `${n.toFixed(1)} s`);

/** CPU seconds of an agent's process (under --cpu-prof a shell execs node in place: the same pid). */
function cpuOf(pid: number | undefined): number | null {
  return pid === undefined ? null : procCpuSeconds(pid);
}

/** The agent's tandem_fsyncs_total, or null when /metrics does not answer. */
async function fsyncsOf(controlUrl: string): Promise<number | null> {
  try {
    const res = await fetch(`${controlUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
    return parseMetrics(await res.text()).samples.get('tandem_fsyncs_total') ?? null;
  } catch {
    return null;
  }
}

const mib = (n: number) => (n < 2 ** 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 2 ** 20).toFixed(1)} MiB`);

export function renderCatchUp(r: CatchUpResult, when: string, machine: string): string {
  const t = r.tandem;
  const rows = [
    `| Tandem (journal, then held-back capture) | ${t.seconds.toFixed(1)} s | ${mib(t.bytesOut)} (+ ${mib(t.bytesBack)} back) | ${(t.bytesOut / r.bytesChanged).toFixed(3)} × | channel up after ${secs(t.connectSeconds)}; ${t.filesHashedActive} files hashed after reconnect (active), ${t.synchronisations} synchronisations; CPU active / passive ${secs(t.cpuActive)} / ${secs(t.cpuPassive)}; the passive's fsyncs and syncfs ${t.fsyncsPassive ?? '?'} |`,
    ...r.rsync.map((x) => `| ${x.mode} | ${x.seconds.toFixed(1)} s; + sync ${(x.seconds + x.syncSeconds).toFixed(1)} s | ${mib(x.bytesSent)} (+ ${mib(x.bytesReceived)} back) | ${(x.bytesSent / r.bytesChanged).toFixed(3)} × | literal data ${x.literalBytes === null ? '?' : mib(x.literalBytes)}; Tandem's time ${(t.seconds / x.seconds).toFixed(2)} × rsync's, ${(t.seconds / (x.seconds + x.syncSeconds)).toFixed(2)} × rsync + sync; bytes ${(x.bytesSent / t.bytesOut).toFixed(2)} × |`),
  ];
  return [
    '# (o) Catch-up after an outage',
    '',
    `Run ${when} on ${machine}. \`npm run bench -- --only o\`; sizes from TANDEM_BENCH_CATCHUP_{OUTAGE,BYTES,FILES}.`,
    '',
    `Channel: ${r.channel === 'direct' ? "direct (both agents in a private network namespace, the outage removes the channel addresses: packets are lost, nothing is refused; the agents close the silent connection after twice the heartbeat's threshold and dial again)" : 'through a userspace TCP proxy in the benchmark process (it refuses during the outage: the agents dial again)'}.`,
    '',
    `Base tree: ${r.baseFiles} files, ${mib(r.baseBytes)} (identical on both nodes and in the two rsync copies). Channel cut for ${r.outageMs / 1000} s; during it ${r.changes} block-aligned writes (block ${r.blockSize / 1024} KiB, product defaults otherwise, journal.maxBytes ${mib(r.journalMaxBytes)}) changed ${mib(r.bytesChanged)} in ${r.filesTouched} files, in ${r.writeSeconds.toFixed(1)} s. Capture ${t.captureHeldBack ? 'was held back by a full journal at reconnect' : 'had journaled everything before the reconnect'}. Trees identical after: ${t.identical ? 'yes' : 'NO'}.`,
    '',
    '| | reconnect → in sync | bytes sent | sent / changed | notes |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    ...r.notes.map((n) => `- ${n}`),
    '',
  ].join('\n');
}
