// The passive watches its own copy. Watcher events say *that* a name changed, late and without
// a writer, so they never tell the applier's writes from anyone else's; the manifest does: it
// holds the stat the applier left on each path after its last write. So every hint is checked
// against it once the applier is not working on that path (a path of the batch in flight waits
// for the batch to end), and a path that differs was changed by someone else. A file whose stat
// still matches but whose change time moved (bytes rewritten in place, then the mtime put back)
// is read and its block hashes compared with the manifest's. Changed paths stay reported until
// they are back to what the applier left (tandem verify --repair, or the active rewriting
// them), also across restarts. Periodic stat scans find what the watcher missed.
// It never writes to the protected trees, and never holds up or fails the applier.
import type { Stats } from 'node:fs';
import path from 'node:path';
import type { Clock, TimerHandle } from '../../shared/clock.ts';
import type { ProtectedRoot } from '../../shared/config/index.ts';
import type { Logger } from '../../shared/log.ts';
import type { DataRecord, RenameRecord } from '../../shared/protocol/index.ts';
import { compileExcludes, readBlocks, scanRoot } from '../capture/index.ts';
import type { ExcludeMatcher } from '../capture/exclude.ts';
import { RootWatcher } from '../capture/watcher.ts';
import type { Entry, Manifest } from '../manifest/index.ts';
import type { Alarm, ReceiverApplier } from '../replication/index.ts';
import { RateLimit } from '../replication/rate-limit.ts';
import { ParentDirs, lstatAt, openParentOrNone, readdirBeneath } from '../tree/index.ts';
import { InFlightPaths } from './in-flight-paths.ts';
import { ModifiedPaths } from './modified-paths.ts';
import { standbyDir } from './root-protection.ts';
import { blocksMatch, statDrift, type Drift } from './stat-drift.ts';

export interface StandbyWatchOptions {
  /** The protected roots at their own paths: where the copy is watched and read. */
  roots: ProtectedRoot[];
  manifest: Manifest;
  blockSize: number;
  stateDir: string;
  /** Pause between two full stat scans (capture.scanInterval); 0: none after the first. */
  scanIntervalMs: number;
  /** Bytes per second read to compare a file's content (verify.rate); 0: no limit. */
  rateBytesPerSec: number;
  /** The tree holds a state of the active: not before the first synchronisation, nor during one. */
  holdsReplica: () => boolean;
  /** The alarm appeared, changed or cleared. */
  onChange?: () => void;
  log: Logger;
  clock: Clock;
}

interface RootCtx {
  name: string;
  path: string;
  isExcluded: ExcludeMatcher;
  watcher: RootWatcher;
  /** Inode → change time (ms) of files last seen as the applier left them. */
  ctimes: Map<number, number>;
  /** Directory → its inode when last checked: a watch follows an inode, a replaced one needs a new watch. */
  dirInos: Map<string, number>;
}

interface PathRef {
  root: RootCtx;
  rel: string;
}

/** Hints are checked this long after they arrive, so that a burst is checked once per path. */
const HINT_DELAY_MS = 20;
/** Paths waiting for a check; beyond this hints are dropped and a full scan looks again. */
const MAX_PENDING = 65_536;
/** Files waiting to have their content compared. */
const MAX_EXAMS = 4096;
/** Checks run at most this long before timers and sockets get their turn. */
const SLICE_MS = 5;
const SAVE_DELAY_MS = 200;
/** Waits (of HINT_DELAY_MS) for a scan's hints to be checked before it decides on the overflow. */
const SCAN_SETTLE_ROUNDS = 100;
/**
 * A periodic scan waits while the applier applied a batch less than this long ago (a catch-up, a
 * burst): its lstat of every path cost the passive ~1 s of main thread in the middle of bench
 * (o)'s catch-up, and its findings there would only be checked again after the next batch.
 */
export const SCAN_QUIET_MS = 1000;
/** New changed paths logged one by one; beyond this only the alarm says how many. */
const LOGGED_PATHS = 100;

class ExamStopped extends Error {}

