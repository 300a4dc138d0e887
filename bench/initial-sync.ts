// (e) Initial synchronisation of many small files: a tree of TANDEM_BENCH_SYNC_FILES files
// (default 100,000) of TANDEM_BENCH_SYNC_FILE_BYTES (default 1 KiB), 1,000 to a directory, on
// the active; the active started first and left to hash it into its manifest (its baseline, not
// measured), then the empty passive started: from the passive's start until both nodes say in
// sync (the passive acknowledged the sync's end, every byte durable there): the later of the two
// nodes' `state → in-sync` events, read from their event histories once the poll sees the pair
// settled (the poll alone would add up to its interval). Side by side, in the same run, `rsync
// -a` of the same tree into an empty directory, alone and followed by `sync` (rsync does not
// fsync). Both agents' peak RSS (VmHWM) and CPU; the status is polled twice a
// second, so the poll itself costs the agents nothing that shows.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { digestTree, treeDiff } from '../test/helpers/tree-hash.ts';
import { callControl } from '../console/control-client.ts';
import { BenchPair, type NodeName } from './bench-pair.ts';
import { nowMs, sleep } from './clock.ts';
import { procCpuSeconds, procStatusBytes } from './process-sampler.ts';

const FILES_PER_DIR = 1000;
const POLL_MS = 500;
const DONE_TIMEOUT_MS = 60 * 60_000;

export interface InitialSyncResult {
  files: number;
  fileBytes: number;
  /** The active's first start: hashing the tree into its manifest (not part of the synchronisation). */
  baselineSeconds: number;
  tandem: {
    /** The passive's start → both nodes in sync (the later of their in-sync events). */
    seconds: number;
    /** The passive's start → the poll that first saw both in sync (up to POLL_MS later). */
    polledSeconds: number;
    /** The passive's start → its first status answer (the agent's own start-up). */
    startSeconds: number;
    /** Peak RSS (VmHWM) at the end, bytes. */
    activeRss: number | null;
    passiveRss: number | null;
    /** CPU seconds during the synchronisation. */
    activeCpu: number | null;
    passiveCpu: number | null;
    wireBytes: number;
    identical: boolean;
    difference: string;
  };
  rsync: { seconds: number; syncSeconds: number } | null;
  /** os.loadavg() when the measurement began and ended: the bench shares the machine. */
  load: { before: number[]; after: number[] };
}

