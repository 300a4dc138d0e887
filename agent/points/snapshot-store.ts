// The read-only snapshots of one protected root that is a btrfs subvolume: where they live
// (a private directory beside the root, on the same file system, never inside it), taking
// them, listing what changed between two of them, and deleting them once capture no longer
// reads them, several at a time (each btrfs command is a fork of the agent, and a fork of a
// large process costs page tables). Snapshots left by a killed agent are deleted at the next start.
//
// What lives in the points directory is a copy of the protected data (as of a moment ago, files
// removed since included), so the directory is root's alone (0700), and one that is not a plain
// directory owned by the agent's user (a link, someone else's) is refused, never used.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Clock, TimerHandle } from '../../shared/clock.ts';
import { describeCause } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { Btrfs } from './btrfs.ts';
import type { ChangeSet } from './change-list.ts';
import { SUBVOLUME_ROOT_INO } from './consistency-mode.ts';

export interface Snapshot {
  /** Its directory: a tree to read from, exactly as the root was at one instant. */
  path: string;
  /** Wall-clock ms just before it was asked for: everything written before this is in it. */
  at: number;
  /**
   * Wall-clock ms once it was known made: its instant lies between `at` and this. Under load
   * that is hundreds of ms (the child starts, btrfs flushes the root's dirty data), so a file
   * stamped in between may still be written within the same timestamp tick after the instant.
   */
  doneAt: number;
  /** How long taking it took (ms). */
  tookMs: number;
}

export interface SnapshotStoreOptions {
  /** The protected root (a subvolume's root directory). */
  root: string;
  /** Where its snapshots go (defaultPointsDir). */
  dir: string;
  btrfs: Btrfs;
  clock: Clock;
  log: Logger;
  /** Snapshots no longer read are deleted once this many wait (default DELETE_BATCH). */
  deleteBatch?: number;
  /** …or once the oldest of them has waited this long (default DELETE_AFTER_MS). */
  deleteAfterMs?: number;
}

/**
 * Snapshots dropped are deleted by one `btrfs subvolume delete` once this many wait: at a point
 * every 500 ms that is one command every 4 s instead of one a round (bench/results/points-cpu.md).
 */
export const DELETE_BATCH = 8;
/** A snapshot dropped waits at most this long for its deletion (an idle root drops one now and then). */
export const DELETE_AFTER_MS = 5000;

const SNAPSHOT_NAME = /^\d{1,15}$/;

/**
 * Why `dir` (and the `.tandem-points` directory above it) cannot hold snapshots, creating them
 * when missing; undefined when it can. Never follows a link, never takes over a directory that
 * belongs to someone else.
 */
