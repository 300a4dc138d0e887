// Capture: turns hints ("look at this path") into ordered records in the journal. It trusts no
// event: it lstat()s the path, compares with the manifest, and for a file reads and hashes it,
// journaling only the blocks whose hash changed. One loop does all of it, so the journal
// receives each path's records in order and never interleaved with another writer's.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import type { Stats } from 'node:fs';
import type { ProtectedRoot } from '../../shared/config/index.ts';
import type { Clock, TimerHandle } from '../../shared/clock.ts';
import type { Logger } from '../../shared/log.ts';
import { describeCause, errnoOf } from '../../shared/errors.ts';
import { HASH_BYTES, isAllZero, zeroBlockHash } from '../../shared/hash.ts';
import { Notices, type Notice } from '../../shared/notices.ts';
import { BATCH_RAW_CUT_BYTES, BATCH_RECORDS_CUT, compressWrite, compressWriteAsync, depthOf, isWithin, parentOf, relPathProblem, type DataRecord, type NewRecord } from '../../shared/protocol/index.ts';
import { TandemError } from '../../shared/errors.ts';
import { SUBVOLUME_ROOT_INO, type ChangeSet, type PathChange, type PointInfo, type PointLedger, type PointMarker, type Snapshot, type SnapshotStore } from '../points/index.ts';
import { applyRecordToManifest, ownerOf, type Entry, type FileEntry, type Manifest } from '../manifest/index.ts';
import {
  PathSwapped,
  UserDb,
  closeFd,
  fdPath,
  lstatAt,
  lstatBeneath,
  openDirAt,
  openParent,
  openRoot,
  ownerFieldsOf,
  aclNamesField,
  readEntryMeta,
  sameXattrHash,
  xattrProblem,
  type DiskMeta,
  type Parent,
  type RootRef,
  type UserNames,
} from '../tree/index.ts';
import { READS_IN_FLIGHT, readBlocks, readBlocksSync, SYNC_READ_MAX_BYTES, type BlockReadOutcome, type FileStat } from './block-reader.ts';
import { readChangedBlocks } from './changed-blocks.ts';
import { compileExcludes, type ExcludeMatcher } from './exclude.ts';
import type { JournalSink } from './journal-sink.ts';
import { isRacy, kindOf, racyAt, snapshotReadAt, type EntryKind } from './stat-match.ts';
import { RACY_WINDOW_MS } from '../../shared/constants.ts';
import { scanRoot } from './tree-scanner.ts';
import { HotDirs } from './hot-dirs.ts';
import { RootWatcher } from './watcher.ts';
import { shallowCopy, withSeq } from '../../shared/copy-with.ts';

export interface CaptureOptions {
  roots: ProtectedRoot[];
  manifest: Manifest;
  journal: JournalSink;
  blockSize: number;
  batchBytes: number;
  /**
   * channel.compression: zlib level 1..9 at which write blocks are compressed before they are
   * journaled; 0 or absent: off. Compressing before the journal rather than on the way out: the
   * journal then holds more batches within journal.maxBytes (a slow link fills it), a batch
   * sent again after a reconnect is not compressed again, and the sender still ships the exact
   * bytes on disk (docs/replication.md).
   */
  compressionLevel?: number;
  /** Hints are collected this long before a round starts, so a burst becomes one batch. */
  batchDelayMs: number;
  /**
   * True while the sender has journaled batches it could send now (room in its window and in
   * the socket): capture then lets the event loop run every YIELD_TO_SENDER_MS rather than
   * YIELD_EVERY_MS. After an outage capture reads the files a full journal held back while the
   * journal is sent: the passive, the slower side, must not wait for the active's capture.
   */
  senderWaiting?: () => boolean;
  /** A file that may still be changing is checked again this long after it was read. */
  settleMs: number;
  /** Interval of the full stat scan that catches what the watcher missed (0: never). */
  scanIntervalMs: number;
  /** How long a vanished path waits for its new name to appear before it is journaled as removed. */
  renameWindowMs: number;
  /** No records: hash what is there into the manifest (first start on an existing tree). */
  baseline: boolean;
  /** Called after each batch is durable in the journal: persist the manifest here, not before. */
  afterCommit: () => Promise<void>;
  log: Logger;
  clock: Clock;
  /** Tests may run without the watcher and drive capture with hints and scans only. */
  watch?: boolean;
  /** Names of owners, sent with their ids for `replication.owners: names`; the system's by default. */
  users?: UserNames;
  /** Consistency points (docs/replication.md): the roots in snapshot mode; absent, every root is captured file by file. */
  points?: CapturePoints;
  /** Why a root is captured file by file (status says so), by root name. */
  fileReasons?: Map<string, string>;
}

/** What capture needs to take consistency points (agent/points). */
export interface CapturePoints {
  /** The snapshot store of each root in snapshot mode, by root name. */
  stores: Map<string, SnapshotStore>;
  /** capture.pointInterval: a point is taken at most this often. */
  intervalMs: number;
  /** Confirms a point without a snapshot when no root changed (absent: every point takes snapshots). */
  marker?: PointMarker | undefined;
  /** The points closed or confirmed, by the sequence of their last record. */
  ledger: PointLedger;
  /** A point closed or was confirmed at a later instant (the sender tells the passive at once). */
  onPoint?: ((p: PointInfo) => void) | undefined;
}

/** How one protected root is captured now, and why (status: replication.consistency). */
export interface RootConsistency {
  root: string;
  mode: 'snapshot' | 'file';
  reason: string;
}

export interface CaptureStatus {
  state: 'starting' | 'baseline' | 'running' | 'stopped';
  pendingPaths: number;
  filesHashed: number;
  bytesHashed: number;
  recordsJournaled: number;
  waitingForSpace: boolean;
  degraded: string | undefined;
  lastScan: { at: number; durationMs: number; entries: number; hinted: number } | undefined;
  problems: { root: string; path: string; message: string }[];
  /** Warnings that did not stop capture (a path not read through a link, attributes not read). */
  notices: Notice[];
  /** Wall-clock ms of the oldest change seen and not yet journaled (undefined: none). */
  oldestPendingAt: number | undefined;
  /** Consistency points: how many were taken and closed, and the last one's figures. */
  points: { taken: number; closed: number; confirmed: number; failed: number; last: { at: number; snapshotMs: number; listMs: number; processMs: number; paths: number } | undefined; unwatched: number } | undefined;
}

/** What a task running inside the capture loop (the initial synchronisation) may do. */
export interface CaptureTaskContext {
  /** Journals a record (in order with capture's own). */
  append(record: NewRecord): number;
  /** Commits when a batch is full and waits while the journal is at its size bound. */
  makeRoom(): Promise<void>;
  /** Brings the manifest entry of `relPath` up to date with the disk now (processes it). */
  refresh(root: string, relPath: string): Promise<void>;
  /** Last committed sequence of the journal (a task starts with no record pending). */
  headSeq(): number;
}

interface RootCtx extends ProtectedRoot {
  isExcluded: ExcludeMatcher;
  /** The root's real path (realpath at start): walks open it without following its last component. */
  real: string;
  /** Snapshot mode: the root's snapshots (undefined: file mode). */
  store?: SnapshotStore | undefined;
  /** Snapshot mode: the snapshot the manifest describes (reads start there between rounds). */
  snap?: Snapshot | undefined;
  /** The manifest is exactly `snap` for this root: the next point lists changes from it. */
  exact: boolean;
  /** Why this snapshot-mode root is captured file by file for now (a snapshot failed). */
  fallback?: string | undefined;
  /** Paths that could not be read from the last snapshot: read whole at the next point. */
  retry: Set<string>;
  /** Points in a row each retried path has failed in (a point waits for it POINT_RETRY_ROUNDS times). */
  retryRounds: Map<string, number>;
  /** The next point also compares the whole snapshot with the manifest (periodic scans). */
  fullScan?: boolean;
  /** Snapshot mode: directories too busy to watch (their root takes a point every interval). */
  hot?: HotDirs | undefined;
}

interface Hint {
  root: RootCtx;
  path: string;
  force: boolean;
  /** Wall-clock ms of the first hint (lag). */
  since: number;
  /** What the snapshot comparison says changed (snapshot mode). */
  change?: PathChange | undefined;
}

/** The directory a nested subvolume leaves in a snapshot of its parent (BTRFS_EMPTY_SUBVOL_DIR_OBJECTID). */
const EMPTY_SUBVOLUME_INO = 2;

/** Whether `rel` below the root `real` is, in the live tree, the root of another subvolume. */
function isNestedSubvolume(real: string, rel: string): boolean {
  try {
    const st = lstatBeneath(real, rel);
    return st !== undefined && st.isDirectory() && st.ino === SUBVOLUME_ROOT_INO;
  } catch {
    return false;
  }
}

/** A snapshot holds a nested subvolume's empty stand-in at `path`: the root cannot give points. */
class NestedSubvolume extends Error {
  constructor(readonly path: string) {
    super(`a nested subvolume at ${path}`);
  }
}

type NewWrite = Extract<NewRecord, { op: 'write' }>;
type NewHole = Extract<NewRecord, { op: 'hole' }>;

/** The bytes of a write kept only for its effect on the manifest (see processFile). */
const EMPTY = new Uint8Array(0);
/** Capture works at most this long before it lets the event loop run other callbacks... */
const YIELD_EVERY_MS = 5;
/**
 * ...and at most this long while the sender has journaled batches it could send now (see
 * CaptureOptions.senderWaiting): each batch it sends waits for one turn of the event loop (its
 * read from the journal, its write into the socket), so 5 ms slices let it send a batch per
 * slice while the passive sat idle.
 */
const YIELD_TO_SENDER_MS = 1;
/** Points that wait for a path of theirs that could not be journaled, at most (pointUnfinished). */
const POINT_RETRY_ROUNDS = 3;