function keyOf(root: string, rel: string): string {
  return `${root}\0${rel}`;
}

function sameFile(a: Stats, b: Stats): boolean {
  return a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}

export class StandbyWatch {
  private readonly log: Logger;
  private readonly roots = new Map<string, RootCtx>();
  private readonly pending = new Map<string, PathRef>();
  /** Hinted while the batch in flight covered them: checked once it ends. */
  private readonly deferred = new Map<string, PathRef>();
  private readonly exams = new Map<string, PathRef & { dirty: boolean }>();
  /** Changed files read and found still different: their change time then (no need to read again before it moves). */
  private readonly examined = new Map<string, number>();
  private examining: (PathRef & { dirty: boolean }) | undefined;
  private examLoop: Promise<void> | undefined;
  private inflight: InFlightPaths | undefined;
  /** A batch that failed part-way: its paths may be ahead of the manifest until a retry succeeds. */
  private held: InFlightPaths | undefined;
  private ready = false;
  private stopped = false;
  private rescan = false;
  /** Changed paths the bound did not let us track, ever (compared across a full scan). */
  private dropped = 0;
  private scanning: Promise<void> | undefined;
  private starting: Promise<void> | undefined;
  private drainTimer: TimerHandle | undefined;
  /** Parent directories held open for one synchronous run of checks (withParents). */
  private parents: ParentDirs | undefined;
  private scanTimer: TimerHandle | undefined;
  /** When (monotonic) the applier last started or ended a batch; -Infinity: never. */
  private lastBatchMs = -Infinity;
  private saveTimer: TimerHandle | undefined;
  private saving: Promise<void> = Promise.resolve();
  private lastAlarm = '';
  private readonly rate: RateLimit | undefined;
  private readonly counters = { checks: 0, exams: 0, scans: 0 };

  private constructor(
    private readonly opts: StandbyWatchOptions,
    private readonly modified: ModifiedPaths,
  ) {
    this.log = opts.log.child({ component: 'standby' });
    this.rate = opts.rateBytesPerSec > 0 ? new RateLimit(opts.rateBytesPerSec, opts.clock) : undefined;
    for (const r of opts.roots) {
      const isExcluded = compileExcludes(r.exclude);
      const ctx: RootCtx = {
        name: r.name,
        path: r.path,
        isExcluded,
        ctimes: new Map(),
        dirInos: new Map(),
        watcher: new RootWatcher({
          root: r,
          isExcluded,
          onHint: (rel) => this.hint(ctx, rel),
          onDegraded: () => (this.rescan = true),
          log: this.log,
        }),
      };
      this.roots.set(r.name, ctx);
    }
    this.lastAlarm = modified.alarm()?.message ?? '';
  }

  /** Loads the paths found changed before (state directory); nothing is watched yet. */
  static async open(opts: StandbyWatchOptions): Promise<StandbyWatch> {
    const modified = await ModifiedPaths.load(path.join(standbyDir(opts.stateDir), 'modified.json'), opts.log);
    return new StandbyWatch(opts, modified);
  }

  /**
   * The applier as the receiver must call it: every batch is announced before it is applied
   * (its paths are not judged meanwhile) and its paths are checked once it is applied, when
   * the manifest holds what the applier left on them.
   */
  wrap(applier: ReceiverApplier): ReceiverApplier {
    return {
      // The applier's warnings (bits cleared, owners unapplied, swaps) stay visible through the wrap.
      ...(applier.noticeList === undefined ? {} : { noticeList: () => applier.noticeList!() }),
      apply: async (records, durable, opts) => {
        const fence = new InFlightPaths(records);
        this.inflight = fence;
        this.lastBatchMs = this.opts.clock.monotonic();
        if (this.examining !== undefined && fence.covers(this.examining.root.name, this.examining.rel)) this.examining.dirty = true;
        if (fence.syncBegins && this.modified.clearAll()) {
          this.examined.clear();
          this.log.info({}, "standby: a synchronisation rewrites the passive's copy; the paths changed by hand are forgotten");
          this.changed();
        }
        let point: { done: Promise<void> } | undefined | void;
        try {
          point = await applier.apply(records, durable, opts);
        } catch (err) {
          this.held = fence;
          throw err;
        } finally {
          this.inflight = undefined;
          this.lastBatchMs = this.opts.clock.monotonic();
        }
        this.held = undefined;
        try {
          this.afterBatch(fence, records);
        } catch (err) {
          this.log.warn({ err }, 'standby: cannot check the paths of a batch');
        }
        // A point still running behind (ApplyOptions.overlap) changes no path: the paths are
        // judged now, as applied.
        return point;
      },
    };
  }

