// (b) A new big file, and (c) 4 KiB overwritten in its middle: Tandem from the moment the file
// is written on the active until the active holds the passive's acknowledgement (which Tandem
// gives only for durable data), against rsync of the same file to an rsync daemon, without and
// with the `sync` that would make its copy durable.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { AgentStatus } from '../agent/control/index.ts';
import { nowMs, sleep } from './clock.ts';
import { exited, spawnTracked } from './children.ts';
import type { BenchPair } from './bench-pair.ts';
import { rangeEquals, sameContent, sha256File, sizeOf } from './file-checks.ts';
import type { RsyncDaemon, RsyncRun } from './rsync-daemon.ts';

export const BIG_FILE_NAME = 'big.bin';
const STATUS_POLL_MS = 20;
const OVERWRITE_STATUS_POLL_MS = 5;
const VISIBLE_POLL_MS = 1;
/** Far beyond any plausible time on this kind of machine: past it, the part is reported as failed. */
const DONE_TIMEOUT_MS = 5 * 60_000;
export const PATCH_BYTES = 4096;
/** Longer than capture.settle and the racy window together, so no recheck is still due. */
export const QUIET_MS = 500;

export interface TandemNewFile {
  /** From the start of `cp` until the active holds the passive's acknowledgement, seconds. */
  seconds: number;
  /** The `cp` alone, seconds. */
  cpSeconds: number;
  /** alpha's channel.bytesOut + bytesIn delta: wire bytes including framing and TLS. */
  wireBytes: number;
  verified: boolean;
  /** capture reported waitingForSpace (journal at journal.maxBytes) at some poll. */
  sawJournalFull: boolean;
  /** When capture had journaled the whole file (head final, nothing pending), seconds from the start. */
  journaledSeconds: number | null;
  /**
   * The longest channel silence (no heartbeat, no other byte) either agent saw since it started (the
   * pair is fresh and its tree empty, so this is the big file), and the node's heartbeat timing.
   */
  heartbeat: { longestGapMs: number; intervalMs: number; threshold: number } | null;
}

export interface RsyncOutcome {
  run: RsyncRun;
  verified: boolean;
}

export interface NewFileResult {
  size: number;
  tandem: TandemNewFile;
  rsync: RsyncOutcome | null;
}

function wireDelta(before: AgentStatus, after: AgentStatus): number {
  return after.channel.bytesOut - before.channel.bytesOut + (after.channel.bytesIn - before.channel.bytesIn);
}

function acknowledged(s: AgentStatus, afterSeq: number): boolean {
  return s.replication.inSync && s.capture?.pendingPaths === 0 && s.replication.appliedSeq > afterSeq;
}

/** The first poll at which capture had journaled everything the final status acknowledges. */
function journaledAt(seen: { at: number; status: AgentStatus }[], final: AgentStatus, t0: number): number | null {
  const x = seen.find((p) => p.status.replication.headSeq >= final.replication.headSeq && p.status.capture?.pendingPaths === 0);
  return x === undefined ? null : (x.at - t0) / 1000;
}

export async function measureNewFile(pair: BenchPair, src: string, srcSha: string, size: number, rsync: RsyncDaemon | null, progress: (line: string) => void): Promise<NewFileResult> {
  const active = pair.data('alpha', BIG_FILE_NAME);
  const passive = pair.data('beta', BIG_FILE_NAME);
  const before = (await pair.waitQuiet(QUIET_MS)).alpha;
  spawnSync('sync');

  progress(`(b) Tandem: cp of ${size} bytes into the active's data dir`);
  const t0 = nowMs();
  const cp = spawnTracked('cp', [src, active], { stdio: 'ignore' });
  let cpEnd: number | undefined;
  let cpCode: number | null = null;
  void exited(cp).then((code) => {
    cpCode = code;
    cpEnd = nowMs();
  });
  let sawJournalFull = false;
  const seen: { at: number; status: AgentStatus }[] = [];
  let done: { at: number; status: AgentStatus } | undefined;
  let verified = false;
  let mismatchAt = '';
  while (done === undefined) {
    if (nowMs() - t0 > DONE_TIMEOUT_MS) {
      const last = seen[seen.length - 1]?.status;
      throw new Error(
        `(b) the new file was not on the passive within ${DONE_TIMEOUT_MS / 1000} s; passive file ${sizeOf(passive)} bytes${mismatchAt === '' ? '' : ', with other content'}; alpha ${JSON.stringify(last?.replication)} capture ${JSON.stringify(last?.capture)}`,
      );
    }
    await sleep(STATUS_POLL_MS);
    const s = await pair.status('alpha').catch(() => undefined);
    const at = nowMs();
    if (s?.capture?.waitingForSpace === true) sawJournalFull = true;
    if (s !== undefined) seen.push({ at, status: s });
    if (cpEnd === undefined || s === undefined) continue;
    if (cpCode !== 0) throw new Error(`(b) cp ${src} ${active} exited with ${cpCode}`);
    if (!acknowledged(s, before.replication.headSeq) || sizeOf(passive) !== size) continue;
    // Hashing 1 GiB takes a second: look again only when the active's account has moved.
    const key = `${s.replication.headSeq}/${s.replication.appliedSeq}`;
    if (key === mismatchAt) continue;
    // Checked after the clock stopped: the time is when the acknowledgement was seen.
    if (sha256File(passive) === srcSha) {
      verified = true;
      done = { at, status: s };
    } else {
      mismatchAt = key;
      progress(`(b) the active reports the passive in sync at seq ${s.replication.appliedSeq}, the passive's file has the size but not the content; waiting on`);
    }
  }
  const beta = await pair.status('beta').catch(() => undefined);
  const cfg = pair.config('alpha');
  const tandem: TandemNewFile = {
    seconds: (done.at - t0) / 1000,
    cpSeconds: (cpEnd! - t0) / 1000,
    wireBytes: wireDelta(before, done.status),
    verified,
    sawJournalFull,
    journaledSeconds: journaledAt(seen, done.status, t0),
    heartbeat:
      beta === undefined
        ? null
        : { longestGapMs: Math.max(done.status.links.heartbeat.longestGapMs, beta.links.heartbeat.longestGapMs), intervalMs: cfg.heartbeat.intervalMs, threshold: cfg.heartbeat.threshold },
  };

  let rsyncOut: RsyncOutcome | null = null;
  if (rsync !== null) {
    await pair.waitSettled();
    progress(`(b) rsync of the same file to ${rsync.url}`);
    const run = await rsync.push(src);
    const dest = `${rsync.destDir}/${BIG_FILE_NAME}`;
    rsyncOut = { run, verified: sizeOf(dest) === size && sha256File(dest) === srcSha };
  }
  return { size, tandem, rsync: rsyncOut };
}

