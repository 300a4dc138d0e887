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
import { describeCause } from '../../shared/errors.ts';
import { HASH_BYTES, isAllZero, zeroBlockHash } from '../../shared/hash.ts';
import { Notices, type Notice } from '../../shared/notices.ts';
import { BATCH_RAW_CUT_BYTES, BATCH_RECORDS_CUT, compressWrite, compressWriteAsync, depthOf, isWithin, parentOf, type DataRecord, type NewRecord } from '../../shared/protocol/index.ts';
import { ownerOf, type Entry, type FileEntry, type Manifest } from '../manifest/index.ts';
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
  readEntryMeta,
  sameXattrHash,
  xattrProblem,
  type DiskMeta,
  type Parent,
  type RootRef,
  type UserNames,
} from '../tree/index.ts';
import { readBlocks, readBlocksSync, SYNC_READ_MAX_BYTES, type BlockReadOutcome, type FileStat } from './block-reader.ts';
import { compileExcludes, type ExcludeMatcher } from './exclude.ts';
import type { JournalSink } from './journal-sink.ts';
import { isRacy, kindOf, type EntryKind } from './stat-match.ts';
import { scanRoot } from './tree-scanner.ts';
import { RootWatcher } from './watcher.ts';

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
}

interface Hint {
  root: RootCtx;
  path: string;
  force: boolean;
}

type NewWrite = Extract<NewRecord, { op: 'write' }>;
type NewHole = Extract<NewRecord, { op: 'hole' }>;

/** Capture works at most this long before it lets the event loop run other callbacks. */
const YIELD_EVERY_MS = 5;