  /**
   * Watches the roots (in the background: a large tree takes a while, and the passive need not
   * wait for it), then judges once `recovered` resolved (the batches held at start-up are applied
   * again: until then the disk may be ahead of the manifest) with a full scan, which also finds
   * what changed before the watches were in place.
   */
  start(recovered: Promise<unknown>): void {
    this.starting = (async () => {
      for (const root of this.roots.values()) await root.watcher.start();
      await recovered;
      if (this.stopped) return;
      this.ready = true;
      // A change that no stat shows any more (kept from before a restart) is read once.
      for (const f of this.modified.list()) {
        const root = this.roots.get(f.root);
        if (root !== undefined) this.enqueue(root, f.path);
      }
      void this.scanAll('start');
    })().catch((err: unknown) => this.log.warn({ err }, 'standby: cannot start watching the copy; scans look at it instead'));
  }

  /** TANDEM_ERR_PASSIVE_MODIFIED while paths differ from what the applier left there. */
  alarm(): Alarm | undefined {
    return this.modified.alarm();
  }

  /** Whether `rel` of `root` is held as changed by hand (verify sends such a path whole again). */
  isFlagged(root: string, rel: string): boolean {
    return this.modified.has(root, rel);
  }

  get isModified(): boolean {
    return this.modified.size > 0 || this.modified.overflow;
  }

  /** Figures for tests and logs. */
  stats(): { checks: number; exams: number; scans: number; pending: number; deferred: number } {
    return { ...this.counters, pending: this.pending.size, deferred: this.deferred.size };
  }

  /** `promoting`: the copy becomes the active's data, changed paths and all; they are forgotten. */
  async stop(opts: { promoting?: boolean } = {}): Promise<void> {
    this.stopped = true;
    this.drainTimer?.cancel();
    this.scanTimer?.cancel();
    this.saveTimer?.cancel();
    for (const root of this.roots.values()) await root.watcher.close();
    await this.starting;
    await this.scanning;
    await this.examLoop;
    await this.saving;
    if (opts.promoting === true) {
      const a = this.modified.alarm();
      if (a !== undefined) {
        this.log.warn({ code: a.code, details: a.details }, 'standby: taking over with paths changed by hand on this node: they are served as they are, and replicated so');
      }
      // Capture's start-up scan finds what a stat shows; a file whose bytes were changed under
      // the same stat is made to look "racy", so capture reads it again: what this node serves
      // is what its passive then receives.
      for (const f of this.modified.list()) {
        const e = this.opts.manifest.get(f.root, f.path);
        if (e?.kind === 'file') this.opts.manifest.set(f.root, f.path, { ...e, readAt: 0 });
      }
      await this.modified.remove().catch((err: unknown) => this.log.warn({ err }, 'standby: cannot remove the list of paths changed by hand'));
      return;
    }
    await this.modified.save().catch((err: unknown) => this.log.warn({ err }, 'standby: cannot save the list of paths changed by hand'));
  }

  // ---------------------------------------------------------------- hints and checks

  private judging(): boolean {
    return this.ready && !this.stopped && this.opts.holdsReplica();
  }

  private hint(root: RootCtx, rel: string): void {
    if (!this.judging()) {
      this.rescan = true;
      return;
    }
    this.enqueue(root, rel);
  }