export interface TandemOverwrite {
  offset: number;
  /** Until the new bytes can be read in the passive's file, seconds. */
  visibleSeconds: number | null;
  /** Until the active holds the passive's acknowledgement (durable), seconds. */
  seconds: number;
  wireBytes: number;
  verified: boolean;
  journaledSeconds: number | null;
}

export interface OverwriteResult {
  size: number;
  patchBytes: number;
  tandem: TandemOverwrite;
  rsync: RsyncOutcome | null;
}

/**
 * Needs the big file on both nodes (after measureNewFile, or `seed`). When `seedRsync`, the
 * rsync destination does not hold the old file yet and gets it first, unmeasured.
 */
export async function measureOverwrite(
  pair: BenchPair,
  src: string,
  size: number,
  rsync: RsyncDaemon | null,
  seedRsync: boolean,
  progress: (line: string) => void,
): Promise<OverwriteResult> {
  const active = pair.data('alpha', BIG_FILE_NAME);
  const passive = pair.data('beta', BIG_FILE_NAME);
  if (rsync !== null && seedRsync) {
    progress('(c) seeding the rsync destination with the old file (not measured)');
    await rsync.push(src);
  }
  const before = (await pair.waitQuiet(QUIET_MS)).alpha;
  if (!sameContent(active, passive)) throw new Error('(c) the passive does not hold the same big file as the active before the overwrite');
  spawnSync('sync');

  const patch = crypto.randomBytes(PATCH_BYTES);
  const offset = Math.floor(size / 2) + 1234;
  progress(`(c) Tandem: ${PATCH_BYTES} bytes overwritten at offset ${offset}`);
  const scratch = Buffer.alloc(PATCH_BYTES);
  const t0 = nowMs();
  const fd = fs.openSync(active, 'r+');
  fs.writeSync(fd, patch, 0, PATCH_BYTES, offset);
  fs.closeSync(fd);

  let visibleAt: number | null = null;
  let acked: { at: number; status: AgentStatus } | undefined;
  const seen: { at: number; status: AgentStatus }[] = [];
  const watchVisible = (async () => {
    while (acked === undefined && visibleAt === null) {
      if (rangeEquals(passive, offset, patch, scratch)) visibleAt = nowMs();
      else await sleep(VISIBLE_POLL_MS);
    }
  })();
  while (acked === undefined) {
    if (nowMs() - t0 > DONE_TIMEOUT_MS) throw new Error(`(c) the overwrite did not reach the passive within ${DONE_TIMEOUT_MS / 1000} s`);
    const s = await pair.status('alpha').catch(() => undefined);
    const at = nowMs();
    if (s !== undefined) seen.push({ at, status: s });
    if (s !== undefined && acknowledged(s, before.replication.headSeq)) acked = { at, status: s };
    else await sleep(OVERWRITE_STATUS_POLL_MS);
  }
  await watchVisible;
  // The applier writes in place, so the bytes are visible by the time it acknowledges.
  if (visibleAt === null && rangeEquals(passive, offset, patch, scratch)) visibleAt = acked.at;
  const tandem: TandemOverwrite = {
    offset,
    visibleSeconds: visibleAt === null ? null : (visibleAt - t0) / 1000,
    seconds: (acked.at - t0) / 1000,
    wireBytes: wireDelta(before, acked.status),
    verified: sameContent(active, passive),
    journaledSeconds: journaledAt(seen, acked.status, t0),
  };

  let rsyncOut: RsyncOutcome | null = null;
  if (rsync !== null) {
    await pair.waitSettled();
    progress(`(c) rsync of the changed file to a destination holding the old one`);
    const run = await rsync.push(active);
    rsyncOut = { run, verified: sameContent(active, `${rsync.destDir}/${BIG_FILE_NAME}`) };
  }
  return { size, patchBytes: PATCH_BYTES, tandem, rsync: rsyncOut };
}