export function syncFiles(): { files: number; fileBytes: number } {
  const num = (name: string, def: number, min: number) => {
    const v = process.env[name];
    if (v === undefined || v === '') return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`${name}: expected an integer of at least ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
  return { files: num('TANDEM_BENCH_SYNC_FILES', 100_000, 1), fileBytes: num('TANDEM_BENCH_SYNC_FILE_BYTES', 1024, 1) };
}

/** Writes `files` files of `bytes` pseudo-random bytes, FILES_PER_DIR to a directory. */
export function writeSmallTree(dir: string, files: number, bytes: number): void {
  const buf = Buffer.allocUnsafe(bytes);
  let seed = 7;
  for (let i = 0; i < files; i++) {
    for (let k = 0; k + 4 <= buf.length; k += 4) buf.writeUInt32LE((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0), k);
    const sub = path.join(dir, `d${String(Math.floor(i / FILES_PER_DIR)).padStart(4, '0')}`);
    if (i % FILES_PER_DIR === 0) fs.mkdirSync(sub, { recursive: true });
    fs.writeFileSync(path.join(sub, `f${i}.bin`), buf);
  }
}

const round2 = (xs: number[]) => xs.map((x) => Math.round(x * 100) / 100);

export async function measureInitialSync(
  dir: string,
  opts: { encryption: 'tls-psk' | 'none'; cpuProfileDir?: string | undefined },
  progress: (line: string) => void,
): Promise<InitialSyncResult> {
  const { files, fileBytes } = syncFiles();
  const pair = await BenchPair.create(path.join(dir, 'pair-e'), { encryption: opts.encryption, cpuProfileDir: opts.cpuProfileDir });
  try {
    const src = pair.data('alpha');
    progress(`(e) writing ${files} files of ${fileBytes} bytes into the active's tree`);
    writeSmallTree(src, files, fileBytes);
    spawnSync('sync');
    progress('(e) starting the active: it hashes the tree into its manifest first (not measured)');
    const b0 = nowMs();
    await pair.start('alpha', DONE_TIMEOUT_MS);
    for (;;) {
      const s = await pair.status('alpha', 5000).catch(() => undefined);
      if (s?.capture?.state === 'running') break;
      if (nowMs() - b0 > DONE_TIMEOUT_MS) throw new Error('(e) the active did not finish its baseline');
      await sleep(POLL_MS);
    }
    const baselineSeconds = (nowMs() - b0) / 1000;
    spawnSync('sync');
    const loadBefore = round2(os.loadavg());
    const alphaPid = pair.pid('alpha')!;
    const cpuA0 = procCpuSeconds(alphaPid);
    const before = await pair.status('alpha');
    progress(`(e) baseline took ${baselineSeconds.toFixed(1)} s; starting the empty passive: timing until both are in sync`);
    const t0 = nowMs();
    const t0Wall = Date.now();
    await pair.start('beta');
    const startSeconds = (nowMs() - t0) / 1000;
    const betaPid = pair.pid('beta')!;
    let after = before;
    for (;;) {
      if (nowMs() - t0 > DONE_TIMEOUT_MS) throw new Error(`(e) not in sync after ${DONE_TIMEOUT_MS / 1000} s`);
      await sleep(POLL_MS);
      const [a, b] = await Promise.all([pair.status('alpha', 5000).catch(() => undefined), pair.status('beta', 5000).catch(() => undefined)]);
      if (a === undefined || b === undefined) continue;
      if (BenchPair.isSettled(a, b) && a.replication.headSeq > before.replication.headSeq) {
        after = a;
        break;
      }
    }
    const polledSeconds = (nowMs() - t0) / 1000;
    const inSyncAt = await Promise.all((['alpha', 'beta'] as const).map((n) => lastInSyncEvent(pair, n, t0Wall)));
    const seconds = inSyncAt.every((x) => x !== undefined) ? (Math.max(...(inSyncAt as number[])) - t0Wall) / 1000 : polledSeconds;
    const cpuA1 = procCpuSeconds(alphaPid);
    const passiveCpu = procCpuSeconds(betaPid);
    const activeRss = procStatusBytes(alphaPid, 'VmHWM');
    const passiveRss = procStatusBytes(betaPid, 'VmHWM');
    const loadAfter = round2(os.loadavg());
    progress(`(e) Tandem in sync after ${seconds.toFixed(1)} s; comparing the trees`);
    const difference = treeDiff(digestTree(src), digestTree(pair.data('beta')));
    await pair.stop();

    let rsync: InitialSyncResult['rsync'] = null;
    if (spawnSync('rsync', ['--version']).status === 0) {
      progress('(e) rsync -a of the same tree into an empty directory, then sync');
      spawnSync('sync');
      const dest = path.join(dir, 'rsync-e');
      const r0 = nowMs();
      const r = spawnSync('rsync', ['-a', `${src}/`, `${dest}/`]);
      const rs = (nowMs() - r0) / 1000;
      if (r.status !== 0) throw new Error(`(e) rsync exited ${r.status}: ${String(r.stderr).slice(-500)}`);
      spawnSync('sync');
      rsync = { seconds: rs, syncSeconds: (nowMs() - r0) / 1000 - rs };
      // rm -rf: fs.rmSync of 100,000 files took minutes of the bench's own CPU on a loaded machine.
      spawnSync('rm', ['-rf', dest]);
    }
    return {
      files,
      fileBytes,
      baselineSeconds,
      tandem: {
        seconds,
        polledSeconds,
        startSeconds,
        activeRss,
        passiveRss,
        activeCpu: cpuA0 === null || cpuA1 === null ? null : cpuA1 - cpuA0,
        passiveCpu,
        wireBytes: after.channel.bytesOut + after.channel.bytesIn - (before.channel.bytesOut + before.channel.bytesIn),
        identical: difference === '',
        difference,
      },
      rsync,
      load: { before: loadBefore, after: loadAfter },
    };
  } finally {
    await pair.stop().catch(() => undefined);
  }
}