  private enqueue(root: RootCtx, rel: string): void {
    if (this.stopped) return;
    if (this.pending.size >= MAX_PENDING) {
      this.rescan = true;
      return;
    }
    this.pending.set(keyOf(root.name, rel), { root, rel });
    this.drainTimer ??= this.opts.clock.setTimeout(() => this.drain(), HINT_DELAY_MS);
  }

  private drain(): void {
    this.drainTimer = undefined;
    this.withParents(() => this.drainSlice());
  }

  private drainSlice(): void {
    const t0 = this.opts.clock.monotonic();
    for (const [key, p] of this.pending) {
      this.pending.delete(key);
      try {
        this.check(p.root, p.rel);
      } catch (err) {
        this.log.warn({ err, root: p.root.name, path: p.rel }, 'standby: cannot check a path');
      }
      if (this.opts.clock.monotonic() - t0 > SLICE_MS && this.pending.size > 0) {
        this.drainTimer = this.opts.clock.setTimeout(() => this.drain(), 0);
        return;
      }
    }
    if (this.rescan && this.judging()) void this.scanAll('hints were dropped');
  }

  private fenced(root: string, rel: string): boolean {
    return this.inflight?.covers(root, rel) === true || this.held?.covers(root, rel) === true;
  }

  /** Compares one path with what the applier left there; synchronous, so no batch moves meanwhile. */
  private check(root: RootCtx, rel: string, descend = true): void {
    if (rel === '' || root.isExcluded(rel) || !this.judging()) return;
    if (this.fenced(root.name, rel)) {
      this.deferred.set(keyOf(root.name, rel), { root, rel });
      return;
    }
    // Every check runs inside a run of checks (drain, afterBatch); one outside starts its own.
    if (this.parents === undefined) return this.withParents(() => this.check(root, rel, descend));
    this.counters.checks++;
    // Walked without following a link (agent/tree): a path below a symbolic link is absent here,
    // as it is to the applier. A plain lstat of root/rel would follow a parent swapped for a link
    // and stat (or read) what lies outside the root.
    const st = this.parents.lstat(root.path, rel);
    this.keepWatched(root, rel, st);
    const entry = this.opts.manifest.get(root.name, rel);
    const drift = statDrift(entry, st);
    // What was reported below a directory is looked at again with it: nothing can be below a
    // path that is gone or is no directory (a directory made by hand, then moved away), and a
    // directory moved back in place brings back what was reported missing under it (a move
    // has an event for the directory alone). One level of this only: each path once.
    if (descend) {
      const below = this.modified.under(root.name, rel);
      if (st === undefined || !st.isDirectory()) for (const f of below) this.settleGone(root, f.path);
      else for (const f of below) this.check(root, f.path, false);
    }
    if (drift !== undefined) return this.raise(root, rel, drift);
    if (st === undefined || !st.isFile()) return this.settle(root, rel);
    if (this.modified.has(root.name, rel)) {
      // Reported changed and its stat is right again: read it, unless nothing happened to it
      // since it was last read and found still different.
      if (this.examined.get(keyOf(root.name, rel)) !== st.ctimeMs) this.queueExam(root, rel);
      return;
    }
    const known = root.ctimes.get(st.ino);
    if (known === undefined) root.ctimes.set(st.ino, st.ctimeMs);
    // Its stat matches, but something touched it since it was last seen right: read it.
    else if (known !== st.ctimeMs) this.queueExam(root, rel);
  }

  /** A directory is watched, and by a watch on its present inode (not one it replaced). */
  private keepWatched(root: RootCtx, rel: string, st: Stats | undefined): void {
    if (st?.isDirectory() !== true) {
      // Gone, or replaced by a file: a watch left there follows a deleted directory.
      root.dirInos.delete(rel);
      if (root.watcher.has(rel)) root.watcher.unwatchTree(rel);
      return;
    }
    const known = root.dirInos.get(rel);
    root.dirInos.set(rel, st.ino);
    // A directory Tandem never made (made by hand) is listed the first time it is seen, even when a
    // watch over its parent's tree already covers it: what was created in it before that watch
    // existed has no event of its own.
    const handMade = known === undefined && this.opts.manifest.get(root.name, rel) === undefined;
    if (root.watcher.has(rel) && !handMade && (known === undefined || known === st.ino)) return;
    root.watcher.unwatchTree(rel);
    this.watchNew(root, rel);
  }