/** Files at least this big are read once they have been quiet for `settleMs`. */
const LARGE_FILE_BYTES = 4 * 1024 * 1024;
/**
 * How far (in bytes on the wire) capture may read a file whose blocks the journal keeps as
 * references ahead of the passive's acknowledgements: under the journal's send cache (64 MiB),
 * so every such block is still in memory when the sender gets to it, and is never read back.
 */
const REF_AHEAD_BYTES = 48 * 1024 * 1024;

/** …but never later than this after the first hint, so a file that never stops growing still replicates. */
const MAX_QUIET_WAIT_MS = 2000;

/**
 * Full batches whose commits may be in flight while capture reads on. One at a time, a new
 * 1 GiB file was journaled at the pace of one fdatasync per 4 MiB batch (~70 MiB/s on a disk
 * that also took the passive's copy); the journal publishes batches in order either way.
 */
const SPLITS_IN_FLIGHT = 4;

export class Capture {
  private readonly roots = new Map<string, RootCtx>();
  private readonly log: Logger;
  private readonly users: UserNames;
  private readonly notices: Notices;
  private readonly dirty = new Map<string, Hint>();
  private readonly removals = new Map<string, { hint: Hint; due: number }>();
  private readonly waitingSince = new Map<string, number>();
  private readonly rechecks = new Map<string, TimerHandle>();
  private readonly problems = new Map<string, { root: string; path: string; message: string }>();
  private readonly tasks: { fn: (ctx: CaptureTaskContext) => Promise<void>; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private readonly appendListeners = new Set<(r: DataRecord) => void>();
  private readonly watchers = new Map<string, RootWatcher>();
  private readonly heldRoots = new Map<string, { fd: number; path: string }>();
  /** Paths of the round in progress: pending until the round's records are durably journaled. */
  private processing = 0;
  private loopTimer: TimerHandle | undefined;
  private removalTimer: TimerHandle | undefined;
  private scanTimer: TimerHandle | undefined;
  private running: Promise<void> | undefined;
  private state: CaptureStatus['state'] = 'starting';
  private baseline: boolean;
  private stopped = false;
  /** Aborts a wait for journal room at stop: room needs the passive, a stop must not. */
  private readonly stopping = new AbortController();
  private scanning = false;
  private hintsDuringRound = 0;
  private roundTorn = false;
  private roundSplit = false;
  /** When capture last let the event loop run (see breathe()). */
  private breathStart = 0;
  private degraded: string | undefined;
  private waitingForSpace = false;
  private lastScan: CaptureStatus['lastScan'];
  private counters = { filesHashed: 0, bytesHashed: 0, recordsJournaled: 0 };
  private idleWaiters: (() => void)[] = [];
  /** Commits of full batches still being made durable, oldest first (at most SPLITS_IN_FLIGHT). */
  private readonly splitCommits: Promise<unknown>[] = [];
  private markStarted: () => void = () => {};
  private readonly started = new Promise<void>((resolve) => (this.markStarted = resolve));
  /** Wall-clock ms of the oldest hint in `dirty`, and of the oldest path of the round running. */
  private dirtySince: number | undefined;
  private roundSince: number | undefined;
  // ---- consistency points (snapshot mode)
  /** Some root is in snapshot mode: every batch belongs to a point, every round closes one. */
  private readonly pointsMode: boolean;
  /** Snapshot-mode roots that need a point even without a hint (start, scans, a switchover's drain, retries). */
  private readonly forced = new Set<string>();
  /** Instant of the point being built (for its batches' commits). */
  private pointAt = 0;
  /** The next point is taken at once (a switchover's drain), not at its turn. */
  private urgent = false;
  /** A full batch waits to be committed until the next record comes (so that a point's last batch always closes it). */
  private splitDue = false;
  /** Monotonic ms when the last point round began: rounds are paced by capture.pointInterval. */
  private lastPointStart = -Infinity;
  /** The paths of the point round running (its own re-hints join it), and those found gone. */
  private roundWork: Hint[] | undefined;
  private roundCounts = new Map<string, number>();
  private roundGone = new Map<string, Hint>();
  private confirmTimer: TimerHandle | undefined;
  private pointStats: Omit<NonNullable<CaptureStatus['points']>, 'unwatched'> = { taken: 0, closed: 0, confirmed: 0, failed: 0, last: undefined };

  constructor(private readonly opts: CaptureOptions) {
    this.log = opts.log.child({ component: 'capture' });
    for (const r of opts.roots) {
      const store = opts.points?.stores.get(r.name);
      this.roots.set(r.name, { ...r, isExcluded: compileExcludes(r.exclude), real: r.path, store, exact: false, retry: new Set(), retryRounds: new Map(), hot: store === undefined ? undefined : new HotDirs() });
    }
    this.users = opts.users ?? new UserDb(opts.clock);
    this.notices = new Notices(opts.clock, this.log);
    this.baseline = opts.baseline;
    this.pointsMode = [...this.roots.values()].some((r) => r.store !== undefined);
  }

  /** How each root is captured now: from snapshots (consistency points) or file by file. */
  consistency(): RootConsistency[] {
    return [...this.roots.values()].map((r) =>
      r.store === undefined
        ? { root: r.name, mode: 'file' as const, reason: r.fallback === undefined ? (this.opts.fileReasons?.get(r.name) ?? 'file-level consistency only') : `file-level consistency only: ${r.fallback}` }
        : r.fallback !== undefined
          ? { root: r.name, mode: 'file' as const, reason: `file-level consistency only while snapshots fail: ${r.fallback}` }
          : { root: r.name, mode: 'snapshot' as const, reason: 'btrfs subvolume: read-only snapshots give consistency points' },
    );
  }

  /**
   * Where a reader of the root's current state starts: in snapshot mode the snapshot the
   * manifest describes (the synchronisation reads from it, between rounds), else the root itself.
   */
  readRoot(name: string): string {
    const r = this.roots.get(name);
    if (r === undefined) throw new Error(`unknown root ${name}`);
    return r.store !== undefined && r.snap !== undefined && r.fallback === undefined ? r.snap.path : r.real;
  }

  /** Watches, then scans every root (changes made while stopped), then keeps scanning periodically. */
  async start(): Promise<void> {
    for (const root of this.roots.values()) {
      let st: Stats;
      try {
        st = await fsp.stat(root.path);
      } catch (err) {
        throw Object.assign(new Error(`protected root ${root.name} (${root.path}) is not accessible: ${describeCause(err)}`), { cause: err });
      }
      if (!st.isDirectory()) throw new Error(`protected root ${root.name} (${root.path}) is not a directory`);
      root.real = fs.realpathSync(root.path);
    }
    for (const root of this.roots.values()) await root.store?.removeLeftovers();
    this.noteXattrSupport();
    if (this.opts.watch !== false) {
      for (const root of this.roots.values()) {
        const w = new RootWatcher({
          root,
          isExcluded: root.isExcluded,
          onHint: (rel) => this.hint(root.name, rel),
          onDegraded: (reason) => (this.degraded = reason),
          hot: root.hot,
          log: this.log,
        });
        this.watchers.set(root.name, w);
        await w.start();
      }
    }
    if (this.baseline) {
      this.state = 'baseline';
      this.log.info({}, 'capture: first start on this tree: hashing it into the manifest (no records: the passive gets it by synchronisation)');
    }
    await this.scanAll('start');
    // Only a baseline is waited for (the journal's head moves past it). Changes found here are
    // journaled by the loop: they may need more room than the journal has, and room comes from
    // the passive's acknowledgements, over a channel the agent opens only after this returns.
    if (this.baseline) {
      await this.whenIdle();
      this.baseline = false;
      await this.opts.afterCommit();
      await this.opts.journal.skipTo(this.opts.journal.headSeq + 1);
      this.log.info({ files: this.opts.manifest.count(), bytes: this.opts.manifest.totalFileBytes() }, 'capture: baseline complete');
    }
    this.state = 'running';
    this.markStarted();
    this.scheduleScan();
    this.scheduleConfirm();
  }

  /** Says "look at this path again". Cheap; the loop coalesces hints. */
  hint(rootName: string, relPath: string, force = false): void {
    const root = this.roots.get(rootName);
    if (root === undefined || this.stopped) return;
    const key = `${rootName}\0${relPath}`;
    const prev = this.dirty.get(key);
    const now = this.opts.clock.now();
    this.dirty.set(key, { root, path: relPath, force: force || (prev?.force ?? false), since: prev?.since ?? now });
    this.dirtySince ??= now;
    if (this.running !== undefined) this.hintsDuringRound++;
    this.wake();
  }

  /**
   * A path found while processing another (a directory's entries, a link that replaced a
   * directory): in a point round it joins the round, read from the same snapshot; otherwise it
   * is hinted like any other.
   */
  private rehint(root: RootCtx, relPath: string, force = false): void {
    if (this.roundWork !== undefined && this.readsSnapshot(root)) {
      const key = `${root.name}\0${relPath}`;
      const n = this.roundCounts.get(key) ?? 0;
      // A snapshot does not change: a path needs looking at twice at most in one round.
      if (n >= 2) return;
      this.roundWork.push({ root, path: relPath, force, since: this.opts.clock.now() });
      return;
    }
    this.hint(root.name, relPath, force);
  }

  /** The round in progress reads this root from a snapshot (no torn reads, nothing to re-check). */
  private readsSnapshot(root: RootCtx): boolean {
    return root.store !== undefined && root.snap !== undefined && root.fallback === undefined;
  }

  /**
   * Runs `fn` inside the capture loop, between rounds, with the right to journal records. Tasks
   * wait for start() to finish: during a baseline nothing is journaled, a task's records included.
   */
  async runTask(fn: (ctx: CaptureTaskContext) => Promise<void>): Promise<void> {
    await this.started;
    // In snapshot mode a task reads what the manifest describes, the last snapshot: one must exist.
    if (this.pointsMode) await this.firstPoint;
    return new Promise((resolve, reject) => {
      this.tasks.push({ fn, resolve, reject });
      this.wake(true);
    });
  }

  /** Listens to every record journaled, in order (the synchronisation follows the passive's state). */
  onAppend(listener: (r: DataRecord) => void): () => void {
    this.appendListeners.add(listener);
    return () => this.appendListeners.delete(listener);
  }

  /** Resolves once nothing is pending: no hint, no task, no round running. */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  status(): CaptureStatus {
    return {
      state: this.state,
      pendingPaths: this.dirty.size + this.removals.size + this.rechecks.size + this.processing,
      ...this.counters,
      waitingForSpace: this.waitingForSpace,
      degraded: this.degraded,
      lastScan: this.lastScan,
      problems: [...this.problems.values()].slice(0, 20),
      notices: this.notices.list(),
      oldestPendingAt: this.oldestPendingAt(),
      points: this.pointsMode ? { ...this.pointStats, unwatched: [...this.roots.values()].reduce((n, r) => n + (r.hot?.unwatched.size ?? 0), 0) } : undefined,
    };
  }

  /** When the oldest change seen and not journaled yet was seen (a large file being read), if any. */
  oldestPendingAt(): number | undefined {
    let t = this.dirtySince;
    if (this.roundSince !== undefined) t = t === undefined ? this.roundSince : Math.min(t, this.roundSince);
    for (const w of this.waitingSince.values()) t = t === undefined ? w : Math.min(t, w);
    return t;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.state = 'stopped';
    this.stopping.abort(new Error('capture stopped'));
    this.loopTimer?.cancel();
    this.removalTimer?.cancel();
    this.scanTimer?.cancel();
    this.confirmTimer?.cancel();
    for (const t of this.rechecks.values()) t.cancel();
    this.rechecks.clear();
    await Promise.all([...this.watchers.values()].map((w) => w.close()));
    await this.running;
    for (const t of this.tasks.splice(0)) t.reject(new Error('capture stopped'));
    // The snapshots are deleted; the next start takes new ones (and deletes any a kill left).
    for (const r of this.roots.values()) await r.store?.close();
  }

  // ---------------------------------------------------------------- the loop

  private isIdle(): boolean {
    return this.dirty.size === 0 && this.tasks.length === 0 && this.forced.size === 0 && this.running === undefined && this.loopTimer === undefined;
  }

  private hasWork(): boolean {
    return this.dirty.size > 0 || this.tasks.length > 0 || this.forced.size > 0;
  }

  private wake(now = false): void {
    if (this.stopped || this.running !== undefined || this.loopTimer !== undefined) return;
    let delay = now ? 0 : this.opts.batchDelayMs;
    // Points are paced: a snapshot at most every capture.pointInterval (tasks and drains do not wait).
    if (this.pointsMode && this.tasks.length === 0 && !this.urgent) delay = Math.max(delay, this.lastPointStart + this.opts.points!.intervalMs - this.opts.clock.monotonic());
    this.loopTimer = this.opts.clock.setTimeout(() => {
      this.loopTimer = undefined;
      this.running = this.loop().finally(() => {
        this.running = undefined;
        if (this.hasWork()) this.wake();
        else if (this.isIdle()) for (const w of this.idleWaiters.splice(0)) w();
      });
    }, Math.max(0, delay));
  }

  private async loop(): Promise<void> {
    this.holdRoots();
    try {
      await this.rounds();
    } finally {
      for (const h of this.heldRoots.values()) closeFd(h.fd);
      this.heldRoots.clear();
    }
  }

  /**
   * Each root is opened once per run of the loop, not once per path: walks start from that
   * descriptor (a root is replaced only by whoever administers its parent; every directory
   * below it is still opened afresh for every path).
   */
  private holdRoots(): void {
    for (const root of this.roots.values()) this.rehold(root);
  }

  /** (Re)opens the directory walks below `root` start from: its latest snapshot, or the root. */
  private rehold(root: RootCtx): void {
    const old = this.heldRoots.get(root.name);
    if (old !== undefined) closeFd(old.fd);
    this.heldRoots.delete(root.name);
    const base = this.readBase(root);
    try {
      this.heldRoots.set(root.name, { fd: openRoot(base), path: base });
    } catch {
      // Unreadable now: walks open it themselves and report why.
    }
  }

  private readBase(root: RootCtx): string {
    return this.readsSnapshot(root) ? root.snap!.path : root.real;
  }

  /** Where walks below `root` start (see holdRoots). */
  private rootRef(root: RootCtx): RootRef {
    return this.heldRoots.get(root.name) ?? this.readBase(root);
  }

  private async rounds(): Promise<void> {
    while (!this.stopped && this.hasWork()) {
      const task = this.tasks.shift();
      if (task !== undefined) {
        try {
          // A task's records (a synchronisation, a repair) bring the passive to what the
          // manifest holds, which is the last point: its last batch closes a point of that instant.
          this.pointAt = this.lastPointAt;
          await task.fn(this.taskContext());
          // Not while a path of the last snapshot waits to be journaled: the manifest is then
          // no instant of the disk, and the next round closes the point.
          await this.commit(!this.pointUnfinished());
          task.resolve();
        } catch (err) {
          task.reject(err);
        }
        continue;
      }
      if (this.pointsMode) {
        // Not due yet (tasks ran meanwhile): wake() comes back when it is.
        if (!this.urgent && this.opts.clock.monotonic() < this.lastPointStart + this.opts.points!.intervalMs) break;
        this.urgent = false;
        await this.pointRound();
        continue;
      }
      const hints = this.takeRound();
      // Parents before children: a directory's record precedes what is created inside it.
      hints.sort((a, b) => depthOf(a.path) - depthOf(b.path) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
      this.processing = hints.length;
      let sliceStart = this.opts.clock.monotonic();
      for (const h of hints) {
        if (this.stopped) break;
        // Small files are read synchronously: give timers and sockets their turn every few ms.
        if (this.opts.clock.monotonic() - sliceStart > YIELD_EVERY_MS) {
          await new Promise<void>((resolve) => setImmediate(resolve));
          sliceStart = this.opts.clock.monotonic();
        }
        try {
          // Removals and directories journal without reading a file: the batch is cut here too.
          await this.makeRoom();
          await this.processPath(h.root, h.path, h.force);
          this.problems.delete(`${h.root.name}\0${h.path}`);
        } catch (err) {
          // Stopped while waiting for journal room: the path is found again at the next start.
          if (this.stopped) break;
          // One unreadable path must not stop the others; it is retried by the next scan.
          const message = describeCause(err);
          if (!this.problems.has(`${h.root.name}\0${h.path}`)) {
            this.log.warn({ root: h.root.name, path: h.path, err }, 'capture: cannot read path, it is not replicated until it can be');
          }
          this.problems.set(`${h.root.name}\0${h.path}`, { root: h.root.name, path: h.path, message });
        }
      }
      await this.commit();
      this.processing = 0;
      this.roundSince = undefined;
    }
  }

  /** Instant of the latest point closed or confirmed (a task's batches close a point of it). */
  private lastPointAt = 0;
  private markFirstPoint: () => void = () => {};
  /** Settles once the first point round ended (tasks wait for it in snapshot mode). */
  private readonly firstPoint = new Promise<void>((resolve) => (this.markFirstPoint = resolve));

  /** Starts a capture round: takes the hints gathered so far and resets the round's bookkeeping. */
  private takeRound(): Hint[] {
    const hints = [...this.dirty.values()];
    this.dirty.clear();
    this.roundSince = this.dirtySince;
    this.dirtySince = undefined;
    this.hintsDuringRound = 0;
    this.roundTorn = false;
    this.roundSplit = false;
    return hints;
  }

  /**
   * One consistency point: a read-only snapshot of every snapshot-mode root that changed (by its
   * hints, or because a scan, the start or a drain asks), the list of what changed since its
   * previous snapshot (from btrfs itself, exact), and every listed path processed *from the
   * snapshot*; file-mode roots' hints are processed as in any round. The round's last batch
   * closes the point. A root without a hint keeps its previous snapshot, confirmed unchanged by
   * the marker; a root whose snapshot fails is read file by file this time (status says so).
   */
  private async pointRound(): Promise<void> {
    const points = this.opts.points!;
    const clock = this.opts.clock;
    this.lastPointStart = clock.monotonic();
    const hints = this.takeRound();
    const work: Hint[] = [];
    const liveHints = new Map<RootCtx, Hint[]>();
    const snapRoots = new Set<RootCtx>();
    const take = (h: Hint) => {
      if (h.root.store === undefined) return work.push(h);
      // A subvolume made inside the root: its snapshots would not hold it (btrfs send does not
      // even name it). The watcher sees it made; the live tree says what it is.
      if (isNestedSubvolume(h.root.real, h.path)) {
        this.abandonSnapshots(h.root, new NestedSubvolume(h.path));
        work.push(...(liveHints.get(h.root) ?? []), h);
        liveHints.delete(h.root);
        snapRoots.delete(h.root);
        return;
      }
      snapRoots.add(h.root);
      liveHints.set(h.root, [...(liveHints.get(h.root) ?? []), h]);
    };
    for (const h of hints) take(h);
    for (const root of this.roots.values()) {
      if (root.store === undefined) continue;
      if (this.forced.has(root.name) || root.snap === undefined || root.retry.size > 0 || root.fallback !== undefined) snapRoots.add(root);
    }
    this.forced.clear();
    let at: number | undefined;
    const quiet = [...this.roots.values()].filter((r) => r.store !== undefined && !snapRoots.has(r));
    if (quiet.length > 0) {
      const confirmed = await points.marker?.roundTrip();
      // A root hinted while the marker travelled did change: it gets a snapshot after all.
      for (const [k, h] of this.dirty) {
        if (h.root.store !== undefined && !snapRoots.has(h.root)) {
          this.dirty.delete(k);
          take(h);
        }
      }
      if (confirmed === undefined) for (const r of quiet) snapRoots.add(r);
      else at = confirmed;
      if (this.dirty.size === 0) this.dirtySince = undefined;
    }
    const stats = { snapshotMs: 0, listMs: 0 };
    const older: [SnapshotStore, Snapshot][] = [];
    for (const root of snapRoots) {
      const store = root.store!;
      const prev = root.snap;
      // Listed from the previous snapshot when the manifest holds it exactly: the snapshot and
      // its list then come from one btrfs child (one fork of the agent a round, not two).
      const listFrom = prev !== undefined && root.exact && root.fallback === undefined ? prev : undefined;
      let snap: Snapshot;
      let changes: ChangeSet | Error | undefined;
      let sendMs = 0;
      try {
        if (listFrom === undefined) snap = await store.take();
        else ({ snap, changes, listMs: sendMs } = await store.takeAndList(listFrom, this.opts.blockSize));
      } catch (err) {
        // No snapshot, no point for this root: it is read file by file, from its hints.
        this.fallBack(root, err);
        work.push(...(liveHints.get(root) ?? []));
        continue;
      }
      this.pointStats.taken++;
      stats.snapshotMs += snap.tookMs;
      stats.listMs += sendMs;
      at = at === undefined ? snap.at : Math.min(at, snap.at);
      const t0 = clock.monotonic();
      let listed = false;
      if (changes instanceof Error) {
        this.log.warn({ root: root.name, err: changes }, 'capture: the changes between two snapshots could not be listed; comparing the whole snapshot instead');
      } else if (changes !== undefined) {
        if (changes.incomplete === undefined) {
          const since = this.roundSince ?? snap.at;
          for (const [p, change] of changes.paths) if (!root.isExcluded(p)) work.push({ root, path: p, force: false, since, change });
          for (const p of changes.gone) if (!root.isExcluded(p)) this.roundGone.set(`${root.name}\0${p}`, { root, path: p, force: false, since });
          listed = true;
        } else {
          this.log.warn({ root: root.name, reason: changes.incomplete }, 'capture: the change list of a point is not exact; comparing the whole snapshot instead');
        }
      }
      if (root.fallback !== undefined) this.log.info({ root: root.name }, 'capture: snapshots work again: consistency points resume');
      root.fallback = undefined;
      if (root.hot !== undefined) {
        root.hot.enabled = true;
        // Busy directories in which this point listed nothing are watched again; the next
        // point (forced below) lists what changed in them before their watch was back.
        const quiet = root.hot.pointListed(listed && changes !== undefined && !(changes instanceof Error) ? [...changes.paths.keys(), ...changes.gone] : undefined);
        for (const d of quiet) await this.watchers.get(root.name)?.watchTree(d);
        if (quiet.length > 0) this.forced.add(root.name);
      }
      root.snap = snap;
      this.rehold(root);
      if (!listed || root.fullScan) {
        // The first point, or the manifest may differ from the previous snapshot: compare all.
        // Also at every capture.scanInterval: what no list names (a nested subvolume) shows there.
        const since = this.roundSince ?? snap.at;
        await scanRoot({ ...root, path: snap.path }, this.opts.manifest, root.isExcluded, (rel) => work.push({ root, path: rel, force: false, since }), () => this.stopped);
      }
      for (const p of root.retry) work.push({ root, path: p, force: true, since: snap.at });
      root.retry.clear();
      root.fullScan = false;
      root.exact = true;
      stats.listMs += clock.monotonic() - t0;
      if (prev !== undefined) older.push([store, prev]);
    }
    at ??= clock.now();
    this.pointAt = at;
    const t1 = clock.monotonic();
    // Parents before children: a directory's record precedes what is created inside it.
    work.sort((a, b) => depthOf(a.path) - depthOf(b.path) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    this.roundWork = work;
    this.roundCounts.clear();
    this.processing = work.length;
    let sliceStart = clock.monotonic();
    try {
      for (let i = 0; i < work.length && !this.stopped; i++) {
        const h = work[i]!;
        const key = `${h.root.name}\0${h.path}`;
        this.roundCounts.set(key, (this.roundCounts.get(key) ?? 0) + 1);
        if (clock.monotonic() - sliceStart > YIELD_EVERY_MS) {
          await new Promise<void>((resolve) => setImmediate(resolve));
          sliceStart = clock.monotonic();
        }
        try {
          await this.makeRoom();
          await this.processPath(h.root, h.path, h.force, h.change);
          this.problems.delete(key);
          h.root.retryRounds.delete(h.path);
        } catch (err) {
          if (this.stopped) break;
          if (err instanceof NestedSubvolume) {
            this.abandonSnapshots(h.root, err);
            this.hint(h.root.name, h.path);
            continue;
          }
          this.noteProblem(h, err);
          // Read whole from the next snapshot: the manifest keeps the older state until then,
          // with what the failed look journaled over it (reflectJournaled), which is no
          // snapshot's state: only a whole read may compare against it.
          this.retryFromNextPoint(h);
        }
      }
      // Names that may be gone, once every name that exists was looked at (so that a rename is
      // journaled as one: capture pairs names by inode).
      for (const h of this.roundGone.values()) {
        if (this.stopped) break;
        try {
          await this.makeRoom();
          if (this.readsSnapshot(h.root)) await this.removeIfGone(h.root, h.path);
          else this.hint(h.root.name, h.path);
          h.root.retryRounds.delete(h.path);
        } catch (err) {
          if (this.stopped) break;
          this.noteProblem(h, err);
          // Looked at again from the next snapshot: a name it lacks is removed then.
          this.retryFromNextPoint(h);
        }
      }
    } finally {
      this.roundGone.clear();
      this.roundWork = undefined;
    }
    if (this.stopped) return;
    // A path of this snapshot that could not be journaled leaves the journal short of the
    // snapshot's state: no point closes until a later round has journaled it (from its own
    // snapshot, which the point is then an instant of).
    for (const root of snapRoots) this.countRetryRound(root);
    const unfinished = this.pointUnfinished();
    for (const root of this.roots.values()) if (root.retry.size > 0) this.forced.add(root.name);
    const closed = await this.commit(!unfinished);
    if (closed !== undefined) {
      this.pointStats.closed++;
    } else if (!unfinished && !this.baseline && this.opts.journal.headSeq > 0) {
      // Nothing journaled (or the last batch went out already): the log's head is this point.
      points.ledger.record(this.opts.journal.headSeq, at);
      this.pointStats.confirmed++;
      points.onPoint?.(points.ledger.newest()!);
    }
    this.lastPointAt = at;
    // A root with directories not watched hears of nothing there: it takes the next point anyway.
    for (const root of this.roots.values()) if ((root.hot?.unwatched.size ?? 0) > 0) this.forced.add(root.name);
    this.pointStats.last = { at, snapshotMs: stats.snapshotMs, listMs: Math.round(stats.listMs), processMs: Math.round(clock.monotonic() - t1), paths: work.length };
    for (const [store, snap] of older) store.drop(snap);
    this.processing = 0;
    this.roundSince = undefined;
    this.markFirstPoint();
  }

  /**
   * A snapshot-mode root has paths of its snapshot not journaled yet, which the point waits for:
   * POINT_RETRY_ROUNDS points at most. A failure that lasts (a file whose attributes never
   * read) must not stop every later point; the path stays an alarm, and a notice says the
   * points go on without it.
   */
  private pointUnfinished(): boolean {
    for (const root of this.roots.values()) {
      if (!this.readsSnapshot(root)) continue;
      for (const p of root.retry) if ((root.retryRounds.get(p) ?? 0) < POINT_RETRY_ROUNDS) return true;
    }
    return false;
  }

  /**
   * A path of this point could not be journaled: the next point reads it whole. Not a name the
   * journal refuses (a backslash in it, too long): no point can ever hold it, and reading it
   * again every point would only cost; it stays an alarm, as in file mode.
   */
  private retryFromNextPoint(h: Hint): void {
    if (!this.readsSnapshot(h.root) || relPathProblem(h.path) !== undefined) return;
    h.root.retry.add(h.path);
  }

  /** One more point in which the root's retried paths failed; the notice once one stops waiting. */
  private countRetryRound(root: RootCtx): void {
    for (const p of root.retry) {
      const n = (root.retryRounds.get(p) ?? 0) + 1;
      root.retryRounds.set(p, n);
      if (n === POINT_RETRY_ROUNDS) {
        this.notices.add(
          'TANDEM_ERR_POINT_FAILED',
          `capture ${root.name}/${p}: not journaled in ${n} points in a row (${this.problems.get(`${root.name}\0${p}`)?.message ?? 'see the capture alarm'}); points close without it until it can be, so the passive's copy of it is older than the point`,
          'see why the path cannot be read (capture alarm); once it can, the next point takes it whole',
          { root: root.name, path: p },
          `points/${root.name}/${p}`,
        );
      }
    }
  }

  private noteProblem(h: Hint, err: unknown): void {
    const key = `${h.root.name}\0${h.path}`;
    const message = describeCause(err);
    if (!this.problems.has(key)) this.log.warn({ root: h.root.name, path: h.path, err }, 'capture: cannot read path, it is not replicated until it can be');
    this.problems.set(key, { root: h.root.name, path: h.path, message });
  }

  /** A snapshot could not be taken: the root is read file by file until one can be. */
  private fallBack(root: RootCtx, err: unknown): void {
    const e = TandemError.wrap(err, { code: 'TANDEM_ERR_POINT_FAILED', op: `take a consistency point of ${root.name}` });
    if (root.fallback === undefined) this.log.error({ root: root.name, err: e, code: e.code }, 'capture: no snapshot: this root is captured file by file (file-level consistency) until a snapshot succeeds');
    root.fallback = e.message;
    root.exact = false;
    this.pointStats.failed++;
    this.notices.add('TANDEM_ERR_POINT_FAILED', `capture ${root.name}: ${e.message}; captured file by file meanwhile`, e.hint ?? 'see docs/errors.md', { root: root.name }, `points/${root.name}`);
    this.rehold(root);
    void this.restoreWatches(root);
  }

  /**
   * The root is read file by file from now on (its snapshot failed, or for good): hints are all
   * it has, so every directory set aside as too busy is watched again, and everything in them
   * is looked at once (what changed there while no watch was on went unhinted).
   */
  private async restoreWatches(root: RootCtx): Promise<void> {
    const hot = root.hot;
    if (hot === undefined) return;
    hot.enabled = false;
    const dirs = hot.takeAll();
    if (dirs.length === 0) return;
    this.log.info({ root: root.name, dirs: dirs.length }, 'capture: watching every directory again (captured file by file now)');
    for (const d of dirs) await this.watchers.get(root.name)?.watchTree(d);
    // A stat scan against the manifest: what changed there, removals included, is hinted.
    try {
      await scanRoot({ ...root, path: root.real }, this.opts.manifest, root.isExcluded, (rel) => this.hint(root.name, rel), () => this.stopped);
    } catch (err) {
      this.log.warn({ root: root.name, err }, 'capture: the scan after watching every directory again failed; the next periodic scan looks again');
    }
  }

  /** The root holds a nested subvolume (its snapshots lack it): file mode for good. */
  private abandonSnapshots(root: RootCtx, err: NestedSubvolume): void {
    const reason = `it holds a nested subvolume at ${err.path}, which its snapshots do not contain`;
    this.log.error({ root: root.name, path: err.path, code: 'TANDEM_ERR_POINT_FAILED' }, `capture: ${root.name}: ${reason}: captured file by file from now on`);
    this.notices.add('TANDEM_ERR_POINT_FAILED', `capture ${root.name}: ${reason}; file-level consistency only`, 'move the nested subvolume out of the protected root, then restart the agent', { root: root.name, path: err.path }, `points/${root.name}`);
    root.store?.drop(root.snap);
    root.store = undefined;
    root.snap = undefined;
    root.fallback = reason;
    root.exact = false;
    this.rehold(root);
    void this.restoreWatches(root);
  }

  /**
   * While idle, every capture.pointInterval: with no hint since the last point and the marker
   * back, the last point is still the disk's state; the passive hears it is that much younger.
   */
  private scheduleConfirm(): void {
    const points = this.opts.points;
    if (points?.marker === undefined || this.stopped) return;
    this.confirmTimer = this.opts.clock.setTimeout(() => {
      this.confirmTimer = undefined;
      void this.confirm().finally(() => this.scheduleConfirm());
    }, points.intervalMs);
  }

  private async confirm(): Promise<void> {
    const points = this.opts.points!;
    const newest = points.ledger.newest();
    // Records journaled past the newest point (a round that closed none) are changes after it:
    // the disk is not that point any more.
    if (newest === undefined || newest.id !== this.opts.journal.headSeq || !this.isIdle() || this.baseline) return;
    const at = await points.marker!.roundTrip();
    if (at === undefined || !this.isIdle() || points.ledger.newest()?.id !== newest.id || newest.id !== this.opts.journal.headSeq) return;
    points.ledger.record(newest.id, at);
    this.lastPointAt = at;
    points.onPoint?.(points.ledger.newest()!);
  }

  /** A name the snapshot comparison says may be gone: journaled as removed if it is. */
  private async removeIfGone(root: RootCtx, rel: string): Promise<void> {
    const m = this.opts.manifest;
    const prev = m.get(root.name, rel);
    if (prev === undefined) return;
    if (this.lstatOther(root, rel) !== undefined) return this.processPath(root, rel, false);
    this.append({ op: prev.kind === 'dir' ? 'rmdir' : 'unlink', root: root.name, path: rel });
    m.delete(root.name, rel);
    if (prev.kind === 'dir') this.watchers.get(root.name)?.unwatchTree(rel);
  }

  private taskContext(): CaptureTaskContext {
    return {
      append: (r) => this.append(r),
      makeRoom: () => this.makeRoom(),
      headSeq: () => this.opts.journal.headSeq,
      refresh: async (rootName, relPath) => {
        const root = this.roots.get(rootName);
        if (root === undefined) return;
        this.dirty.delete(`${rootName}\0${relPath}`);
        await this.processPath(root, relPath, true);
      },
    };
  }

  /**
   * Journals `r`. A write is compressed here (on the event loop: small files, synchronisation
   * runs) unless `decided`: big files compress their blocks in the thread pool first.
   */
  private append(r: NewRecord, decided = false, ref?: { ino: number }): number {
    if (this.baseline) return 0;
    const level = this.opts.compressionLevel ?? 0;
    if (r.op === 'write' && level > 0 && !decided) r = compressWrite(r, level);
    if (this.splitDue) {
      // The full batch goes now that more follows it: a point's last batch is never a split.
      this.splitDue = false;
      this.startSplit(this.opts.journal.commit(false, { at: this.pointAt, end: false }));
    }
    const seq = this.opts.journal.append(r, ref);
    this.counters.recordsJournaled++;
    if (this.appendListeners.size > 0) {
      const full = withSeq(r, seq) as DataRecord;
      for (const l of this.appendListeners) l(full);
    }
    return seq;
  }

  /**
   * Commits what is pending. In snapshot mode the batch belongs to the point being built and,
   * unless `end` is false, closes it; resolves with the sequence of the point's last record when
   * this commit closed one.
   */
  private async commit(end = true): Promise<number | undefined> {
    await this.settleSplit();
    this.splitDue = false;
    if (this.baseline) return undefined;
    let closed: number | undefined;
    if (this.opts.journal.pendingBytes > 0) {
      const consistent = this.hintsDuringRound === 0 && !this.roundTorn && !this.roundSplit;
      const b = await this.opts.journal.commit(consistent, this.pointsMode ? { at: this.pointAt, end } : undefined);
      if (b !== undefined && this.pointsMode && end) closed = b.last;
    }
    // Only now may the manifest be persisted: it must never claim what the journal lacks. Also
    // after a split commit took everything pending: the journal can be trimmed only up to what
    // the manifest reflects, so skipping this flush would keep a full journal full for good.
    await this.opts.afterCommit();
    if (closed !== undefined) {
      const points = this.opts.points!;
      points.ledger.record(closed, this.pointAt);
      points.onPoint?.(points.ledger.newest()!);
    }
    return closed;
  }

  private startSplit(commit: Promise<unknown>): void {
    // Observed by settleSplit; never an unhandled rejection meanwhile.
    commit.catch(() => {});
    this.splitCommits.push(commit);
  }

  /** Waits until at most `keep` split commits are in flight (the oldest first); throws the first failure. */
  private async settleSplit(keep = 0): Promise<void> {
    while (this.splitCommits.length > keep) await this.splitCommits.shift();
  }

  /**
   * Lets timers and sockets run once capture has held the event loop for YIELD_EVERY_MS. With
   * channel.compression a block journaled on the event loop costs a deflate (about 1 ms per
   * 64 KiB block at level 6, bench/results/compression.md), so a synchronisation's 4 MiB run is
   * handed to the journal a few blocks at a time: the heartbeat keeps its rhythm.
   */
  private async breathe(): Promise<void> {
    const held = this.opts.clock.monotonic() - this.breathStart;
    if (held <= YIELD_TO_SENDER_MS || (held <= YIELD_EVERY_MS && this.opts.senderWaiting?.() !== true)) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.breathStart = this.opts.clock.monotonic();
  }

  /** Called before reading more data: keeps batches at their size and the journal in its bound. */
  private async makeRoom(): Promise<void> {
    await this.breathe();
    const j = this.opts.journal;
    if (this.baseline) return;
    // A batch is also closed by the bytes its blocks inflate to (compressed zero blocks journal
    // at ~100 bytes each) and by its records: the passive refuses a batch beyond
    // MAX_BATCH_RAW_BYTES or MAX_BATCH_RECORDS.
    if (!this.splitDue && (j.pendingBytes >= this.opts.batchBytes || j.pendingPayloadBytes >= BATCH_RAW_CUT_BYTES || j.pendingRecords >= BATCH_RECORDS_CUT)) {
      this.roundSplit = true;
      // Read on while this batch is made durable, with up to SPLITS_IN_FLIGHT such commits in
      // flight: the journal writes each batch at once and one fdatasync covers every batch
      // written before it started, so the next batches are read while the disk flushes. The
      // manifest is flushed only by the round's last commit, which waits for all of them.
      await this.settleSplit(SPLITS_IN_FLIGHT - 1);
      if (this.pointsMode) {
        this.splitDue = true;
      } else {
        this.startSplit(j.commit(false));
      }
    }
    if (!j.hasSpace()) {
      // In snapshot mode this batch does not end its point; the point ends with a later batch,
      // or, if none follows, with the journal's head as its last record (PointLedger).
      await this.commit(false);
      this.waitingForSpace = true;
      this.log.info({ headSeq: j.headSeq }, 'capture: journal full, waiting for the passive to acknowledge');
      await j.waitForSpace(this.stopping.signal);
      this.waitingForSpace = false;
      this.log.info({}, 'capture: journal has room again');
    }
  }

  // ---------------------------------------------------------------- one path

  private async processPath(root: RootCtx, rel: string, force: boolean, change?: PathChange): Promise<void> {
    if (root.isExcluded(rel)) return;
    const key = `${root.name}\0${rel}`;
    // Every path is walked from its root, one directory at a time, none followed
    // (agent/tree/beneath.ts): a directory swapped for a link since the hint is never read
    // through, whatever it points at.
    let parent: Parent | undefined;
    try {
      parent = openParent(this.rootRef(root), rel);
    } catch (err) {
      if (!(err instanceof PathSwapped)) throw err;
      this.notices.add(
        'TANDEM_ERR_PATH_SWAPPED',
        `capture ${root.name}/${rel}: not read: "${err.component}" is a symbolic link now (a directory replaced by a link while paths below it were being captured); nothing was read through it`,
        'if nobody replaced that directory on purpose, find out who did: the link itself is replicated as a link, never followed',
        { root: root.name, path: rel, component: err.component },
        `${root.name}/${err.component}`,
      );
      // The link itself is what changed: let it be journaled as one. Journaling it takes the
      // paths below it out of the manifest; a removal waiting for this path ends then.
      this.waitingSince.delete(key);
      if (this.opts.manifest.get(root.name, rel) === undefined) this.removals.delete(key);
      this.rehint(root, err.component);
      return;
    }
    try {
      // Synchronous: a few microseconds from the inode cache, against a thread-pool round trip.
      const st = parent === undefined ? undefined : lstatAt(parent.at);
      const kind = st === undefined ? undefined : kindOf(st);
      const m = this.opts.manifest;
      if (parent === undefined || st === undefined || kind === undefined) {
        this.waitingSince.delete(key);
        if (m.get(root.name, rel) === undefined) this.removals.delete(key); // already removed with its parent directory
        else if (this.roundWork !== undefined && this.readsSnapshot(root)) this.roundGone.set(key, { root, path: rel, force: false, since: this.opts.clock.now() });
        else this.deferRemoval({ root, path: rel, force: false, since: this.opts.clock.now() });
        return;
      }
      // A nested subvolume shows in its parent's snapshot as an empty directory of its own
      // inode number: taking it for the real one would remove its content from the passive.
      if (kind === 'dir' && st.ino === EMPTY_SUBVOLUME_INO && this.readsSnapshot(root)) throw new NestedSubvolume(rel);
      this.removals.delete(key);
      if (!(await this.ensureParents(root, rel))) {
        // The parent is not a directory by the journal's account (it was just found to be a link,
        // or gone): nothing below it may be journaled. If it becomes a directory again, listing it
        // hints this path anew (a snapshot does not change: nothing to look at again).
        if (!this.readsSnapshot(root)) this.scheduleRecheck(root, rel, this.opts.settleMs);
        return;
      }
      let cur = m.get(root.name, rel);
      if (cur === undefined || cur.ino !== st.ino || cur.kind !== kind) {
        if (await this.claimRename(root, rel, st, kind)) cur = m.get(root.name, rel);
      }
      switch (kind) {
        case 'dir':
          return await this.processDir(root, rel, parent, st, cur, change);
        case 'symlink':
          return this.processLink(root, rel, parent, st, cur);
        case 'file':
          return await this.processFile(root, rel, parent, st, cur, force, change);
      }
    } catch (err) {
      // Gone while it was looked at (between its lstat and its attributes, its bytes or its
      // link's target): a removal like any, which a rename's other half pairs with, not a path
      // that cannot be read (that raised an alarm for a file a program had just deleted).
      if (errnoOf(err) === 'ENOENT' && parent !== undefined && lstatAt(parent.at) === undefined) {
        if (this.opts.manifest.get(root.name, rel) !== undefined) this.deferRemoval({ root, path: rel, force: false, since: this.opts.clock.now() });
        return;
      }
      throw err;
    } finally {
      parent?.close();
    }
  }

  /**
   * A path whose parent the manifest does not know as a directory: the parent is journaled
   * first. False when the parent is then still not a directory in the manifest (a link, or
   * gone): the journal must never hold a record below something it says is not a directory.
   */
  private async ensureParents(root: RootCtx, rel: string): Promise<boolean> {
    const parent = parentOf(rel);
    if (parent === '' || this.opts.manifest.get(root.name, parent)?.kind === 'dir') return true;
    await this.processPath(root, parent, false);
    return this.opts.manifest.get(root.name, parent)?.kind === 'dir';
  }

  /** lstat of another path of the same root, walked like any; undefined when it is not there (or below a link). */
  private lstatOther(root: RootCtx, rel: string): Stats | undefined {
    try {
      return lstatBeneath(this.rootRef(root), rel);
    } catch (err) {
      if (err instanceof PathSwapped) return undefined;
      throw err;
    }
  }

  /**
   * A path whose inode the manifest knows under another name that no longer has it: a rename
   * (of a file, a link or a whole directory), journaled as one record instead of a copy.
   */
  private async claimRename(root: RootCtx, rel: string, st: Stats, kind: EntryKind): Promise<boolean> {
    const m = this.opts.manifest;
    const src = m.pathForIno(root.name, st.ino);
    if (src === undefined || src === rel || isWithin(rel, src) || isWithin(src, rel)) return false;
    if (m.get(root.name, src)?.kind !== kind) return false;
    const srcSt = this.lstatOther(root, src);
    if (srcSt !== undefined && srcSt.ino === st.ino) return false; // a hard link: both names exist
    this.append({ op: 'rename', root: root.name, path: src, to: rel });
    m.move(root.name, src, rel);
    this.removals.delete(`${root.name}\0${src}`);
    // A watch follows its directory's inode: re-record the moved subtree under its new name.
    if (kind === 'dir') await this.watchers.get(root.name)?.moveTree(src, rel);
    return true;
  }

  /**
   * The ctime to record with an owner and attributes read just now. Attributes are proven
   * unchanged by the ctime alone, and a change made within the same timestamp tick after the
   * read leaves it as it was (kernels before 6.13 stamp from a clock of 4 ms ticks): a second
   * setfacl a few ms after the first would then never reach the passive. So a ctime that close
   * to the read is not recorded (the next look reads the attributes again), and the path is
   * looked at once more when the window has passed. A snapshot is one instant: its list names
   * what changed after it.
   */
  private metaCtime(root: RootCtx, rel: string, ctimeMs: number): number | undefined {
    if (this.readsSnapshot(root) || !racyAt(ctimeMs, this.opts.clock.now())) return ctimeMs;
    if (!this.rechecks.has(`${root.name}\0${rel}`)) this.scheduleRecheck(root, rel, RACY_WINDOW_MS + 1);
    return undefined;
  }

  /** Owner (and names) and attributes of the entry at `parent`, noting attributes it could not read. */
  private readMeta(root: RootCtx, rel: string, parent: Parent, st: Stats): DiskMeta {
    const meta = readEntryMeta(parent.at, st, this.users);
    if (meta.unreadable.length > 0) {
      this.notices.add(
        'TANDEM_ERR_XATTR_UNAPPLIED',
        `capture ${root.name}/${rel}: extended attributes not read: ${meta.unreadable.slice(0, 8).join(', ')}`,
        'they are replicated once they can be read again (a change to the file retries)',
        { root: root.name, path: rel },
        `${root.name}/${rel}`,
      );
    }
    return meta;
  }

  private async processDir(root: RootCtx, rel: string, parent: Parent, st: Stats, cur: Entry | undefined, change?: PathChange): Promise<void> {
    const m = this.opts.manifest;
    const mode = st.mode & 0o7777;
    if (cur?.kind === 'dir' && cur.ino === st.ino) {
      // Owner, mode or attributes may have changed: only the ctime says so for the last two,
      // unless a snapshot comparison listed the directory (exact, where a change within the
      // ctime's timestamp tick leaves it as it was).
      if (cur.mode === mode && cur.uid === st.uid && cur.gid === st.gid && cur.ctimeMs === st.ctimeMs && change === undefined) return;
      const meta = this.readMeta(root, rel, parent, st);
      if (cur.mode !== mode || cur.uid !== st.uid || cur.gid !== st.gid || !sameXattrHash(cur.xattrHash, meta.xattrHash)) {
        this.append({ op: 'mkdir', root: root.name, path: rel, mode, ...meta.owner, xattrs: meta.xattrs, ...aclNamesField(meta) });
      }
      m.set(root.name, rel, { ...cur, mode, ...ownerOf(meta.owner), xattrHash: meta.xattrHash, ctimeMs: this.metaCtime(root, rel, st.ctimeMs) });
      return;
    }
    if (cur?.kind === 'dir') {
      // Another directory under the same name: what the old one held is gone with it.
      this.append({ op: 'rmdir', root: root.name, path: rel });
      m.delete(root.name, rel);
    }
    const meta = this.readMeta(root, rel, parent, st);
    this.append({ op: 'mkdir', root: root.name, path: rel, mode, ...meta.owner, xattrs: meta.xattrs, ...aclNamesField(meta) });
    m.set(root.name, rel, { kind: 'dir', mode, ino: st.ino, mtimeMs: st.mtimeMs, ...ownerOf(meta.owner), xattrHash: meta.xattrHash, ctimeMs: this.metaCtime(root, rel, st.ctimeMs) });
    // Watch first, then list: an entry created in between is seen by one or the other. Entries
    // created before the watch existed have no event of their own.
    const w = this.watchers.get(root.name);
    if (cur?.kind === 'dir') w?.unwatchTree(rel);
    await w?.watchTree(rel);
    const d = openDirAt(parent.fd, parent.name);
    if (d.kind !== 'dir') {
      this.rehint(root, rel); // it changed again since the lstat
      return;
    }
    let names: string[] = [];
    try {
      names = fs.readdirSync(fdPath(d.fd));
    } catch {
      // Unreadable now: the next scan lists it again.
    } finally {
      closeFd(d.fd);
    }
    for (const n of names) this.rehint(root, `${rel}/${n}`);
  }

  private processLink(root: RootCtx, rel: string, parent: Parent, st: Stats, cur: Entry | undefined): void {
    const target = fs.readlinkSync(parent.at, 'utf8');
    const m = this.opts.manifest;
    if (cur?.kind === 'symlink' && cur.target === target && cur.uid === st.uid && cur.gid === st.gid) {
      if (cur.ino !== st.ino || cur.mtimeMs !== st.mtimeMs) m.set(root.name, rel, { ...cur, ino: st.ino, mtimeMs: st.mtimeMs });
      return;
    }
    const owner = ownerFieldsOf(st, this.users);
    this.append({ op: 'symlink', root: root.name, path: rel, target, ...owner });
    m.set(root.name, rel, { kind: 'symlink', target, ino: st.ino, mtimeMs: st.mtimeMs, ...ownerOf(owner) });
  }

  /**
   * Another name in this root of the inode `st` (a hard link) that the manifest knows and that
   * still has it on disk, other than `rel`.
   */
  private linkedName(root: RootCtx, rel: string, st: Stats): string | undefined {
    for (const p of this.opts.manifest.pathsForIno(root.name, st.ino)) {
      if (p === rel || this.opts.manifest.get(root.name, p)?.kind !== 'file') continue;
      const pst = this.lstatOther(root, p);
      if (pst !== undefined && pst.ino === st.ino && pst.dev === st.dev) return p;
    }
    return undefined;
  }

  private async processFile(root: RootCtx, rel: string, parent: Parent, st: Stats, cur: Entry | undefined, force: boolean, change?: PathChange): Promise<void> {
    const m = this.opts.manifest;
    const key = `${root.name}\0${rel}`;
    const mode = st.mode & 0o7777;
    let prev: FileEntry | undefined = cur?.kind === 'file' ? cur : undefined;
    // A snapshot comparison that names the file's bytes as changed is exact (btrfs compares the
    // extent records): the same size and mtime prove nothing then, since a write within the
    // mtime's timestamp tick does not move it.
    const listedContent = change !== undefined && change.content !== 'none';
    if (prev !== undefined && prev.ino === st.ino && prev.size === st.size && prev.mtimeMs === st.mtimeMs && !force && !listedContent && !isRacy(prev)) {
      this.waitingSince.delete(key);
      // The content is known; the owner, mode or attributes may not be (the ctime says they
      // moved, or a snapshot comparison that listed the file: within one tick it does not move).
      if (prev.mode === mode && prev.uid === st.uid && prev.gid === st.gid && prev.ctimeMs === st.ctimeMs && change === undefined) return;
      const meta = this.readMeta(root, rel, parent, st);
      if (prev.mode !== mode || prev.uid !== st.uid || prev.gid !== st.gid || !sameXattrHash(prev.xattrHash, meta.xattrHash)) {
        this.append({ op: 'meta', root: root.name, path: rel, mode, mtimeMs: prev.mtimeMs, ...meta.owner, xattrs: meta.xattrs, ...aclNamesField(meta) });
      }
      const entry: FileEntry = { ...prev, mode, ...ownerOf(meta.owner), xattrHash: meta.xattrHash, ctimeMs: this.metaCtime(root, rel, st.ctimeMs), nlink: st.nlink };
      m.set(root.name, rel, entry);
      this.updateLinkedNames(root, rel, entry);
      return;
    }
    // A new name of a file this root already holds under another (a hard link, rsync -H): the
    // passive links it too, instead of receiving a second copy.
    if (st.nlink > 1 && (prev === undefined || prev.ino !== st.ino)) {
      const other = this.linkedName(root, rel, st);
      if (other !== undefined) {
        const o = m.get(root.name, other) as FileEntry;
        // What the passive links to must be the content as it is: journal the other name's change first.
        if (o.size !== st.size || o.mtimeMs !== st.mtimeMs || isRacy(o)) await this.processPath(root, other, false);
        const linked = m.get(root.name, other);
        if (linked?.kind === 'file' && linked.ino === st.ino) {
          this.waitingSince.delete(key);
          this.append({ op: 'hardlink', root: root.name, path: rel, target: other });
          m.set(root.name, rel, { ...linked, blocks: Buffer.from(linked.blocks) });
          return;
        }
      }
    }
    // Another inode now stands at a name the passive shares with other names: writing into it
    // there would change them all. Make it a name of its own first.
    if (prev !== undefined && prev.ino !== st.ino && m.pathsForIno(root.name, prev.ino).length > 1) {
      this.append({ op: 'unlink', root: root.name, path: rel });
      m.delete(root.name, rel);
      prev = undefined;
    }
    // A large file still being written is read once it is quiet: reading 1 GiB on every event of
    // a copy in progress would hash it many times over.
    const now = this.opts.clock.now();
    // A snapshot is one instant of the file: nothing to wait for, nothing to read again.
    const snap = this.readsSnapshot(root) ? root.snap : undefined;
    // Written this very moment: read now, it would be racy and read again after the settle.
    // Read once its mtime is old enough to prove the content (at most RACY_WINDOW_MS from now):
    // at 1,000 new files a second every file was read twice.
    const waitMs =
      snap !== undefined || this.baseline
        ? undefined
        : st.size >= LARGE_FILE_BYTES && st.mtimeMs > now - this.opts.settleMs
          ? this.opts.settleMs
          : !force && racyAt(st.mtimeMs, now)
            ? Math.ceil(st.mtimeMs + RACY_WINDOW_MS - now) + 1
            : undefined;
    if (waitMs !== undefined) {
      // A file written all the time is read anyway after MAX_QUIET_WAIT_MS.
      const since = this.waitingSince.get(key) ?? now;
      if (now - since < MAX_QUIET_WAIT_MS) {
        this.waitingSince.set(key, since);
        this.scheduleRecheck(root, rel, waitMs);
        return;
      }
    }
    this.waitingSince.delete(key);

    const bs = this.opts.blockSize;
    const prevBlocks = prev?.blocks;
    const prevCount = prevBlocks === undefined ? 0 : prevBlocks.length / HASH_BYTES;
    // What the passive holds before this read: its bytes past this size read as zero.
    const prevSize = prev?.size ?? 0;
    let changed = false;
    // What this look journals for the file, kept until its entry is set: see reflectJournaled.
    // A write is kept without its bytes (a 1 GiB file would keep them all): only its length and
    // hash count for the manifest.
    const journaled: NewRecord[] = [];
    const put = (r: NewRecord, decided = false, ref?: { ino: number }): void => {
      this.append(r, decided, ref);
      if (this.baseline) return;
      if (r.op !== 'write') {
        journaled.push(r);
        return;
      }
      const w = shallowCopy(r);
      w.data = EMPTY;
      w.encoding = 'deflate-raw';
      w.rawLength = r.encoding === undefined ? r.data.length : r.rawLength;
      journaled.push(w);
    };
    // The inode whose bytes the journal may keep as references (agent/journal: "Referenced
    // blocks"): a large file read from the live tree, uncompressed. Never from a snapshot, which
    // goes once its point is taken, nor in snapshot mode at all: a point's bytes must stay.
    let refIno: number | undefined;
    // Make the path a regular file of the size being read before any block of it.
    const onOpen = (stat: FileStat) => {
      if (snap === undefined && !this.pointsMode && (this.opts.compressionLevel ?? 0) === 0) refIno = stat.ino;
      if (prev === undefined || prev.size !== stat.size) {
        put({ op: 'file', root: root.name, path: rel, size: stat.size });
        changed = true;
      }
    };
    // The records of the blocks of a chunk whose hash (or length) changed. A block of zeros
    // travels as a hole without its bytes, and not at all where the passive already reads zeros
    // (past its old size: `file` extends a file with a hole), so sparse files stay sparse.
    const changedBlocks = (offset: number, chunk: Buffer, hashes: Buffer): (NewWrite | NewHole)[] => {
      const out: (NewWrite | NewHole)[] = [];
      const first = offset / bs;
      const n = hashes.length / HASH_BYTES;
      for (let i = 0; i < n; i++) {
        const b = first + i;
        const newLen = Math.min(bs, chunk.length - i * bs);
        if (b < prevCount && prevBlocks!.compare(hashes, i * HASH_BYTES, (i + 1) * HASH_BYTES, b * HASH_BYTES, (b + 1) * HASH_BYTES) === 0) {
          // Same hash, but a shorter or longer last block still differs in length: compare sizes.
          const oldLen = Math.min(bs, prev!.size - b * bs);
          if (oldLen === newLen) continue;
        }
        const data = chunk.subarray(i * bs, i * bs + newLen);
        if (zeroBlockHash(newLen).compare(hashes, i * HASH_BYTES, (i + 1) * HASH_BYTES) === 0 && isAllZero(data)) {
          if (b * bs >= prevSize) continue;
          out.push({ op: 'hole', root: root.name, path: rel, offset: b * bs, length: newLen });
          continue;
        }
        out.push({ op: 'write', root: root.name, path: rel, offset: b * bs, data, hash: hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES) });
      }
      return out;
    };
    // `ino`: the journal may keep the writes as references to this inode's bytes.
    const emit = (offset: number, chunk: Buffer, hashes: Buffer, ino?: number) => {
      for (const w of changedBlocks(offset, chunk, hashes)) {
        put(w, false, ino !== undefined && w.op === 'write' ? { ino } : undefined);
        changed = true;
      }
    };
    const level = this.opts.compressionLevel ?? 0;
    const at = parent.at;
    const clockNow = () => this.opts.clock.now();
    let outcome: BlockReadOutcome | { kind: 'too-large' } = { kind: 'too-large' };
    // From a snapshot whose previous state the manifest holds exactly: only the changed blocks.
    const older = prev;
    const journalChunk = async (offset: number, chunk: Buffer, hashes: Buffer): Promise<void> => {
      await this.makeRoom();
      const j = this.opts.journal;
      if (refIno !== undefined && j.refsStored === true) {
        // Kept as references, a block's bytes are only in the send cache until the passive has
        // them: read no further ahead of its acknowledgements than the cache holds.
        await j.waitForAcks?.(REF_AHEAD_BYTES, this.stopping.signal);
        if (j.refsStored) return emit(offset, chunk, hashes, refIno);
      }
      if (level === 0) return emit(offset, chunk, hashes);
      // The changed blocks of a 1 MiB chunk compress side by side in the thread pool, off the
      // event loop (bench/results/compression.md); the reader reuses `chunk` only once this
      // returns, and the journal copies each block, so the views stay valid throughout.
      const records = await Promise.all(changedBlocks(offset, chunk, hashes).map((w) => (w.op === 'write' ? compressWriteAsync(w, level) : Promise.resolve(w))));
      for (const w of records) {
        put(w, true);
        changed = true;
      }
    };
    try {
      let rangedBytes: number | undefined;
      if (snap !== undefined && !force && root.exact && older !== undefined && older.ino === st.ino && change !== undefined && change.content !== 'all' && older.blocks.length === Math.ceil(older.size / bs) * HASH_BYTES) {
        await this.makeRoom();
        rangedBytes = 0;
        const changedSet = change.content === 'blocks' ? change.blocks : new Set<number>();
        outcome = await readChangedBlocks(at, bs, { blocks: older.blocks, size: older.size, changed: changedSet }, snap.at, async (offset, chunk, hashes) => {
          rangedBytes = (rangedBytes ?? 0) + chunk.length;
          await journalChunk(offset, chunk, hashes);
        }, onOpen);
      } else if (st.size <= SYNC_READ_MAX_BYTES) {
        await this.makeRoom();
        outcome = readBlocksSync(at, bs, clockNow, emit, onOpen);
      }
      if (outcome.kind === 'too-large') {
        outcome = await readBlocks(at, bs, clockNow, journalChunk, onOpen, READS_IN_FLIGHT);
      }
      if (outcome.kind === 'vanished') {
        if (m.get(root.name, rel) !== undefined) this.deferRemoval({ root, path: rel, force: false, since: now });
        return;
      }
      if (outcome.kind === 'not-a-file') {
        this.rehint(root, rel); // it became a directory or a link since the lstat
        return;
      }
      this.counters.filesHashed++;
      this.counters.bytesHashed += rangedBytes ?? outcome.size;
      const stat = outcome.stat;
      // A file cut shorter while it was read: the passive holds the size taken at the open (from
      // `file`, or as it was), and the manifest records the bytes read. Cut the passive to those
      // too, or a later look finds the manifest's size on disk and sends no `file`: the passive
      // would keep the old tail for good (seen in a kill test under load).
      if (outcome.size !== stat.size) {
        put({ op: 'file', root: root.name, path: rel, size: outcome.size });
        changed = true;
      }
      const meta = this.readMeta(root, rel, parent, st);
      const owner = { ...meta.owner, ...ownerFieldsOf(stat, this.users) };
      if (changed || prev === undefined || prev.mtimeMs !== stat.mtimeMs || prev.mode !== stat.mode || prev.uid !== stat.uid || prev.gid !== stat.gid || !sameXattrHash(prev.xattrHash, meta.xattrHash)) {
        put({ op: 'meta', root: root.name, path: rel, mode: stat.mode, mtimeMs: stat.mtimeMs, ...owner, xattrs: meta.xattrs, ...aclNamesField(meta) });
      }
      const entry: FileEntry = {
        kind: 'file',
        mode: stat.mode,
        size: outcome.size,
        mtimeMs: stat.mtimeMs,
        ino: stat.ino,
        blocks: Buffer.from(outcome.blocks),
        // Read from a snapshot: the bytes are those of its instant (a later write in the same
        // timestamp tick then shows as racy to a stat scan, as it must).
        readAt: snap !== undefined ? snapshotReadAt(stat.mtimeMs, snap.at, snap.doneAt) : outcome.readAt,
        ...ownerOf(owner),
        xattrHash: meta.xattrHash,
        ctimeMs: this.metaCtime(root, rel, stat.ctimeMs),
        nlink: stat.nlink,
      };
      m.set(root.name, rel, entry);
      journaled.length = 0; // the entry says what they did, and more
      this.updateLinkedNames(root, rel, entry);
      if (snap !== undefined) return;
      if (outcome.torn) this.roundTorn = true;
      // Events come late and coalesced (and watchers are known to drop the last of a burst), and
      // an mtime this close to the read cannot prove the content unchanged: look again once the
      // file is quiet.
      if (outcome.torn || isRacy(entry)) this.scheduleRecheck(root, rel, this.opts.settleMs, true);
    } catch (err) {
      this.reflectJournaled(root, rel, journaled);
      throw err;
    }
  }

  /**
   * Records of a file were journaled, then its look failed before its entry was set (it went
   * between the read and its attributes, a read failed, capture stopped while waiting for room).
   * The manifest takes what those records do on the passive, as a replay after a crash would,
   * unproven by any read (the next look reads the file again). Left as it was, a manifest
   * without the path journals nothing when it goes, and the passive keeps it for good (seen in
   * the active-kill test: a file found by the start-up scan, renamed away while being read).
   */
  private reflectJournaled(root: RootCtx, rel: string, records: NewRecord[]): void {
    if (records.length === 0) return;
    const m = this.opts.manifest;
    for (const r of records) applyRecordToManifest(m, withSeq(r, 0) as DataRecord, this.opts.blockSize);
    const e = m.get(root.name, rel);
    if (e?.kind === 'file') {
      const c = shallowCopy(e);
      c.readAt = 0;
      m.set(root.name, rel, c);
    }
  }

  /** The other names of a hard-linked file share what was just journaled for one of them: nothing to send for them. */
  private updateLinkedNames(root: RootCtx, rel: string, entry: FileEntry): void {
    if ((entry.nlink ?? 1) < 2) return;
    const m = this.opts.manifest;
    for (const p of m.pathsForIno(root.name, entry.ino)) {
      if (p !== rel && m.get(root.name, p)?.kind === 'file') m.set(root.name, p, { ...entry, blocks: Buffer.from(entry.blocks) });
    }
  }

  private scheduleRecheck(root: RootCtx, rel: string, ms: number, force = false): void {
    const key = `${root.name}\0${rel}`;
    this.rechecks.get(key)?.cancel();
    this.rechecks.set(
      key,
      this.opts.clock.setTimeout(() => {
        this.rechecks.delete(key);
        this.hint(root.name, rel, force);
      }, ms),
    );
  }

  // ---------------------------------------------------------------- removals

  /**
   * A vanished path is journaled as removed only after `renameWindowMs`: if its inode shows up
   * under a new name meanwhile (a rename's two halves are reported in either order), the
   * move is journaled as a rename instead of a delete and a full copy.
   */
  private deferRemoval(h: Hint): void {
    const key = `${h.root.name}\0${h.path}`;
    const now = this.opts.clock.now();
    const pending = this.removals.get(key);
    if (pending === undefined) {
      this.removals.set(key, { hint: h, due: now + this.opts.renameWindowMs });
      this.armRemovalTimer();
      return;
    }
    if (pending.due > now) return;
    this.removals.delete(key);
    const m = this.opts.manifest;
    const prev = m.get(h.root.name, h.path);
    if (prev === undefined) return;
    this.append({ op: prev.kind === 'dir' ? 'rmdir' : 'unlink', root: h.root.name, path: h.path });
    m.delete(h.root.name, h.path);
    if (prev.kind === 'dir') this.watchers.get(h.root.name)?.unwatchTree(h.path);
  }

  private armRemovalTimer(): void {
    if (this.removalTimer !== undefined || this.removals.size === 0) return;
    let due = Infinity;
    for (const r of this.removals.values()) due = Math.min(due, r.due);
    this.removalTimer = this.opts.clock.setTimeout(() => {
      this.removalTimer = undefined;
      const now = this.opts.clock.now();
      for (const r of this.removals.values()) if (r.due <= now) this.hint(r.hint.root.name, r.hint.path);
      this.armRemovalTimer();
    }, Math.max(0, due - this.opts.clock.now()));
  }

  /** Without the xattr module nothing of the attributes can be read: say so, for as long as it lasts. */
  private noteXattrSupport(): void {
    const why = xattrProblem();
    if (why === undefined) return;
    this.notices.add(
      'TANDEM_ERR_XATTR_UNAPPLIED',
      `capture: extended attributes and ACLs are not replicated from this node: ${why}`,
      'run Tandem on a platform for which @napi-rs/xattr ships a prebuilt binary (Linux x64 and arm64, glibc or musl)',
      {},
      'module',
    );
  }

  // ---------------------------------------------------------------- scans

  private scheduleScan(): void {
    if (this.opts.scanIntervalMs <= 0 || this.stopped) return;
    this.scanTimer = this.opts.clock.setTimeout(() => {
      this.scanTimer = undefined;
      void this.scanAll('periodic').finally(() => this.scheduleScan());
    }, this.opts.scanIntervalMs);
  }

  /**
   * Stat-scans every root and hints what differs from the manifest. A periodic scan skips its
   * turn when one runs; any other reason waits for it and then scans afresh, because its caller
   * needs a scan that began after now (a switchover's drain).
   */
  async scanAll(reason: string): Promise<void> {
    if (this.scanning) {
      if (reason === 'periodic') return;
      while (this.scanning) await this.opts.clock.sleep(10);
    }
    this.scanning = true;
    this.noteXattrSupport();
    // A root in snapshot mode is compared by a point: a fresh snapshot against the previous one
    // (btrfs lists every change, events or not) or, at start, against the manifest. A drain
    // (switchover) takes it at once; the others wait for the point's turn.
    let points = false;
    for (const root of this.roots.values()) {
      if (root.store === undefined) continue;
      this.forced.add(root.name);
      if (reason === 'periodic') root.fullScan = true;
      points = true;
    }
    if (points) {
      if (reason === 'drain') this.urgent = true;
      this.wake(reason === 'drain');
    }
    const t0 = this.opts.clock.monotonic();
    let entries = 0;
    let hinted = 0;
    try {
      for (const root of this.roots.values()) {
        if (root.store !== undefined && root.fallback === undefined) continue;
        const r = await scanRoot(root, this.opts.manifest, root.isExcluded, (rel) => this.hint(root.name, rel), () => this.stopped);
        entries += r.entries;
        hinted += r.hinted;
      }
    } catch (err) {
      this.log.warn({ err, reason }, 'capture: scan failed, will retry at the next interval');
    } finally {
      this.scanning = false;
    }
    const durationMs = Math.round(this.opts.clock.monotonic() - t0);
    this.lastScan = { at: this.opts.clock.now(), durationMs, entries, hinted };
    this.log[hinted > 0 || reason === 'start' ? 'info' : 'debug']({ reason, entries, hinted, durationMs }, 'capture: scan done');
  }
}