/** When `name` last said `state → in-sync` (ms since the epoch, its clock: this machine's), at or after `since`. */
async function lastInSyncEvent(pair: BenchPair, name: NodeName, since: number): Promise<number | undefined> {
  let after = 0;
  let last: number | undefined;
  for (;;) {
    const a = await callControl(pair.controlUrl(name), 'GET', `/v1/events?since=${after}&limit=1000`, undefined, 5000);
    const events = (a.body.events ?? []) as { seq: number; time: number; kind: string; to: string }[];
    for (const e of events) if (e.kind === 'state' && e.to === 'in-sync' && e.time >= since) last = e.time;
    if (events.length < 1000) return last;
    after = events[events.length - 1]!.seq;
  }
}

const MiB = 2 ** 20;

export function renderInitialSync(r: InitialSyncResult, startedAt: string, machine: string): string {
  const t = r.tandem;
  const s = (x: number) => `${x.toFixed(1)} s`;
  const withSync = r.rsync === null ? null : r.rsync.seconds + r.rsync.syncSeconds;
  const mib = (x: number | null) => (x === null ? '?' : `${(x / MiB).toFixed(0)} MiB`);
  return `# (e) initial synchronisation of ${r.files.toLocaleString('en-US')} small files

\`npm run bench -- --only e\` (TANDEM_BENCH_SYNC_FILES, TANDEM_BENCH_SYNC_FILE_BYTES), ${startedAt}.
Machine: ${machine}.

${r.files.toLocaleString('en-US')} files of ${r.fileBytes} bytes (${(r.files * r.fileBytes / MiB).toFixed(0)} MiB), ${FILES_PER_DIR} to a directory, on the active (product
defaults, channel encryption as configured); the active started first and hashed the tree into its
manifest (${s(r.baselineSeconds)}, not measured); then the empty passive started. Time: the passive's
start until both nodes say in sync (every byte durable on the passive): the later of their in-sync
events (the status poll, every ${POLL_MS} ms, saw it at ${s(t.polledSeconds)}). rsync: \`rsync -a\` of the
same tree into an empty directory on the same disk, then \`sync\`.

| measure | Tandem | rsync -a | rsync -a + sync | Tandem / (rsync + sync) |
|---|---|---|---|---|
| passive started → in sync | **${s(t.seconds)}** | ${r.rsync === null ? 'n/a' : s(r.rsync.seconds)} | ${withSync === null ? 'n/a' : s(withSync)} | ${withSync === null ? 'n/a' : `**${(t.seconds / withSync).toFixed(2)}×**`} |
| peak RSS (VmHWM) active / passive | ${mib(t.activeRss)} / ${mib(t.passiveRss)} | | | |
| CPU seconds active / passive | ${t.activeCpu?.toFixed(1) ?? '?'} / ${t.passiveCpu?.toFixed(1) ?? '?'} | | | |
| wire bytes (channel, both directions) | ${mib(t.wireBytes)} | | | |

The passive's own start-up (until its control API answered) took ${s(t.startSeconds)} of that. The two
trees were ${t.identical ? 'identical (contents, modes, owners)' : `**not identical**: ${t.difference}`}. Load average (1/5/15 min) when
the synchronisation began: ${r.load.before.join(' / ')}; when it ended: ${r.load.after.join(' / ')}.
`;
}