  /** A directory not watched yet (new, moved here, or replaced): watch it, then look at what it holds. */
  private watchNew(root: RootCtx, rel: string): void {
    void root.watcher
      .watchTree(rel)
      // Listed without following a link above it (a name below a link is no name of the root).
      .then(() => readdirBeneath(root.path, rel) ?? [])
      .then((names) => {
        for (const n of names) this.hint(root, `${rel}/${n}`);
      })
      .catch(() => undefined); // gone meanwhile: its parent's watch says so
  }

  private raise(root: RootCtx, rel: string, what: Drift): void {
    const r = this.modified.flag(root.name, rel, what, this.opts.clock.now());
    if (r === 'dropped') {
      this.dropped++;
      this.changed();
      return;
    }
    if (r === 'known') return;
    if (this.modified.size <= LOGGED_PATHS) {
      this.log.warn({ code: 'TANDEM_ERR_PASSIVE_MODIFIED', root: root.name, path: rel, what }, "standby: a path of the passive's copy was changed by someone other than Tandem");
    }
    this.changed();
  }

  /** A reported path below one that is gone: settled when the manifest has nothing there either. */
  private settleGone(root: RootCtx, rel: string): void {
    if (this.opts.manifest.get(root.name, rel) === undefined) this.settle(root, rel);
    else this.check(root, rel, false);
  }

  private settle(root: RootCtx, rel: string): void {
    this.examined.delete(keyOf(root.name, rel));
    if (!this.modified.clear(root.name, rel)) return;
    this.log.info({ root: root.name, path: rel }, 'standby: a path changed by hand is back to what replication left there');
    this.changed();
  }

  private changed(): void {
    this.saveTimer ??= this.opts.clock.setTimeout(() => {
      this.saveTimer = undefined;
      this.saving = this.saving.then(() => this.modified.save()).catch((err: unknown) => this.log.warn({ err }, 'standby: cannot save the list of paths changed by hand'));
    }, SAVE_DELAY_MS);
    const message = this.modified.alarm()?.message ?? '';
    if (message === this.lastAlarm) return;
    if (message === '') this.log.info({}, "standby: the passive's copy is as replication left it again");
    this.lastAlarm = message;
    this.opts.onChange?.();
  }

  // ---------------------------------------------------------------- after a batch

  private afterBatch(fence: InFlightPaths, records: readonly DataRecord[]): void {
    this.withParents(() => this.afterBatchChecks(fence, records));
  }

  /**
   * Runs `fn` (synchronous checks) with each parent directory opened once (ParentDirs): the
   * paths of a batch share a few directories.
   */
  private withParents(fn: () => void): void {
    if (this.parents !== undefined) return fn();
    this.parents = new ParentDirs();
    try {
      fn();
    } finally {
      this.parents.close();
      this.parents = undefined;
    }
  }

  private afterBatchChecks(fence: InFlightPaths, records: readonly DataRecord[]): void {
    const judging = this.judging();
    for (const r of records) {
      if (r.op === 'rename') this.followRename(r);
      else if (r.op === 'rmdir') this.roots.get(r.root)?.watcher.unwatchTree(r.path);
    }
    for (const p of fence.paths()) {
      const root = this.roots.get(p.root);
      if (root === undefined) continue;
      // The applier changed these files: their change time moved with it.
      const e = this.opts.manifest.get(p.root, p.path);
      if (e?.kind === 'file') root.ctimes.delete(e.ino);
      if (!judging) continue;
      // This check comes after every event the batch's own writes made so far: a hint of the
      // path held back while the batch ran would only check it once more (it was every path's
      // second check). A later event is checked as it comes.
      this.deferred.delete(keyOf(p.root, p.path));
      this.check(root, p.path);
      for (const f of this.modified.under(p.root, p.path)) this.check(root, f.path);
    }
    for (const [key, p] of this.deferred) {
      this.deferred.delete(key);
      this.enqueue(p.root, p.rel);
    }
    if (fence.syncEnds || (judging && this.rescan)) void this.scanAll(fence.syncEnds ? 'synchronisation complete' : 'hints were dropped');
  }