export function preparePointsDir(dir: string): string | undefined {
  const uid = process.getuid?.() ?? 0;
  const top = path.dirname(dir);
  const parent = path.dirname(top);
  try {
    const ps = fs.statSync(parent);
    // Anyone who may rename entries of the parent could swap the points directory for a link.
    if ((ps.mode & 0o022) !== 0 && (ps.mode & 0o1000) === 0) return `the points directory's parent ${parent} is writable by others (mode ${(ps.mode & 0o7777).toString(8)})`;
  } catch (err) {
    return `the points directory's parent ${parent} cannot be read: ${describeCause(err)}`;
  }
  for (const d of [top, dir]) {
    try {
      fs.mkdirSync(d, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return `cannot create the points directory ${d}: ${describeCause(err)}`;
    }
    let st: fs.Stats;
    try {
      st = fs.lstatSync(d);
    } catch (err) {
      return `cannot read the points directory ${d}: ${describeCause(err)}`;
    }
    if (st.isSymbolicLink() || !st.isDirectory()) return `the points directory ${d} is not a directory (a link or a file stands there)`;
    if (st.uid !== uid) return `the points directory ${d} belongs to uid ${st.uid}, not to the agent's user`;
    if ((st.mode & 0o077) !== 0) fs.chmodSync(d, 0o700);
  }
  return undefined;
}

export class SnapshotStore {
  private next = 1;
  private readonly live: Snapshot[] = [];
  private deleting: Promise<void> = Promise.resolve();
  /** Dropped, not yet handed to btrfs: deleted together (see DELETE_BATCH). */
  private doomed: string[] = [];
  private doomTimer: TimerHandle | undefined;
  private readonly log: Logger;

  constructor(private readonly opts: SnapshotStoreOptions) {
    this.log = opts.log.child({ component: 'points' });
  }

  get dir(): string {
    return this.opts.dir;
  }

  /** Deletes snapshots a killed agent left in the points directory (and only those). */
  async removeLeftovers(): Promise<void> {
    let names: string[];
    try {
      names = await fsp.readdir(this.opts.dir);
    } catch {
      return;
    }
    const old: string[] = [];
    for (const n of names) {
      const p = path.join(this.opts.dir, n);
      const st = await fsp.lstat(p).catch(() => undefined);
      if (SNAPSHOT_NAME.test(n) && st?.isDirectory() === true && st.ino === SUBVOLUME_ROOT_INO) old.push(p);
      else this.log.warn({ path: p }, 'points: an entry that is not a snapshot of this agent is in the points directory; left alone');
    }
    if (old.length === 0) return;
    await this.opts.btrfs.delete(old);
    this.log.info({ root: this.opts.root, snapshots: old.length }, 'points: deleted the snapshots left by an earlier run');
  }

  /** Takes a read-only snapshot of the root now. */
  async take(): Promise<Snapshot> {
    const p = path.join(this.opts.dir, String(this.next++));
    const at = this.opts.clock.now();
    const t0 = this.opts.clock.monotonic();
    await this.opts.btrfs.snapshot(this.opts.root, p);
    const tookMs = this.opts.clock.monotonic() - t0;
    const snap = { path: p, at, doneAt: at + Math.ceil(tookMs), tookMs: Math.round(tookMs) };
    this.live.push(snap);
    return snap;
  }

  /**
   * Takes a read-only snapshot of the root now and lists what changed since `older` (taken by
   * this store), in one btrfs child (Btrfs.snapshotAndChanges). Throws when no snapshot was
   * taken; a listing that failed comes back as its error, the snapshot being good.
   */
  async takeAndList(older: Snapshot, blockSize: number): Promise<{ snap: Snapshot; changes: ChangeSet | Error; listMs: number }> {
    const p = path.join(this.opts.dir, String(this.next++));
    const at = this.opts.clock.now();
    const t0 = this.opts.clock.monotonic();
    let r: Awaited<ReturnType<Btrfs['snapshotAndChanges']>>;
    try {
      r = await this.opts.btrfs.snapshotAndChanges(this.opts.root, p, older.path, blockSize);
    } catch (err) {
      // Killed at its deadline after the snapshot was made, before it said so: still deleted.
      const st = await fsp.lstat(p).catch(() => undefined);
      if (st?.isDirectory() === true && st.ino === SUBVOLUME_ROOT_INO) {
        const orphan = { path: p, at, doneAt: at, tookMs: 0 };
        this.live.push(orphan);
        this.drop(orphan);
      }
      throw err;
    }
    // Known made only when the child said so, its listing after: the bound includes both.
    const snap = { path: p, at, doneAt: at + Math.ceil(this.opts.clock.monotonic() - t0), tookMs: r.snapshotMs };
    this.live.push(snap);
    return { snap, changes: r.changes, listMs: Math.max(0, this.opts.clock.monotonic() - t0 - r.snapshotMs) };
  }

  /** What changed from `older` to `newer` (both taken by this store). */
  changes(older: Snapshot, newer: Snapshot, blockSize: number): Promise<ChangeSet> {
    return this.opts.btrfs.changes(older.path, newer.path, blockSize);
  }

  /**
   * Deletes `snap` in the background, with the others dropped meanwhile: at once when
   * DELETE_BATCH wait, else DELETE_AFTER_MS after the first of them was dropped.
   */
  drop(snap: Snapshot | undefined): void {
    if (snap === undefined) return;
    const i = this.live.indexOf(snap);
    if (i < 0) return;
    this.live.splice(i, 1);
    this.doomed.push(snap.path);
    if (this.doomed.length >= (this.opts.deleteBatch ?? DELETE_BATCH)) this.flush();
    else this.doomTimer ??= this.opts.clock.setTimeout(() => this.flush(), this.opts.deleteAfterMs ?? DELETE_AFTER_MS);
  }

  /** How many dropped snapshots still wait for their deletion (status, tests). */
  get waitingDeletion(): number {
    return this.doomed.length;
  }

  /** Resolves once every deletion handed to btrfs so far has ended (those still waiting are not handed yet). */
  async deletionsEnded(): Promise<void> {
    await this.deleting;
  }

  /** Hands every dropped snapshot to one deletion, after the deletions asked before it. */
  private flush(): void {
    this.doomTimer?.cancel();
    this.doomTimer = undefined;
    const paths = this.doomed;
    if (paths.length === 0) return;
    this.doomed = [];
    this.deleting = this.deleting.then(() =>
      this.opts.btrfs.delete(paths).catch((err: unknown) => this.log.warn({ err, paths }, 'points: snapshots could not be deleted; the next start deletes them')),
    );
  }

  /** Deletes every snapshot this store holds; resolves once btrfs took every deletion. */
  async close(): Promise<void> {
    for (const s of [...this.live]) this.drop(s);
    this.flush();
    await this.deleting;
  }
}