/** Files at least this big are read once they have been quiet for `settleMs`. */
const LARGE_FILE_BYTES = 4 * 1024 * 1024;
/** …but never later than this after the first hint, so a file that never stops growing still replicates. */
const MAX_QUIET_WAIT_MS = 2000;

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
  private splitCommit: Promise<unknown> | undefined;
  private markStarted: () => void = () => {};
  private readonly started = new Promise<void>((resolve) => (this.markStarted = resolve));

  constructor(private readonly opts: CaptureOptions) {
    this.log = opts.log.child({ component: 'capture' });
    for (const r of opts.roots) this.roots.set(r.name, { ...r, isExcluded: compileExcludes(r.exclude), real: r.path });
    this.users = opts.users ?? new UserDb(opts.clock);
    this.notices = new Notices(opts.clock, this.log);
    this.baseline = opts.baseline;
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
    this.noteXattrSupport();
    if (this.opts.watch !== false) {
      for (const root of this.roots.values()) {
        const w = new RootWatcher({
          root,
          isExcluded: root.isExcluded,
          onHint: (rel) => this.hint(root.name, rel),
          onDegraded: (reason) => (this.degraded = reason),
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
  }

  /** Says "look at this path again". Cheap; the loop coalesces hints. */
  hint(rootName: string, relPath: string, force = false): void {
    const root = this.roots.get(rootName);
    if (root === undefined || this.stopped) return;
    const key = `${rootName}\0${relPath}`;
    const prev = this.dirty.get(key);
    this.dirty.set(key, { root, path: relPath, force: force || (prev?.force ?? false) });
    if (this.running !== undefined) this.hintsDuringRound++;
    this.wake();
  }

  /**
   * Runs `fn` inside the capture loop, between rounds, with the right to journal records. Tasks
   * wait for start() to finish: during a baseline nothing is journaled, a task's records included.
   */
  async runTask(fn: (ctx: CaptureTaskContext) => Promise<void>): Promise<void> {
    await this.started;
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
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.state = 'stopped';
    this.stopping.abort(new Error('capture stopped'));
    this.loopTimer?.cancel();
    this.removalTimer?.cancel();
    this.scanTimer?.cancel();
    for (const t of this.rechecks.values()) t.cancel();
    this.rechecks.clear();
    await Promise.all([...this.watchers.values()].map((w) => w.close()));
    await this.running;
    for (const t of this.tasks.splice(0)) t.reject(new Error('capture stopped'));
  }

  // ---------------------------------------------------------------- the loop

  private isIdle(): boolean {
    return this.dirty.size === 0 && this.tasks.length === 0 && this.running === undefined && this.loopTimer === undefined;
  }

  private wake(now = false): void {
    if (this.stopped || this.running !== undefined || this.loopTimer !== undefined) return;
    this.loopTimer = this.opts.clock.setTimeout(() => {
      this.loopTimer = undefined;
      this.running = this.loop().finally(() => {
        this.running = undefined;
        if (this.dirty.size > 0 || this.tasks.length > 0) this.wake();
        else if (this.isIdle()) for (const w of this.idleWaiters.splice(0)) w();
      });
    }, now ? 0 : this.opts.batchDelayMs);
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
    for (const root of this.roots.values()) {
      try {
        this.heldRoots.set(root.name, { fd: openRoot(root.real), path: root.real });
      } catch {
        // Unreadable now: walks open it themselves and report why.
      }
    }
  }

  /** Where walks below `root` start (see holdRoots). */
  private rootRef(root: RootCtx): RootRef {
    return this.heldRoots.get(root.name) ?? root.real;
  }

  private async rounds(): Promise<void> {
    while (!this.stopped && (this.dirty.size > 0 || this.tasks.length > 0)) {
      const task = this.tasks.shift();
      if (task !== undefined) {
        try {
          await task.fn(this.taskContext());
          await this.commit();
          task.resolve();
        } catch (err) {
          task.reject(err);
        }
        continue;
      }
      const hints = [...this.dirty.values()];
      this.dirty.clear();
      this.hintsDuringRound = 0;
      this.roundTorn = false;
      this.roundSplit = false;
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
    }
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
  private append(r: NewRecord, decided = false): number {
    if (this.baseline) return 0;
    const level = this.opts.compressionLevel ?? 0;
    if (r.op === 'write' && level > 0 && !decided) r = compressWrite(r, level);
    const seq = this.opts.journal.append(r);
    this.counters.recordsJournaled++;
    if (this.appendListeners.size > 0) {
      const full = { ...r, seq } as DataRecord;
      for (const l of this.appendListeners) l(full);
    }
    return seq;
  }

  private async commit(): Promise<void> {
    await this.settleSplit();
    if (this.baseline) return;
    if (this.opts.journal.pendingBytes > 0) {
      const consistent = this.hintsDuringRound === 0 && !this.roundTorn && !this.roundSplit;
      await this.opts.journal.commit(consistent);
    }
    // Only now may the manifest be persisted: it must never claim what the journal lacks. Also
    // after a split commit took everything pending: the journal can be trimmed only up to what
    // the manifest reflects, so skipping this flush would keep a full journal full for good.
    await this.opts.afterCommit();
  }

  private async settleSplit(): Promise<void> {
    const p = this.splitCommit;
    this.splitCommit = undefined;
    await p;
  }

  /**
   * Lets timers and sockets run once capture has held the event loop for YIELD_EVERY_MS. With
   * channel.compression a block journaled on the event loop costs a deflate (about 1 ms per
   * 64 KiB block at level 6, bench/results/compression.md), so a synchronisation's 4 MiB run is
   * handed to the journal a few blocks at a time: the heartbeat keeps its rhythm.
   */
  private async breathe(): Promise<void> {
    if (this.opts.clock.monotonic() - this.breathStart <= YIELD_EVERY_MS) return;
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
    if (j.pendingBytes >= this.opts.batchBytes || j.pendingPayloadBytes >= BATCH_RAW_CUT_BYTES || j.pendingRecords >= BATCH_RECORDS_CUT) {
      this.roundSplit = true;
      // Read on while this batch is made durable; at most one such commit is in flight. The
      // manifest is flushed only by the round's last commit, which waits for this one.
      await this.settleSplit();
      this.splitCommit = j.commit(false);
      this.splitCommit.catch(() => {});
    }
    if (!j.hasSpace()) {
      await this.commit();
      this.waitingForSpace = true;
      this.log.info({ headSeq: j.headSeq }, 'capture: journal full, waiting for the passive to acknowledge');
      await j.waitForSpace(this.stopping.signal);
      this.waitingForSpace = false;
      this.log.info({}, 'capture: journal has room again');
    }
  }

  // ---------------------------------------------------------------- one path

  private async processPath(root: RootCtx, rel: string, force: boolean): Promise<void> {
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
      this.hint(root.name, err.component);
      return;
    }
    try {
      // Synchronous: a few microseconds from the inode cache, against a thread-pool round trip.
      const st = parent === undefined ? undefined : lstatAt(parent.at);
      const kind = st === undefined ? undefined : kindOf(st);
      const m = this.opts.manifest;
      if (parent === undefined || st === undefined || kind === undefined) {
        this.waitingSince.delete(key);
        if (m.get(root.name, rel) !== undefined) this.deferRemoval({ root, path: rel, force: false });
        else this.removals.delete(key); // already removed with its parent directory
        return;
      }
      this.removals.delete(key);
      if (!(await this.ensureParents(root, rel))) {
        // The parent is not a directory by the journal's account (it was just found to be a link,
        // or gone): nothing below it may be journaled. If it becomes a directory again, listing it
        // hints this path anew.
        this.scheduleRecheck(root, rel, this.opts.settleMs);
        return;
      }
      let cur = m.get(root.name, rel);
      if (cur === undefined || cur.ino !== st.ino || cur.kind !== kind) {
        if (await this.claimRename(root, rel, st, kind)) cur = m.get(root.name, rel);
      }
      switch (kind) {
        case 'dir':
          return await this.processDir(root, rel, parent, st, cur);
        case 'symlink':
          return this.processLink(root, rel, parent, st, cur);
        case 'file':
          return await this.processFile(root, rel, parent, st, cur, force);
      }
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

  private async processDir(root: RootCtx, rel: string, parent: Parent, st: Stats, cur: Entry | undefined): Promise<void> {
    const m = this.opts.manifest;
    const mode = st.mode & 0o7777;
    if (cur?.kind === 'dir' && cur.ino === st.ino) {
      // Owner, mode or attributes may have changed: only the ctime says so for the last two.
      if (cur.mode === mode && cur.uid === st.uid && cur.gid === st.gid && cur.ctimeMs === st.ctimeMs) return;
      const meta = this.readMeta(root, rel, parent, st);
      if (cur.mode !== mode || cur.uid !== st.uid || cur.gid !== st.gid || !sameXattrHash(cur.xattrHash, meta.xattrHash)) {
        this.append({ op: 'mkdir', root: root.name, path: rel, mode, ...meta.owner, xattrs: meta.xattrs });
      }
      m.set(root.name, rel, { ...cur, mode, ...ownerOf(meta.owner), xattrHash: meta.xattrHash, ctimeMs: st.ctimeMs });
      return;
    }
    if (cur?.kind === 'dir') {
      // Another directory under the same name: what the old one held is gone with it.
      this.append({ op: 'rmdir', root: root.name, path: rel });
      m.delete(root.name, rel);
    }
    const meta = this.readMeta(root, rel, parent, st);
    this.append({ op: 'mkdir', root: root.name, path: rel, mode, ...meta.owner, xattrs: meta.xattrs });
    m.set(root.name, rel, { kind: 'dir', mode, ino: st.ino, mtimeMs: st.mtimeMs, ...ownerOf(meta.owner), xattrHash: meta.xattrHash, ctimeMs: st.ctimeMs });
    // Watch first, then list: an entry created in between is seen by one or the other. Entries
    // created before the watch existed have no event of their own.
    const w = this.watchers.get(root.name);
    if (cur?.kind === 'dir') w?.unwatchTree(rel);
    await w?.watchTree(rel);
    const d = openDirAt(parent.fd, parent.name);
    if (d.kind !== 'dir') {
      this.hint(root.name, rel); // it changed again since the lstat
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
    for (const n of names) this.hint(root.name, `${rel}/${n}`);
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

  private async processFile(root: RootCtx, rel: string, parent: Parent, st: Stats, cur: Entry | undefined, force: boolean): Promise<void> {
    const m = this.opts.manifest;
    const key = `${root.name}\0${rel}`;
    const mode = st.mode & 0o7777;
    let prev: FileEntry | undefined = cur?.kind === 'file' ? cur : undefined;
    if (prev !== undefined && prev.ino === st.ino && prev.size === st.size && prev.mtimeMs === st.mtimeMs && !force && !isRacy(prev)) {
      this.waitingSince.delete(key);
      // The content is known; the owner, mode or attributes may not be (the ctime says they moved).
      if (prev.mode === mode && prev.uid === st.uid && prev.gid === st.gid && prev.ctimeMs === st.ctimeMs) return;
      const meta = this.readMeta(root, rel, parent, st);
      if (prev.mode !== mode || prev.uid !== st.uid || prev.gid !== st.gid || !sameXattrHash(prev.xattrHash, meta.xattrHash)) {
        this.append({ op: 'meta', root: root.name, path: rel, mode, mtimeMs: prev.mtimeMs, ...meta.owner, xattrs: meta.xattrs });
      }
      const entry: FileEntry = { ...prev, mode, ...ownerOf(meta.owner), xattrHash: meta.xattrHash, ctimeMs: st.ctimeMs, nlink: st.nlink };
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
    if (!this.baseline && st.size >= LARGE_FILE_BYTES && st.mtimeMs > now - this.opts.settleMs) {
      const since = this.waitingSince.get(key) ?? now;
      if (now - since < MAX_QUIET_WAIT_MS) {
        this.waitingSince.set(key, since);
        this.scheduleRecheck(root, rel, this.opts.settleMs);
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
    // Make the path a regular file of the size being read before any block of it.
    const onOpen = (stat: FileStat) => {
      if (prev === undefined || prev.size !== stat.size) {
        this.append({ op: 'file', root: root.name, path: rel, size: stat.size });
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
    const emit = (offset: number, chunk: Buffer, hashes: Buffer) => {
      for (const w of changedBlocks(offset, chunk, hashes)) {
        this.append(w);
        changed = true;
      }
    };
    const level = this.opts.compressionLevel ?? 0;
    const at = parent.at;
    const clockNow = () => this.opts.clock.now();
    let outcome: BlockReadOutcome | { kind: 'too-large' } = { kind: 'too-large' };
    if (st.size <= SYNC_READ_MAX_BYTES) {
      await this.makeRoom();
      outcome = readBlocksSync(at, bs, clockNow, emit, onOpen);
    }
    if (outcome.kind === 'too-large') {
      outcome = await readBlocks(at, bs, clockNow, async (offset, chunk, hashes) => {
        await this.makeRoom();
        if (level === 0) return emit(offset, chunk, hashes);
        // The changed blocks of a 1 MiB chunk compress side by side in the thread pool, off the
        // event loop (bench/results/compression.md); readBlocks reuses `chunk` only once this
        // returns, and the journal copies each block, so the views stay valid throughout.
        const records = await Promise.all(changedBlocks(offset, chunk, hashes).map((w) => (w.op === 'write' ? compressWriteAsync(w, level) : Promise.resolve(w))));
        for (const w of records) {
          this.append(w, true);
          changed = true;
        }
      }, onOpen);
    }
    if (outcome.kind === 'vanished') {
      if (m.get(root.name, rel) !== undefined) this.deferRemoval({ root, path: rel, force: false });
      return;
    }
    if (outcome.kind === 'not-a-file') {
      this.hint(root.name, rel); // it became a directory or a link since the lstat
      return;
    }
    this.counters.filesHashed++;
    this.counters.bytesHashed += outcome.size;
    const stat = outcome.stat;
    const meta = this.readMeta(root, rel, parent, st);
    const owner = { ...meta.owner, ...ownerFieldsOf(stat, this.users) };
    if (changed || prev === undefined || prev.mtimeMs !== stat.mtimeMs || prev.mode !== stat.mode || prev.uid !== stat.uid || prev.gid !== stat.gid || !sameXattrHash(prev.xattrHash, meta.xattrHash)) {
      this.append({ op: 'meta', root: root.name, path: rel, mode: stat.mode, mtimeMs: stat.mtimeMs, ...owner, xattrs: meta.xattrs });
    }
    const entry: FileEntry = {
      kind: 'file',
      mode: stat.mode,
      size: outcome.size,
      mtimeMs: stat.mtimeMs,
      ino: stat.ino,
      blocks: Buffer.from(outcome.blocks),
      readAt: outcome.readAt,
      ...ownerOf(owner),
      xattrHash: meta.xattrHash,
      ctimeMs: stat.ctimeMs,
      nlink: stat.nlink,
    };
    m.set(root.name, rel, entry);
    this.updateLinkedNames(root, rel, entry);
    if (outcome.torn) this.roundTorn = true;
    // Events come late and coalesced (and watchers are known to drop the last of a burst), and
    // an mtime this close to the read cannot prove the content unchanged: look again once the
    // file is quiet.
    if (outcome.torn || isRacy(entry)) this.scheduleRecheck(root, rel, this.opts.settleMs, true);
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
    const t0 = this.opts.clock.monotonic();
    let entries = 0;
    let hinted = 0;
    try {
      for (const root of this.roots.values()) {
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