  /** inotify watches follow a moved directory's inode: record them under its new name. */
  private followRename(r: RenameRecord): void {
    const root = this.roots.get(r.root);
    if (root === undefined || this.opts.manifest.get(r.root, r.to)?.kind !== 'dir') return;
    void root.watcher.moveTree(r.path, r.to).catch(() => undefined);
  }

  // ---------------------------------------------------------------- content

  private queueExam(root: RootCtx, rel: string): void {
    if (this.exams.size >= MAX_EXAMS) {
      this.rescan = true;
      return;
    }
    this.exams.set(keyOf(root.name, rel), { root, rel, dirty: false });
    this.examLoop ??= this.runExams().finally(() => (this.examLoop = undefined));
  }

  /** One file at a time, at most verify.rate: a flood of touched files cannot take the disk. */
  private async runExams(): Promise<void> {
    while (!this.stopped) {
      const next = this.exams.entries().next();
      if (next.done === true) return;
      const [key, e] = next.value;
      this.exams.delete(key);
      this.examining = e;
      try {
        await this.exam(e);
      } catch (err) {
        if (!(err instanceof ExamStopped)) this.log.warn({ err, root: e.root.name, path: e.rel }, 'standby: cannot read a file to compare it');
      } finally {
        this.examining = undefined;
      }
    }
  }

  private async exam(e: PathRef & { dirty: boolean }): Promise<void> {
    const { root, rel } = e;
    // The file is read through its parent's descriptor, never through a link above it.
    const parent = openParentOrNone(root.path, rel);
    if (parent === undefined) return this.enqueue(root, rel);
    let st1: Stats | undefined;
    let read: Awaited<ReturnType<typeof readBlocks>>;
    try {
      const st0 = lstatAt(parent.at);
      if (st0 === undefined || !st0.isFile() || this.fenced(root.name, rel)) return this.enqueue(root, rel);
      this.counters.exams++;
      read = await readBlocks(parent.at, this.opts.blockSize, () => this.opts.clock.now(), async (_offset, chunk) => {
        // A promotion waits for the watch to stop: never for the rest of a large file.
        if (this.stopped) throw new ExamStopped();
        for (let d = this.rate?.delayFor(chunk.length) ?? 0; d > 0 && !this.stopped; d = this.rate!.delayFor(chunk.length)) await this.sleep(d);
      });
      st1 = lstatAt(parent.at);
      if (st1 !== undefined && !sameFile(st0, st1)) st1 = undefined;
    } finally {
      parent.close();
    }
    // Changed while read, or the applier came by: judge it again from the start.
    if (this.stopped) return;
    if (e.dirty || this.fenced(root.name, rel) || st1 === undefined || read.kind !== 'file' || read.torn) return this.enqueue(root, rel);
    if (!this.judging()) return;
    const entry: Entry | undefined = this.opts.manifest.get(root.name, rel);
    const drift = statDrift(entry, st1);
    if (drift !== undefined) return this.raise(root, rel, drift);
    if (entry?.kind !== 'file') return;
    // Until its change time moves again, what was found now holds.
    root.ctimes.set(st1.ino, st1.ctimeMs);
    if (blocksMatch(entry.blocks, read.blocks)) return this.settle(root, rel);
    this.raise(root, rel, 'content');
    if (this.modified.has(root.name, rel)) this.examined.set(keyOf(root.name, rel), st1.ctimeMs);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.opts.clock.setTimeout(resolve, ms));
  }

  // ---------------------------------------------------------------- scans

  /** A stat scan of every root; ends the overflow when every changed path it found is tracked. */
  private scanAll(reason: string): Promise<void> {
    if (this.scanning !== undefined) {
      this.rescan = true;
      return this.scanning;
    }
    this.scanTimer?.cancel();
    this.scanTimer = undefined;
    this.rescan = false;
    const droppedBefore = this.dropped;
    const t0 = this.opts.clock.monotonic();
    this.scanning = (async () => {
      let entries = 0;
      let hinted = 0;
      for (const root of this.roots.values()) {
        const seen = new Set<number>();
        const r = await scanRoot(
          { name: root.name, path: root.path, exclude: [] },
          this.opts.manifest,
          root.isExcluded,
          (rel) => this.hint(root, rel),
          () => !this.judging(),
          (entry, st, rel) => this.looksUnchanged(root, rel, entry, st, seen),
        );
        entries += r.entries;
        hinted += r.hinted;
        // Inodes of files gone since: forget them (bounded by what the tree holds).
        if (!this.stopped && root.ctimes.size > seen.size + 1024) for (const ino of root.ctimes.keys()) if (!seen.has(ino)) root.ctimes.delete(ino);
      }
      this.counters.scans++;
      // What it hinted is checked (and read, if need be) before it counts as complete; under a
      // steady stream of hints that may not happen soon, and the overflow waits for a later one.
      for (let round = 0; round < SCAN_SETTLE_ROUNDS && !this.stopped && (this.pending.size > 0 || this.examLoop !== undefined); round++) {
        await (this.examLoop ?? this.sleep(HINT_DELAY_MS));
      }
      const settled = this.pending.size === 0 && this.examLoop === undefined;
      if (settled && this.judging() && this.dropped === droppedBefore && this.modified.endOverflow()) this.changed();
      this.log.debug({ ...this.counters, reason, entries, hinted, durationMs: Math.round(this.opts.clock.monotonic() - t0), modified: this.modified.size }, 'standby: scan complete');
    })()
      .catch((err: unknown) => this.log.warn({ err, reason }, 'standby: scan failed; the next one tries again'))
      .finally(() => {
        this.scanning = undefined;
        if (this.stopped) return;
        if (this.rescan && this.judging()) void this.scanAll('hints were dropped');
        else if (this.opts.scanIntervalMs > 0) this.scanTimer ??= this.opts.clock.setTimeout(() => this.periodicDue(this.opts.clock.monotonic()), this.opts.scanIntervalMs);
      });
    return this.scanning;
  }

  /**
   * The periodic scan, due since `dueMs` (monotonic): run now, unless the applier is at work
   * (a batch less than SCAN_QUIET_MS ago); then it waits for a pause, at most one more
   * capture.scanInterval, so that a passive that is never idle is still scanned.
   */
  private periodicDue(dueMs: number): void {
    this.scanTimer = undefined;
    if (this.stopped) return;
    const now = this.opts.clock.monotonic();
    const quietIn = this.lastBatchMs + SCAN_QUIET_MS - now;
    if (this.inflight !== undefined || (quietIn > 0 && now - dueMs < this.opts.scanIntervalMs)) {
      const wait = Math.min(Math.max(quietIn, SCAN_QUIET_MS / 4), dueMs + this.opts.scanIntervalMs - now);
      if (wait > 0) {
        this.scanTimer = this.opts.clock.setTimeout(() => this.periodicDue(dueMs), wait);
        return;
      }
    }
    void this.scanAll('periodic');
  }

  /**
   * The scan's test: a path is hinted (checked) unless its stat and its change time say nothing
   * happened. A directory not watched yet (made while nothing was judged: a synchronisation) is
   * hinted too, and the check watches it.
   */
  private looksUnchanged(root: RootCtx, rel: string, entry: Entry | undefined, st: Stats, seen: Set<number>): boolean {
    if (st.isFile()) seen.add(st.ino);
    if (statDrift(entry, st) !== undefined) return false;
    if (!st.isFile()) return !st.isDirectory() || root.watcher.has(rel);
    const known = root.ctimes.get(st.ino);
    if (known !== undefined) return known === st.ctimeMs;
    root.ctimes.set(st.ino, st.ctimeMs);
    return true;
  }
}
