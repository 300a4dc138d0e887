// The passive's applier: turns the ordered data records of the write log into the state of the
// protected trees on disk, and reports how far that state is durable. Every path record is an
// absolute setter, so re-applying a run of records after a crash converges to the same tree;
// `rename` is the exception and therefore a commit barrier. It must never write outside a
// protected root, never follow a symbolic link, never grant a privilege without the owner it
// came with, and never report a record durable before it is.
import fs, { constants as C, type Stats } from 'node:fs';
import { WRITE_BEHIND_MIN_BYTES, syncFs, writeAllWith, type SyncFile } from './sync-fs.ts';
import { findSync, SyncfsHelper } from './whole-fs-sync.ts';
import { TandemError, errnoOf } from '../../shared/errors.ts';
import { hash64, initHash } from '../../shared/hash.ts';
import type { Logger } from '../../shared/log.ts';
import { Notices, type Notice } from '../../shared/notices.ts';
import { systemClock, type Clock } from '../../shared/clock.ts';
import type { ProtectedRoot } from '../../shared/config/load.ts';
import {
  dataVerified,
  decompressWrite,
  isWithin,
  parentOf,
  type DataRecord,
  type FileRecord,
  type HardlinkRecord,
  type HoleRecord,
  type MetaRecord,
  type MkdirRecord,
  type PathRecord,
  type RenameRecord,
  type SymlinkRecord,
  type WriteRecord,
} from '../../shared/protocol/index.ts';
import { applyRecordToManifest, newFileEntry, type Manifest } from '../manifest/index.ts';
import {
  CAPABILITY_XATTR,
  DIR_FLAGS,
  PRIVILEGE_BITS,
  PathSwapped,
  UserDb,
  at,
  closeFd,
  decideOwner,
  isAclXattr,
  localizeAcls,
  lstatAt,
  openDirAt,
  openDirBeneath,
  removeTreeAt,
  writeXattrs,
  hasDefaultAcl,
  type XattrWrite,
  xattrProblem,
  xattrsHash,
  type OwnerLookup,
  type OwnersMode,
  type Xattr,
  type FileStat,
} from '../tree/index.ts';
import { PathGuard, SWAPPED_HINT, closeLoc, lstatOrUndefined, outsideRootError, type Loc, type WalkMode } from './path-guard.ts';
import { ioCounters } from '../../shared/io-counters.ts';
import { TimeSlice } from '../../shared/time-slice.ts';
import { NEW_FILES_MAX, NEW_FILES_MAX_BYTES, NEW_FILES_MIN, NewFileWorker, newFileAt, type NewFile, type NewFileJob, type NewFilesResult, NEW_FILE_FLAGS } from './new-files.ts';

/** Files kept open inside one apply call; beyond this the least recently used is synced and closed. */
export const MAX_OPEN_FILES = 64;
/** Mode of parent directories the applier creates. */
export const CREATED_DIR_MODE = 0o755;
/**
 * Mode of a file the applier creates, until its `meta` says otherwise: owner-only, so a file
 * that is 0600 on the active is never readable by others on the passive, not even between its
 * creation and its meta.
 */
export const CREATED_FILE_MODE = 0o600;
/** Files synced and closed together when the limit is passed. */
const EVICT_BATCH = 16;
/** Evicted files whose fsync may still run in the background (each holds its descriptor until then). */
const BACKGROUND_SYNCS_MAX = 256;
/**
 * Dirty files evicted between two durable points that are fsynced one by one; those after them
 * are closed unsynced and the durable point syncs their file system whole (whole-fs-sync.ts).
 */
export const SYNCFS_AFTER_FILES = 32;
/**
 * A durable point with more dirty files and directories than this syncs their file systems once
 * (whole-fs-sync.ts) instead of fsyncing each: a few dozen new small files fsynced from the
 * thread pool's four threads cost a journal commit per round (point p50 26-44 ms in bench (a),
 * against 16-19 ms for one syncfs). A point of a few files keeps its fsyncs: they cost less than
 * flushing whatever else the file system holds dirty.
 */
export const SYNCFS_AT_POINT_AFTER = 16;
/**
 * A durable point of at most SYNCFS_AT_POINT_AFTER files, whose group wrote at least this much
 * file data, runs behind the next group too (ApplyOptions.overlap), each file fsynced through its
 * own descriptor: a large file's next blocks are then written while the last ones reach the
 * disk, where the point in the call left the disk idle while they were written, and the writing
 * idle while they were flushed. A point of a few small writes stays in the call: it costs less
 * than opening the files again.
 */
export const FSYNC_BEHIND_BYTES = 8 * 1024 * 1024;
/** Zeros written at once for a hole inside a file (Node cannot punch one). */
const ZERO_CHUNK = Buffer.alloc(1 << 20);

const OPEN_WRITE = C.O_WRONLY | C.O_NOFOLLOW | C.O_NONBLOCK;
const OPEN_READ = C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK;

/**
 * Test seams. Production code leaves them unset; tests use them to simulate a crash at a given
 * record, a full disk, or to observe which descriptors were made durable.
 */
export interface ApplierSeams {
  /** Called before each record is applied; a throw fails the apply at that record. */
  beforeRecord?: (record: DataRecord) => void | Promise<void>;
  /** Replaces the positional writev of file data; returns the bytes written. */
  writev?: (fd: number, buffers: Uint8Array[], position: number) => Promise<number>;
  /** Replaces WRITE_BEHIND_MIN_BYTES (0: every write behind). */
  writeBehindMinBytes?: number;
  /** Replaces fsync of files and directories at durable points. */
  fsync?: (fd: number) => Promise<void>;
  /** Replaces the syncfs of a root's file system (its path given); absent, `sync -f` runs it. */
  syncfs?: (rootPath: string) => Promise<void>;
  /** Replaces SYNCFS_AFTER_FILES (Infinity: every file fsynced on its own, SYNCFS_AT_POINT_AFTER too). */
  syncfsAfterFiles?: number;
  /** Called after something standing where a parent directory must be was removed (a race's other half). */
  inTheWayRemoved?: (root: string, rel: string) => void;
  /** False: every new file takes the record-by-record path, never the worker's (new-files.ts). */
  newFilesWorker?: boolean;
  /** Called when a run of new files is about to go to the worker, its parents walked and open. */
  newFilesHandOver?: (files: number) => void | Promise<void>;
}

/**
 * A durable point running behind the caller (ApplyOptions.overlap): `done` settles once it
 * reported (a promise inside an object: an async function's result would wait for it).
 */
export interface PointBehind {
  done: Promise<void>;
}

/** How one apply() call ends (see Applier.apply). */
export interface ApplyOptions {
  /**
   * Let the last durable point run after apply() returns, while the caller applies what comes
   * next: apply() then resolves with that point's promise once every record is applied and the
   * point has started. It runs only when one syncfs per root covers everything it makes durable,
   * or when the call wrote FSYNC_BEHIND_BYTES into files no syncfs covers and changed no
   * directory outside one (a point of a few small writes keeps its fsyncs, in the call).
   */
  overlap?: boolean;
  /**
   * The previous call's point (overlap), which every durable point of this call waits for first:
   * points complete, and report, in order; and before its own point starts this call waits for
   * it, so at most one runs behind the caller. A failure of it fails this call.
   */
  after?: Promise<void> | undefined;
  /**
   * Called once, when every record is applied and the manifest holds their effects, just before
   * a point that overlaps starts: what the caller persists when that point reports is what the
   * manifest held then, not what the next call writes into it meanwhile.
   */
  applied?: () => void;
}

export interface ApplierOptions {
  roots: ProtectedRoot[];
  manifest: Manifest;
  blockSize: number;
  log: Logger;
  clock?: Clock;
  seams?: ApplierSeams;
  /** replication.owners: how the owners records carry are applied (default numeric). */
  owners?: OwnersMode;
  /** This node's users and groups by name (owners: names); the system's by default. */
  users?: OwnerLookup;
}

interface OpenFile {
  key: string;
  root: string;
  rel: string;
  fh: SyncFile;
  /** The walk it was opened through. */
  loc: Loc;
  /** The inode it was opened on: a later record uses it only if its path still leads there. */
  ino: number;
  dev: number;
  writable: boolean;
  /** Written, truncated, created or chmod-ed since the last durable point: needs fsync. */
  dirty: boolean;
  /** Written or truncated since its stat was last copied into the manifest. */
  statPending: boolean;
  /** Created by this call (O_EXCL) and no meta applied since: it holds only what its creation gave it. */
  created: boolean;
  /** Its owner and mode (0o7777) when opened, and as this call's metas set them since. */
  uid: number;
  gid: number;
  mode: number;
  /** Its size when opened (0 when created): what a file record met right after the open finds. */
  size: number;
}

/** A file system error of one record, wrapped at the record boundary with its context. */
/** Waits for every one of `jobs` (none is left running), then throws the first failure. */
async function allOrFirstFailure(jobs: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(jobs);
  const failed = results.find((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
}

function applyFailed(err: unknown, op: string, seq: number, root: string, relPath: string, extra: Record<string, unknown> = {}): TandemError {
  if (err instanceof TandemError) return err;
  const errno = errnoOf(err) ?? 'UNKNOWN';
  return TandemError.wrap(err, {
    code: 'TANDEM_ERR_APPLY_FAILED',
    op: `apply ${op} ${root}/${relPath}`,
    hint: hintFor(errno),
    details: { seq, root, path: relPath, errno, ...extra },
  });
}

/** What the operator can do about a refused write. The caller pauses and retries; nothing is skipped. */
export function hintFor(errno: string): string {
  switch (errno) {
    case 'ENOSPC':
    case 'EDQUOT':
      return "free space (or raise the quota) on the passive's file system holding the protected root; replication is paused and resumes from the last durable record once there is room";
    case 'EACCES':
    case 'EPERM':
      return "give the agent's user write permission on the protected root on the passive (check ownership, modes and immutable attributes with lsattr); replication resumes by itself";
    case 'EROFS':
      return "the passive's file system is read-only: check dmesg for errors, repair it and remount it read-write; replication resumes by itself";
    case 'EIO':
      return "the passive's disk reported an I/O error: check dmesg and the disk before trusting this node; replication retries from the last durable record";
    case 'EMFILE':
    case 'ENFILE':
      return 'raise the open file limit of the agent (LimitNOFILE) or of the system';
    default:
      return "check the passive's file system under the protected root; replication retries from the last durable record";
  }
}

/** Where the write records at `from` and after, for the path of `file`, end at most (0 for none). */
function writesEndAt(records: DataRecord[], from: number, file: FileRecord): number {
  let end = 0;
  for (let k = from; k < records.length; k++) {
    const w = records[k]!;
    if (w.op !== 'write' || w.root !== file.root || w.path !== file.path) break;
    end = Math.max(end, w.offset + w.data.length);
  }
  return end;
}

function keyOf(root: string, rel: string): string {
  return `${root}\0${rel}`;
}

/** A run of new files ready for the worker (Applier.prepareNewFiles). */
interface NewFilesRun {
  files: NewFile[];
  /** keyOf each of its files. */
  keys: Set<string>;
  jobs: NewFileJob[];
  data: Uint8Array<ArrayBuffer>;
  /** Its parents, open until the worker is done with the run, and the group a new file gets there. */
  dirs: Map<string, { loc: Loc; want: string; newGid: number }>;
  /** Index of the record after its last file's meta. */
  end: number;
}

/** Closes a run's parents; its bytes' buffer goes back to `worker` unless it was sent. */
function closeNewFilesRun(run: NewFilesRun | undefined, worker: NewFileWorker): void {
  if (run === undefined) return;
  for (const d of run.dirs.values()) closeLoc(d.loc);
  run.dirs.clear();
  worker.giveBack(run.data);
}

/** Whether a directory above `rel` is one of `keys` (keyOf paths of root `root`). */
function underAny(keys: Set<string>, root: string, rel: string): boolean {
  for (let i = rel.indexOf('/'); i >= 0; i = rel.indexOf('/', i + 1)) if (keys.has(keyOf(root, rel.slice(0, i)))) return true;
  return false;
}

/** Seconds as a double, the unit of futimes/utimes: number keeps sub-millisecond precision, a Date would not. */
function toSeconds(ms: number): number {
  return ms / 1000;
}

/** A record skipped because a parent kept being swapped (TANDEM_ERR_PATH_SWAPPED): reported, never retried for ever. */
function isSwapped(err: unknown): err is TandemError {
  return err instanceof TandemError && err.code === 'TANDEM_ERR_PATH_SWAPPED';
}

export class Applier {
  private readonly opts: ApplierOptions;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly manifest: Manifest;
  private readonly seams: ApplierSeams;
  private readonly owners: OwnersMode;
  private readonly users: OwnerLookup;
  private readonly notices: Notices;
  private readonly rootPaths = new Map<string, string>();
  private guard: PathGuard | undefined;
  /** Open files in least-recently-used order (Map keeps insertion order; a use re-inserts). */
  private readonly open = new Map<string, OpenFile>();
  /** Directories whose entries or own metadata changed since the last durable point. */
  private readonly dirtyDirs = new Map<string, { root: string; rel: string }>();
  /** fsyncs of evicted files still running (see evictOldest), oldest first. */
  private readonly syncing: Promise<void>[] = [];
  /** Dirty files evicted since the last durable point. */
  private evictedDirty = 0;
  /** File data written since the last durable point (zeros of holes included). */
  private writtenSincePoint = 0;
  /** Roots with files closed unsynced since the last durable point: it syncs their file systems whole. */
  private readonly unsynced = new Set<string>();
  /** coreutils' `sync` (for syncfs); undefined: every file is fsynced on its own. */
  private syncBin: string | undefined = findSync();
  /** One helper shell per root path that ran a syncfs (whole-fs-sync.ts); closed with the applier. */
  private readonly syncfsHelpers = new Map<string, SyncfsHelper>();
  private busy = false;
  /**
   * The disk may hold changes that were applied but never made durable: after start-up (the
   * previous process may have crashed mid-batch) and after a failed apply. A redo then finds
   * directories and entries already there, so "created now" no longer tells which directories
   * need an fsync: while suspect, every ancestor directory of every path touched is synced.
   */
  private suspect = true;
  private closed = false;
  /** This call's `after` (ApplyOptions): the previous call's point, not yet waited for. */
  private after: Promise<void> | undefined;
  /** The last point started to run behind the caller (ApplyOptions.overlap); close() waits for it. */
  private behind: Promise<void> | undefined;
  /** Most calls are synchronous (sync-fs.ts): the applier lets timers and sockets run every few ms. */
  private readonly slice = new TimeSlice();
  /** The location of the last path located, while the records that follow are for the same path (see `at`). */
  private pathLoc: Loc | undefined;
  /** Directories (root\0rel) known to have a default ACL or not, during one call (writeXattrsOf). */
  private readonly defaultAcls = new Map<string, boolean>();
  /** Per root: whether a file created there came with attributes of its own (a security label). */
  private readonly labelsNewFiles = new Map<string, boolean>();
  /** Creates runs of new small files off the main thread (new-files.ts); started on first use. */
  private readonly newFiles = new NewFileWorker(CREATED_FILE_MODE);
  /** Records before this index of this call were found not to start a run of new files. */
  private newFilesScanEnd = 0;
  /** Files the worker created, since the start (for tests and benchmarks). */
  filesCreatedOffThread = 0;
  /** The owner this process gives the files it creates (the group unless a parent is setgid). */
  private readonly euid = process.geteuid?.() ?? 0;
  private readonly egid = process.getegid?.() ?? 0;

  constructor(opts: ApplierOptions) {
    if (!Number.isSafeInteger(opts.blockSize) || opts.blockSize <= 0) {
      throw new TandemError({ code: 'TANDEM_ERR_INTERNAL', op: 'create applier', reason: `bad block size ${opts.blockSize}` });
    }
    this.opts = opts;
    this.log = opts.log.child({ component: 'apply' });
    this.clock = opts.clock ?? systemClock;
    this.manifest = opts.manifest;
    this.seams = opts.seams ?? {};
    this.owners = opts.owners ?? 'numeric';
    this.users = opts.users ?? new UserDb(this.clock);
    this.notices = new Notices(this.clock, this.log);
  }

  /** Must be called once before apply: resolves each root with realpath (a root may itself be a configured symlink), creates a missing root directory. */
  async init(): Promise<void> {
    await initHash();
    for (const r of this.opts.roots) {
      try {
        const existed = (await lstatOrUndefined(r.path)) !== undefined;
        if (!existed) {
          fs.mkdirSync(r.path, { recursive: true, mode: CREATED_DIR_MODE });
          // The agent's umask is 077 (its own files are private): the root gets its mode as before.
          fs.chmodSync(r.path, CREATED_DIR_MODE);
          await this.fsyncPath(r.path.slice(0, r.path.lastIndexOf('/')) || '/');
          this.log.info({ root: r.name, path: r.path }, 'protected root created');
        }
        const real = fs.realpathSync(r.path);
        const st = fs.statSync(real);
        if (!st.isDirectory()) throw Object.assign(new Error(`${real} is not a directory`), { code: 'ENOTDIR' });
        this.rootPaths.set(r.name, real);
      } catch (err) {
        throw TandemError.wrap(err, {
          code: 'TANDEM_ERR_APPLY_FAILED',
          op: `apply init root ${r.name} ${r.path}`,
          hint: 'the protected root must be a directory the agent can create and write on the passive',
          details: { root: r.name, path: r.path, errno: errnoOf(err) ?? 'UNKNOWN' },
        });
      }
    }
    this.guard = new PathGuard(this.rootPaths, {
      isActiveLink: (root, rel) => this.manifest.hasRoot(root) && this.manifest.get(root, rel)?.kind === 'symlink',
      createdDir: (root, dirRel, parentFd) => this.createdDir(root, dirRel, parentFd),
      removeInTheWay: async (root, rel, parentFd, name, st) => {
        await this.removeAt(root, rel, parentFd, name, st);
        this.seams.inTheWayRemoved?.(root, rel);
      },
      foreignLink: (op, root, rel, component, seq) =>
        this.notices.add(
          'TANDEM_ERR_PATH_SWAPPED',
          `apply ${op} ${root}/${rel}: "${component}" is a symbolic link on this node that the active never sent: replaced by the directory the records say is there`,
          SWAPPED_HINT,
          { root, path: rel, component, ...(seq === undefined ? {} : { seq }) },
          `${root}/${component}`,
        ),
    });
    const why = xattrProblem();
    if (why !== undefined) this.log.warn({ code: 'TANDEM_ERR_XATTR_UNAPPLIED' }, `apply: extended attributes and ACLs cannot be written on this node: ${why}`);
  }

  /** Warnings that did not stop applying (swapped paths, owners or bits not applied), for status. */
  noticeList(): Notice[] {
    return this.notices.list();
  }

  /**
   * Applies `records` in order (one batch, or the rest of one after a crash). Calls
   * `durable(seq)` each time every record up to `seq` is applied AND durable, and always once
   * at the end with the last record's seq; resolves after that last call returned. The same seq
   * is never reported twice (a batch ending with a rename reports it once). Throws TandemError:
   * TANDEM_ERR_PATH_OUTSIDE_ROOT, TANDEM_ERR_APPLY_FAILED (details: seq, root, path, errno),
   * TANDEM_ERR_CHECKSUM. Records before the failing one may have been applied; they were
   * reported durable only if `durable` was called for them. A record whose parent keeps being
   * swapped is skipped with a TANDEM_ERR_PATH_SWAPPED notice (noticeList), not retried.
   *
   * With `opts.overlap` the last durable point may run behind the caller: the call then resolves
   * once every record is applied and that point has started, with the point (PointBehind), and
   * `durable(last)` is called from it; its failure rejects `done`, and fails the next call that
   * was given it as `opts.after`.
   */
  async apply(records: DataRecord[], durable: (seq: number) => Promise<void>, opts: ApplyOptions = {}): Promise<PointBehind | undefined> {
    if (this.guard === undefined || this.closed) {
      throw new TandemError({ code: 'TANDEM_ERR_INTERNAL', op: 'apply', reason: this.closed ? 'the applier is closed' : 'init() was not awaited' });
    }
    if (this.busy) throw new TandemError({ code: 'TANDEM_ERR_INTERNAL', op: 'apply', reason: 'apply called while another apply runs' });
    // Compressed blocks (a batch replayed from the receive log) are inflated before anything is
    // written: one that does not inflate fails the batch here (TANDEM_ERR_BLOCK_UNDECODABLE) and
    // the hash of each inflated block is checked below as for any write.
    if (records.some((r) => r.op === 'write' && r.encoding !== undefined)) {
      records = records.map((r) => (r.op === 'write' ? decompressWrite(r) : r));
    }
    this.busy = true;
    this.guard.hold();
    let lastApplied: number | undefined;
    let pending = false;
    let point: PointBehind | undefined;
    this.after = opts.after;
    this.newFilesScanEnd = 0;
    try {
      let i = 0;
      this.slice.restart();
      while (i < records.length) {
        await this.slice.breathe();
        const r = records[i]!;
        if (r.op === 'rename') {
          // Commit barrier: everything before the rename must be durable (and reported) before
          // it happens, so that a redo never starts before a rename that already happened.
          const barrier = async () => {
            if (!pending || lastApplied === undefined) return;
            await this.makeDurable(lastApplied);
            pending = false;
            await durable(lastApplied);
          };
          await this.applyRename(r, barrier);
          if (this.suspect) {
            this.markAncestors(r.root, r.path);
            this.markAncestors(r.root, r.to);
          }
          await this.makeDurable(r.seq);
          lastApplied = r.seq;
          pending = false;
          await durable(r.seq);
          i++;
          continue;
        }
        const made = await this.applyNewFiles(records, i);
        if (made > 0) {
          lastApplied = records[i + made - 1]!.seq;
          pending = true;
          i += made;
          continue;
        }
        const n = await this.applyAt(records, i);
        if (this.suspect && r.op !== 'sync-begin' && r.op !== 'sync-end') {
          this.markAncestors(r.root, r.path);
          if (r.op === 'mkdir') this.markDir(r.root, r.path);
        }
        lastApplied = records[i + n - 1]!.seq;
        pending = true;
        i += n;
      }
      if (pending && lastApplied !== undefined) {
        point = opts.overlap === true ? await this.startPoint(lastApplied, durable, opts.applied) : undefined;
        if (point === undefined) {
          await this.makeDurable(lastApplied);
          await durable(lastApplied);
        }
      }
      // Nothing left to make durable in this call (or only renames, each its own point): the
      // previous call's point is still waited for, so that a failure of it fails this call.
      if (point === undefined) await this.waitAfter();
      this.suspect = false;
    } catch (err) {
      this.suspect = true;
      throw err;
    } finally {
      // Descriptors never outlive the call: between batches an operator could replace or delete
      // a file, and a kept descriptor would then write into an inode no path leads to. After a
      // failure, fsyncs still running in the background end (and close their files) first.
      await Promise.allSettled(this.syncing.splice(0));
      await this.closeAll();
      this.forgetPathLoc();
      this.guard.release();
      this.dirtyDirs.clear();
      this.writtenSincePoint = 0;
      this.defaultAcls.clear();
      this.after = undefined;
      this.busy = false;
    }
    return point;
  }

  /** Closes any file descriptors kept open. */
  async close(): Promise<void> {
    this.closed = true;
    await this.behind?.catch(() => undefined);
    for (const h of this.syncfsHelpers.values()) h.close();
    this.syncfsHelpers.clear();
    await this.newFiles.close();
    await this.closeAll();
  }

  // ---- a run of new small files, created by the worker ---------------------------------------

  /**
   * Applies the runs of new files whose records start at `i` in the worker thread
   * (new-files.ts), when there is one of at least NEW_FILES_MIN files that the records create
   * from nothing: a path the manifest does not know, an owner applied as it came, no attribute
   * to write, and a root whose points are made by syncfs (the worker closes the files unsynced).
   * Returns how many records it applied (0: none; the caller applies record `i` itself). The
   * files' parents are walked here as for any record, once per directory of a run, and kept
   * open until the worker is done with it; the worker checks each again before each file. While
   * the worker creates one run, the next is prepared (walked, its bytes gathered), unless one of
   * its parents is a path of the run being created, and sent behind it: the thread goes on to it
   * without waiting for the main thread to take the first one's answer (its gaps between runs
   * were a fifth of bench (e)'s synchronisation). A run the worker stops (a name there already, a
   * parent moved, an error) ends at that file, which the caller then applies itself with
   * everything that entails (its error, its notice); a run sent behind it is waited for and not
   * counted: its files, if it made them, are made again by their records, as after a crash.
   */
  private async applyNewFiles(records: DataRecord[], i: number): Promise<number> {
    if (i < this.newFilesScanEnd || records[i]!.op !== 'file') return 0;
    if (!this.newFilesWorkerOn()) return 0;
    let run = await this.prepareNewFiles(records, i, undefined);
    if (run === undefined) return 0;
    let next: NewFilesRun | undefined;
    let applied = 0;
    try {
      let job = (await this.sendNewFiles(run)).answer;
      for (;;) {
        let nextJob: Promise<NewFilesResult> | undefined;
        let result: NewFilesResult | undefined;
        try {
          next = await this.prepareNewFiles(records, run.end, run.keys);
          if (next !== undefined) nextJob = (await this.sendNewFiles(next)).answer;
        } finally {
          // Whatever happened meanwhile, the thread is done with a run before its parents close.
          try {
            result = await job;
          } catch (err) {
            // The worker itself failed (not a file): every file takes the applier's path from
            // now on, these too (whatever the worker created of them, that path finds and
            // completes). A run sent behind it was refused with the same failure.
            this.log.warn({ err }, 'apply: the new-file worker failed: new files are created one record at a time from now on');
            this.newFilesScanEnd = next?.end ?? run.end;
          }
        }
        const current = run;
        closeNewFilesRun(current, this.newFiles);
        run = undefined;
        if (result === undefined) {
          await nextJob?.catch(() => undefined);
          return applied;
        }
        for (let j = 0; j < result.done; j++) this.newFileApplied(current.files[j]!, result.stats[j]!);
        this.filesCreatedOffThread += result.done;
        if (result.done > 0) applied = current.files[result.done - 1]!.next - i;
        if (result.stop !== undefined) {
          // The file it stopped at goes the applier's way. A run may start again after it, but
          // not before the end of a run sent behind this one: that one's files are their
          // records' to make (again), in order, once the thread is done with it.
          const at = current.files[result.done]!;
          this.newFilesScanEnd = Math.max(at.next, next?.end ?? 0);
          if (result.stop.reason !== 'exists') this.log.debug({ stop: result.stop, root: at.file.root, path: at.file.path }, 'apply: new-file run stopped');
          await nextJob?.catch(() => undefined);
          return applied;
        }
        if (next === undefined || nextJob === undefined) return applied;
        run = next;
        next = undefined;
        job = nextJob;
      }
    } finally {
      // Whatever ended it (a stop, a failure, a hand-over refused): nothing is left open.
      closeNewFilesRun(run, this.newFiles);
      closeNewFilesRun(next, this.newFiles);
    }
  }

  /**
   * Whether runs of new files go to the worker: not when a test's seam watches each record or
   * write, not once the thread failed, and only where points are made by syncfs (the worker
   * closes its files unsynced).
   */
  private newFilesWorkerOn(): boolean {
    return this.seams.newFilesWorker !== false && this.seams.beforeRecord === undefined && this.seams.writev === undefined && this.newFiles.usable && this.syncfsEnabled();
  }

  /** Hands `run` to the worker (its bytes transferred), behind any run out; its answer, never an unhandled rejection. */
  private async sendNewFiles(run: NewFilesRun): Promise<{ answer: Promise<NewFilesResult> }> {
    await this.seams.newFilesHandOver?.(run.jobs.length);
    const answer = this.newFiles.run(run.jobs, run.data.buffer);
    answer.catch(() => undefined);
    return { answer };
  }

  /**
   * The run of new files from record `i`, its parents walked and its bytes gathered, ready for
   * the worker; undefined when there is none of NEW_FILES_MIN files. `busy`: the paths of the run
   * the worker is creating meanwhile (not in the manifest yet): a path among them, or below one,
   * ends this run.
   */
  private async prepareNewFiles(records: DataRecord[], i: number, busy: Set<string> | undefined): Promise<NewFilesRun | undefined> {
    if (i >= records.length || i < this.newFilesScanEnd || records[i]!.op !== 'file') return undefined;
    const files: NewFile[] = [];
    const owners: { uid: number; gid: number }[] = [];
    const keys = new Set<string>();
    let bytes = 0;
    for (let k = i; files.length < NEW_FILES_MAX && bytes < NEW_FILES_MAX_BYTES; ) {
      const f = newFileAt(records, k);
      if (f === undefined) break;
      const { root, path: rel } = f.file;
      const key = keyOf(root, rel);
      // Known to the manifest or touched earlier in this run or call: the applier's own path.
      if (keys.has(key) || this.open.has(key) || !this.manifest.hasRoot(root) || this.manifest.get(root, rel) !== undefined) break;
      if (busy !== undefined && (busy.has(key) || underAny(busy, root, rel))) break;
      if (f.meta.xattrs !== undefined && (f.meta.xattrs.length > 0 || this.labelsNewFiles.get(root) !== false)) break;
      const dec = decideOwner(this.owners, f.meta, this.users);
      if (dec.problem !== undefined) break;
      if (!f.writes.every((w) => dataVerified(w) || this.hashMatches(w))) break;
      keys.add(key);
      files.push(f);
      owners.push({ uid: dec.uid ?? -1, gid: dec.gid ?? -1 });
      bytes += f.file.size;
      k = f.next;
    }
    if (files.length < NEW_FILES_MIN) {
      // Any later start inside this stretch makes a shorter run still.
      if (busy === undefined) this.newFilesScanEnd = files.length === 0 ? i + 1 : files[files.length - 1]!.next;
      return undefined;
    }
    // The parents, walked (and made, when missing) in the order the run names them.
    const run: NewFilesRun = { files, keys, jobs: [], data: this.newFiles.buffer(bytes), dirs: new Map(), end: i };
    let at = 0;
    try {
      for (let j = 0; j < files.length; j++) {
        const f = files[j]!;
        const { root, path: rel } = f.file;
        const dirRel = parentOf(rel);
        const dkey = keyOf(root, dirRel);
        let d = run.dirs.get(dkey);
        if (d === undefined) {
          let loc: Loc | undefined;
          try {
            loc = await this.guard!.locate(f.file.op, root, rel, f.file.seq, 'create');
          } catch {
            loc = undefined; // the applier's path meets it again, and reports it
          }
          if (loc === undefined) break;
          const rootPath = this.rootPaths.get(root)!;
          // A new file's group is the directory's when it is setgid, else this process's.
          const ds = fs.fstatSync(loc.dir);
          d = { loc, want: dirRel === '' ? rootPath : `${rootPath}/${dirRel}`, newGid: (ds.mode & 0o2000) !== 0 ? ds.gid : this.egid };
          run.dirs.set(dkey, d);
        }
        // A directory whose new files inherit an ACL: writing none removes it (writeXattrsOf).
        if (f.meta.xattrs !== undefined && this.inheritsAcl(d.loc)) break;
        const start = at;
        for (const w of f.writes) {
          run.data.set(w.data, at);
          at += w.data.length;
        }
        const { uid, gid } = owners[j]!;
        run.jobs.push({ dir: d.loc.dir, want: d.want, name: rel.slice(rel.lastIndexOf('/') + 1), start, end: at, uid, gid, newUid: this.euid, newGid: d.newGid, mode: f.meta.mode & 0o7777, time: toSeconds(f.meta.mtimeMs) });
      }
    } catch (err) {
      closeNewFilesRun(run, this.newFiles);
      throw err;
    }
    if (run.jobs.length < NEW_FILES_MIN) {
      closeNewFilesRun(run, this.newFiles);
      if (busy === undefined) this.newFilesScanEnd = files[run.jobs.length]?.next ?? files[files.length - 1]!.next;
      return undefined;
    }
    // The files it got that far with (a parent that could not be walked ends it).
    run.files.length = run.jobs.length;
    run.keys = new Set(run.files.map((f) => keyOf(f.file.root, f.file.path)));
    run.end = run.files[run.files.length - 1]!.next;
    return run;
  }

  /** What the applier's own path leaves behind a new file, once the worker created it. */
  private newFileApplied(f: NewFile, st: FileStat): void {
    const { root, path: rel } = f.file;
    const bs = this.opts.blockSize;
    if (this.manifest.hasRoot(root) && st.nlink === 1) {
      // What the records, then fillFileStat and fillMeta, leave in the manifest, set once: each
      // set copies the entry and tells the manifest's listener (five per file, ~10 % of the
      // passive's main thread over bench (e)). The run's path was unknown to the manifest, and its
      // meta's attribute list, when it has one, is empty: newFileEntry hashed it already.
      const e = newFileEntry(f.file, f.writes, f.meta, bs);
      // Every field of a file entry, spelled out (not `{ ...e, ino, ... }`, a copy the manifest's
      // compactEntry made again).
      this.manifest.set(root, rel, {
        kind: 'file',
        mode: st.mode & 0o7777,
        size: st.size,
        mtimeMs: st.mtimeMs,
        ino: st.ino,
        blocks: e.blocks,
        readAt: this.clock.now(),
        nlink: st.nlink,
        uid: st.uid,
        gid: st.gid,
        user: e.user,
        group: e.group,
        xattrHash: e.xattrHash,
        ctimeMs: st.ctimeMs,
      });
    } else {
      applyRecordToManifest(this.manifest, f.file, bs);
      for (const w of f.writes) applyRecordToManifest(this.manifest, w, bs);
      applyRecordToManifest(this.manifest, f.meta, bs);
      this.fillFileStat(root, rel, st);
      this.fillMeta(root, rel, undefined, f.meta.xattrs === undefined ? undefined : xattrsHash([]), f.meta.xattrs !== undefined);
    }
    this.markDir(root, parentOf(rel));
    if (this.suspect) this.markAncestors(root, rel);
    // Closed unsynced: the next point syncs the root's file system whole.
    this.unsynced.add(root);
    this.writtenSincePoint += f.file.size;
  }

  // ---- one record (or a run of coalesced writes) -------------------------------------------

  /** Applies the record at `i` (and the writes that coalesce with it); returns how many were consumed. */
  private async applyAt(records: DataRecord[], i: number): Promise<number> {
    const r = records[i]!;
    if (r.op === 'sync-begin' || r.op === 'sync-end') {
      // A synchronisation brings new files in bulk: the thread that creates them starts now (its
      // first run took 330 ms in bench (e), 90-135 ms with the thread started here).
      if (r.op === 'sync-begin' && this.newFilesWorkerOn()) this.newFiles.warm();
      await this.seams.beforeRecord?.(r);
      return 1;
    }
    if (r.op === 'write') return this.applyWriteRun(records, i);
    if (r.op === 'hole') return this.applyHoleRun(records, i);
    try {
      await this.seams.beforeRecord?.(r);
      switch (r.op) {
        case 'mkdir':
          await this.applyMkdir(r);
          break;
        case 'file':
          await this.applyFile(r, records, i);
          break;
        case 'meta':
          await this.applyMeta(r);
          break;
        case 'symlink':
          await this.applySymlink(r);
          break;
        case 'hardlink':
          await this.applyHardlink(r);
          break;
        case 'unlink':
        case 'rmdir':
          await this.applyRemove(r);
          break;
        case 'rename':
          throw new Error('rename reached applyAt');
      }
    } catch (err) {
      if (isSwapped(err)) return this.skipSwapped(err, 1);
      throw applyFailed(err, r.op, r.seq, r.root, r.path);
    }
    return 1;
  }

  /** A record whose parent kept changing under the walk: reported, counted as applied, and left to verify. */
  private skipSwapped(err: TandemError, n: number): number {
    this.notices.add(err.code, err.message, err.hint, err.details, `${String(err.details.root)}/${String(err.details.component)}`);
    return n;
  }

  /** Locates `rel` for record `r`, runs `fn`, and closes the parent directory after. */
  private async at<T>(r: PathRecord, rel: string, mode: WalkMode, fn: (loc: Loc | undefined) => Promise<T> | T): Promise<T> {
    // The records of one path that follow each other (file, writes, meta: one change) share one
    // walk: the parent stays open, and a swap of any directory above cannot redirect an open
    // descriptor. Any other path walks from its root again.
    const kept = this.pathLoc;
    if (kept !== undefined && kept.root === r.root && kept.rel === rel) return fn(kept);
    // The next path of the same directory (a synchronisation's files, one after the other)
    // keeps its descriptor once checked again (PathGuard.locate): `kept` is handed over.
    this.pathLoc = undefined;
    let loc: Loc | undefined;
    try {
      loc = await this.guard!.locate(r.op, r.root, rel, r.seq, mode, kept);
    } finally {
      if (loc?.dir !== kept?.dir) closeLoc(kept);
    }
    if (loc === undefined) return fn(undefined);
    this.pathLoc = loc;
    try {
      return await fn(loc);
    } catch (err) {
      this.forgetPathLoc();
      throw err;
    }
  }

  /** Locates `rel` for this call alone (a record naming two paths: rename, hardlink). */
  private async atOnce<T>(r: PathRecord, rel: string, mode: WalkMode, fn: (loc: Loc | undefined) => Promise<T> | T): Promise<T> {
    const loc = await this.guard!.locate(r.op, r.root, rel, r.seq, mode);
    try {
      return await fn(loc);
    } finally {
      closeLoc(loc);
    }
  }

  /** Closes the location kept for the records of one path (another path comes, or the tree changed shape). */
  private forgetPathLoc(): void {
    closeLoc(this.pathLoc);
    this.pathLoc = undefined;
  }

  private async applyMkdir(r: MkdirRecord): Promise<void> {
    await this.at(r, r.path, 'create', async (loc) => {
      const l = loc!;
      let st = lstatAt(l.at);
      if (st !== undefined && !st.isDirectory()) {
        await this.removeAt(r.root, r.path, l.dir, l.name, st);
        st = undefined;
      }
      if (st === undefined) {
        // Owner-only until its owner and mode are set just below.
        fs.mkdirSync(l.at, 0o700);
        this.markDir(r.root, l.dirRel);
      }
      const d = openDirAt(l.dir, l.name);
      if (d.kind !== 'dir') throw Object.assign(new Error(`${r.path} is not a directory any more (it keeps changing)`), { code: 'EAGAIN' });
      try {
        const applied = this.applyMetaTo(d.fd, l, r, false);
        this.markDir(r.root, r.path);
        applyRecordToManifest(this.manifest, r, this.opts.blockSize);
        this.fillMeta(r.root, r.path, fs.fstatSync(d.fd), applied.xattrHash, r.xattrs !== undefined);
      } finally {
        closeFd(d.fd);
      }
    });
  }

  private async applyFile(r: FileRecord, records: DataRecord[], i: number): Promise<void> {
    await this.at(r, r.path, 'create', async (loc) => {
      const wasOpen = this.open.has(keyOf(r.root, r.path));
      const of = (await this.fileFor(loc!, { writable: true, create: true }))!;
      // A file created by this very open is empty: when the writes that follow at once end at
      // its size, they make it that size (a truncate per new file was ~4 % of the passive's CPU
      // for 100,000 small files). A tail left as a hole still needs the truncate.
      // The same holds for a file just opened that is that size already, or shorter and the
      // writes extend it (in (o), 80 % of changed files: overwritten in place or appended to).
      const size = wasOpen ? undefined : of.size;
      if (!(size !== undefined && (size === r.size || (size < r.size && writesEndAt(records, i + 1, r) === r.size)))) await of.fh.truncate(r.size);
      of.dirty = true;
      of.statPending = true;
    });
    applyRecordToManifest(this.manifest, r, this.opts.blockSize);
  }

  /**
   * Writes the write record at `i` together with the following writes to the same file at
   * contiguous offsets, in one writev: a 4 MiB batch of 64 KiB writes is one syscall, not 64.
   * Every hash is checked before anything is written (here, or when the record's frame was
   * accepted: dataVerified); a run stops before a record whose hash does not match, and that
   * record then fails on its own with nothing of it written.
   */
  private async applyWriteRun(records: DataRecord[], i: number): Promise<number> {
    const first = records[i] as WriteRecord;
    this.checkHash(first);
    let n = 1;
    let end = first.offset + first.data.length;
    for (;;) {
      const next = records[i + n];
      if (next === undefined || next.op !== 'write' || next.root !== first.root || next.path !== first.path || next.offset !== end) break;
      if (!dataVerified(next) && !this.hashMatches(next)) break;
      end += next.data.length;
      n++;
    }
    try {
      for (let k = 0; k < n; k++) await this.seams.beforeRecord?.(records[i + k]!);
      await this.at(first, first.path, 'create', async (loc) => {
        const of = (await this.fileFor(loc!, { writable: true, create: true }))!;
        const buffers: Uint8Array[] = [];
        for (let k = 0; k < n; k++) buffers.push((records[i + k] as WriteRecord).data);
        of.dirty = true;
        of.statPending = true;
        await this.writeAll(of.fh, buffers, first.offset, (err) => applyFailed(err, 'write', first.seq, first.root, first.path, n > 1 ? { records: n } : {}));
        this.writtenSincePoint += end - first.offset;
      });
    } catch (err) {
      if (isSwapped(err)) return this.skipSwapped(err, n);
      throw applyFailed(err, 'write', first.seq, first.root, first.path, n > 1 ? { records: n } : {});
    }
    for (let k = 0; k < n; k++) applyRecordToManifest(this.manifest, records[i + k]!, this.opts.blockSize);
    return n;
  }

  /**
   * Zeros at the hole records from `i` on (contiguous ones of one file together). A run that
   * reaches the end of the file becomes a real hole: the file is cut to the run's start and
   * extended again (ftruncate allocates nothing). Inside a file, Node has no way to punch one
   * (no fallocate): the zeros are written.
   */
  private async applyHoleRun(records: DataRecord[], i: number): Promise<number> {
    const first = records[i] as HoleRecord;
    let n = 1;
    let end = first.offset + first.length;
    for (;;) {
      const next = records[i + n];
      if (next === undefined || next.op !== 'hole' || next.root !== first.root || next.path !== first.path || next.offset !== end) break;
      end += next.length;
      n++;
    }
    try {
      for (let k = 0; k < n; k++) await this.seams.beforeRecord?.(records[i + k]!);
      await this.at(first, first.path, 'create', async (loc) => {
        const of = (await this.fileFor(loc!, { writable: true, create: true }))!;
        of.dirty = true;
        of.statPending = true;
        const size = (await of.fh.stat()).size;
        if (end >= size) {
          await of.fh.truncate(Math.min(first.offset, size));
          await of.fh.truncate(end);
          return;
        }
        const buffers: Uint8Array[] = [];
        for (let left = end - first.offset; left > 0; left -= ZERO_CHUNK.length) buffers.push(ZERO_CHUNK.subarray(0, Math.min(left, ZERO_CHUNK.length)));
        await this.writeAll(of.fh, buffers, first.offset, (err) => applyFailed(err, 'hole', first.seq, first.root, first.path, n > 1 ? { records: n } : {}));
        this.writtenSincePoint += end - first.offset;
      });
    } catch (err) {
      if (isSwapped(err)) return this.skipSwapped(err, n);
      throw applyFailed(err, 'hole', first.seq, first.root, first.path, n > 1 ? { records: n } : {});
    }
    for (let k = 0; k < n; k++) applyRecordToManifest(this.manifest, records[i + k]!, this.opts.blockSize);
    return n;
  }

  private hashMatches(r: WriteRecord): boolean {
    const h = hash64(r.data);
    return r.hash.length === h.length && h.equals(r.hash);
  }

  /** Throws unless the block matches its hash: checked here, or when its frame was accepted (dataVerified). */
  private checkHash(r: WriteRecord): void {
    if (dataVerified(r) || this.hashMatches(r)) return;
    throw new TandemError({
      code: 'TANDEM_ERR_CHECKSUM',
      op: `apply write ${r.root}/${r.path}`,
      reason: `the data (${r.data.length} bytes at offset ${r.offset}) does not match its xxhash64`,
      hint: 'the record was damaged after the active hashed it (memory, disk or transport); nothing was written: the passive must receive it again',
      details: { seq: r.seq, root: r.root, path: r.path, offset: r.offset },
    });
  }

  /**
   * Writes `buffers` at `position`: behind (SyncFile.writeBehind) from WRITE_BEHIND_MIN_BYTES on,
   * or while earlier writes of the file are behind: the thread pool copies them into the page
   * cache while this thread goes on with the next records (the copy was the largest share of the
   * passive's CPU in a catch-up), and the file's next calls wait for them. Smaller ones at once.
   * A failure behind is reported as this write's (`wrap`).
   */
  private async writeAll(fh: SyncFile, buffers: Uint8Array[], position: number, wrap: (err: unknown) => Error): Promise<void> {
    const bytes = buffers.reduce((s, b) => s + b.length, 0);
    if (this.seams.writev === undefined && (fh.behind || bytes >= (this.seams.writeBehindMinBytes ?? WRITE_BEHIND_MIN_BYTES))) {
      fh.writeBehind(buffers, position, wrap);
      return;
    }
    const seam = this.seams.writev;
    await writeAllWith(buffers, position, async (chunk, pos) => (seam !== undefined ? seam(fh.fd, [...chunk], pos) : (await fh.writev(chunk, pos)).bytesWritten));
  }

  private async applyMeta(r: MetaRecord): Promise<void> {
    await this.at(r, r.path, 'existing', async (loc) => {
      // A file this very walk opened (the records of one path) is known to be one: no lstat.
      const openHere = loc !== undefined && this.open.get(keyOf(r.root, r.path))?.loc === loc;
      const st = loc === undefined || openHere ? undefined : lstatAt(loc.at);
      if (loc === undefined || (st === undefined && !openHere)) {
        // Only on a redo can a meta meet a missing path (a later record that removed it had
        // already been applied); otherwise it is a divergence that verify repairs.
        this.log.debug({ root: r.root, path: r.path, seq: r.seq }, 'meta: path missing, skipped');
        applyRecordToManifest(this.manifest, r, this.opts.blockSize);
        return;
      }
      const t = toSeconds(r.mtimeMs);
      if (st?.isSymbolicLink() === true) {
        // Link permissions mean nothing on Linux; only its own times, never the target's.
        fs.lutimesSync(loc.at, t, t);
        this.markDir(r.root, loc.dirRel);
        applyRecordToManifest(this.manifest, r, this.opts.blockSize);
        this.fillIno(r.root, r.path, st);
        return;
      }
      if (openHere || st?.isFile() === true) {
        const of = await this.fileFor(loc, { writable: false, create: false });
        if (of !== undefined) {
          // A write clears setuid/setgid (without CAP_FSETID) and file capabilities whenever it
          // lands: such a meta waits for the writes behind. Owner, mode and other attributes do
          // not depend on the data, and go on while the writes run.
          if (of.fh.behind && ((r.mode & PRIVILEGE_BITS) !== 0 || r.xattrs?.some(([n]) => n === CAPABILITY_XATTR) === true)) await of.fh.settled();
          // What this walk knows the inode holds: it opened (or created) the file itself.
          const applied = this.applyMetaTo(of.fh.fd, loc, r, true, openHere || of.created ? { uid: of.uid, gid: of.gid, mode: of.mode, created: of.created } : undefined);
          // Its attributes are the records' from now on, no longer only what creation gave it.
          of.created = false;
          if (applied.owner !== undefined) ({ uid: of.uid, gid: of.gid } = applied.owner);
          of.mode = applied.mode;
          of.dirty = true;
          applyRecordToManifest(this.manifest, r, this.opts.blockSize);
          if (of.fh.behind) {
            // The times after the writes (one landing later would move them); the stat for the
            // manifest once they are over (settle).
            of.fh.utimesBehind(t, t);
            of.statPending = true;
          } else {
            await of.fh.utimes(t, t);
            of.statPending = false;
            this.fillFileStat(r.root, r.path, await of.fh.stat());
          }
          this.fillMeta(r.root, r.path, undefined, applied.xattrHash, r.xattrs !== undefined);
          return;
        }
      }
      if (st?.isDirectory() === true) {
        const d = openDirAt(loc.dir, loc.name);
        if (d.kind === 'dir') {
          try {
            const applied = this.applyMetaTo(d.fd, loc, r, false);
            fs.futimesSync(d.fd, t, t);
            this.markDir(r.root, r.path);
            applyRecordToManifest(this.manifest, r, this.opts.blockSize);
            this.fillMeta(r.root, r.path, fs.fstatSync(d.fd), applied.xattrHash, r.xattrs !== undefined);
          } finally {
            closeFd(d.fd);
          }
          return;
        }
      }
      // A fifo, a socket or a device where the active has a file: nothing of it is replicated,
      // and nothing is done to it through its path. Verify reports the difference.
      this.log.debug({ root: r.root, path: r.path, seq: r.seq }, 'meta: not a file, directory or link here, skipped');
      applyRecordToManifest(this.manifest, r, this.opts.blockSize);
    });
  }

  /**
   * Owner, attributes, then mode, on the open descriptor `fd` of the entry at `loc`: chown clears
   * setuid/setgid (and file capabilities), so the mode comes last; a file's privilege is applied
   * only when the owner it came with was (owner-policy.ts), and is cleared otherwise, with a notice.
   * Returns the hash of the attributes actually set.
   * `inode`: the owner and mode the file has, known because this walk opened it (fstat) or
   * created it, and whether it was created by this call with no meta applied since. When the
   * owner is already the one to set, no chown: the agent creates as the owner most files have,
   * and a file changed in place keeps its owner (one chown per file was ~4 % of the passive's
   * CPU for 100,000 small files, fchown and fchmod 3 % in (o)). The chmod is skipped only when
   * the mode is already the one to set, no chown ran, and the mode holds no setuid/setgid bit
   * (a write or truncate by a process without CAP_FSETID clears those: nothing else can have
   * changed since the open).
   * Returns the hash of the attributes actually set, the owner when chown set it, and the mode.
   */
  private applyMetaTo(
    fd: number,
    loc: Loc,
    r: MkdirRecord | MetaRecord,
    isFile: boolean,
    inode?: { uid: number; gid: number; mode: number; created: boolean },
  ): { xattrHash: Buffer | undefined; owner?: { uid: number; gid: number }; mode: number } {
    const where = `${r.root}/${r.path}`;
    const dec = decideOwner(this.owners, r, this.users);
    let owner: { uid: number; gid: number } | undefined;
    let privileged = dec.privileged;
    let withheld = dec.withheld;
    if (dec.uid !== undefined && dec.gid !== undefined) {
      try {
        if (inode === undefined || inode.uid !== dec.uid || inode.gid !== dec.gid) {
          fs.fchownSync(fd, dec.uid, dec.gid);
          owner = { uid: dec.uid, gid: dec.gid };
        }
        if (dec.problem !== undefined) {
          this.notices.add('TANDEM_ERR_OWNER_UNAPPLIED', `apply ${r.op} ${where}: ${dec.problem}`, 'create the user and group on this node with the same names, then run tandem verify --repair', { root: r.root, path: r.path }, where);
        }
      } catch (err) {
        const errno = errnoOf(err);
        if (errno !== 'EPERM' && errno !== 'EINVAL') throw err;
        privileged = false;
        withheld = `chown to ${dec.uid}:${dec.gid} failed (${errno})`;
        this.notices.add('TANDEM_ERR_OWNER_UNAPPLIED', `apply ${r.op} ${where}: ${withheld}`, "run the passive's agent as root so that owners can be replicated", { root: r.root, path: r.path, errno }, where);
      }
    }
    let xattrHash: Buffer | undefined;
    let clearedCap = false;
    // A directory's attributes may be about to change: what its new files inherit is asked again.
    if (!isFile) this.defaultAcls.delete(keyOf(r.root, r.path));
    if (r.xattrs !== undefined) {
      let want = r.xattrs;
      if (this.owners === 'names') want = this.localizeAcls(r, want);
      if (!privileged && want.some(([n]) => n === CAPABILITY_XATTR)) {
        want = want.filter(([n]) => n !== CAPABILITY_XATTR);
        clearedCap = true;
      }
      const { failed } = this.writeXattrsOf(loc, want, isFile && inode?.created === true);
      if (failed.length > 0) {
        const missing = xattrProblem();
        const reason = missing ?? failed.map((f) => `${f.name} (${f.errno})`).join(', ');
        this.notices.add(
          'TANDEM_ERR_XATTR_UNAPPLIED',
          `apply ${r.op} ${where}: extended attributes not written: ${reason}`,
          missing !== undefined ? 'install Tandem where @napi-rs/xattr has a prebuilt binary for this platform' : "mount the passive's file system with xattr and ACL support, or allow these attributes",
          { root: r.root, path: r.path, failed: failed.slice(0, 8) },
          where,
        );
      }
      const failedNames = new Set(failed.map((f) => f.name));
      xattrHash = xattrsHash(want.filter(([n]) => !failedNames.has(n)));
    }
    let mode = r.mode & 0o7777;
    // Only a file's setuid/setgid hand over an identity: a directory's setgid decides the group
    // of new entries and its sticky bit restricts removal; neither grants anything.
    if (!privileged && isFile) mode &= ~PRIVILEGE_BITS;
    if ((r.mode & 0o7777 & PRIVILEGE_BITS) !== (mode & PRIVILEGE_BITS) || clearedCap) {
      this.notices.add(
        'TANDEM_ERR_SPECIAL_BITS_CLEARED',
        `apply ${r.op} ${where}: setuid/setgid bits or file capabilities cleared: ${withheld ?? 'the owner was not applied'}`,
        "set replication.owners to numeric (or create the missing users), run the passive's agent as root, then tandem verify --repair",
        { root: r.root, path: r.path, mode: (r.mode & 0o7777).toString(8) },
        where,
      );
    }
    if (inode === undefined || owner !== undefined || inode.mode !== mode || (inode.mode & PRIVILEGE_BITS) !== 0) fs.fchmodSync(fd, mode);
    return { xattrHash, ...(owner === undefined ? {} : { owner }), mode };
  }

  /**
   * writeXattrs, except for a file this call created that is to have none: it has none when its
   * directory has no default ACL to inherit and its root's new files carry no label (SELinux,
   * Smack: every new file gets one, so the first such file tells), and then nothing is listed
   * (a listxattr per file was ~6 % of the passive's CPU for 100,000 new small files).
   */
  private writeXattrsOf(loc: Loc, want: Xattr[], created: boolean): XattrWrite {
    if (!created || want.length > 0 || this.inheritsAcl(loc)) return writeXattrs(loc.at, want);
    if (this.labelsNewFiles.get(loc.root) === false) return { failed: [], removed: 0 };
    const w = writeXattrs(loc.at, want);
    if (w.failed.length === 0) this.labelsNewFiles.set(loc.root, w.removed > 0);
    return w;
  }

  /** The directory of `loc` has a default ACL (its new files inherit one); asked once per directory and call. */
  private inheritsAcl(loc: Loc): boolean {
    const key = keyOf(loc.root, loc.dirRel);
    const known = this.defaultAcls.get(key);
    if (known !== undefined) return known;
    // "/." : the module does not follow a final link, and the descriptor's is one.
    const has = hasDefaultAcl(`/proc/self/fd/${loc.dir}/.`);
    this.defaultAcls.set(key, has);
    return has;
  }

  /**
   * owners: names: the ACLs' named entries by name (tree/acl-names.ts); an entry whose name is
   * unknown here, or that came without one, is dropped, never granted to whoever holds its
   * number on this node.
   */
  private localizeAcls(r: MkdirRecord | MetaRecord, xattrs: Xattr[]): Xattr[] {
    if (!xattrs.some(([n]) => isAclXattr(n))) return xattrs;
    const out = localizeAcls(xattrs, r.aclNames, this.users);
    if (out.dropped.length > 0) {
      const where = `${r.root}/${r.path}`;
      this.notices.add(
        'TANDEM_ERR_ACL_ENTRY_DROPPED',
        `apply ${r.op} ${where}: ACL entries dropped: ${out.dropped.slice(0, 8).join(', ')}`,
        'create the users and groups on this node with the same names (and set replication.owners to names on both nodes), then run tandem verify --repair',
        { root: r.root, path: r.path, dropped: out.dropped.slice(0, 8) },
        where,
      );
    }
    return out.xattrs;
  }

  private async applySymlink(r: SymlinkRecord): Promise<void> {
    await this.at(r, r.path, 'create', async (loc) => {
      const l = loc!;
      let st: Stats | undefined;
      try {
        fs.symlinkSync(r.target, l.at);
      } catch (err) {
        if (errnoOf(err) !== 'EEXIST') throw err;
        const cur = fs.lstatSync(l.at);
        if (cur.isSymbolicLink() && fs.readlinkSync(l.at, 'utf8') === r.target) st = cur;
        else {
          await this.removeAt(r.root, r.path, l.dir, l.name, cur);
          fs.symlinkSync(r.target, l.at);
        }
      }
      this.dropUnder(r.root, r.path);
      this.markDir(r.root, l.dirRel);
      const dec = decideOwner(this.owners, r, this.users);
      if (dec.uid !== undefined && dec.gid !== undefined) {
        try {
          fs.lchownSync(l.at, dec.uid, dec.gid);
        } catch (err) {
          const errno = errnoOf(err);
          if (errno !== 'EPERM' && errno !== 'EINVAL') throw err;
          this.notices.add('TANDEM_ERR_OWNER_UNAPPLIED', `apply symlink ${r.root}/${r.path}: lchown to ${dec.uid}:${dec.gid} failed (${errno})`, "run the passive's agent as root so that owners can be replicated", { root: r.root, path: r.path, errno }, `${r.root}/${r.path}`);
        }
        st = undefined;
      }
      st ??= fs.lstatSync(l.at);
      applyRecordToManifest(this.manifest, r, this.opts.blockSize);
      this.fillIno(r.root, r.path, st);
      this.fillMeta(r.root, r.path, st, undefined, false);
    });
  }

  /** `path` becomes another name of the regular file `target`; a path that is already its name is left alone. */
  private async applyHardlink(r: HardlinkRecord): Promise<void> {
    this.forgetPathLoc();
    await this.atOnce(r, r.target, 'existing', async (src) => {
      const tSt = src === undefined ? undefined : lstatAt(src.at);
      if (src === undefined || tSt === undefined || !tSt.isFile()) {
        // On a redo the target may have gone since (a later record removed it): nothing to link.
        this.log.debug({ root: r.root, path: r.path, target: r.target, seq: r.seq }, 'hardlink: target missing or not a file, skipped');
        return;
      }
      await this.atOnce(r, r.path, 'create', async (dst) => {
        const d = dst!;
        for (let attempt = 0; ; attempt++) {
          const cur = lstatAt(d.at);
          if (cur !== undefined && cur.ino === tSt.ino && cur.dev === tSt.dev) break;
          if (cur !== undefined) await this.removeAt(r.root, r.path, d.dir, d.name, cur);
          try {
            fs.linkSync(src.at, d.at);
            this.markDir(r.root, d.dirRel);
            break;
          } catch (err) {
            if (errnoOf(err) !== 'EEXIST' || attempt > 2) throw err;
          }
        }
        this.dropUnder(r.root, r.path);
        applyRecordToManifest(this.manifest, r, this.opts.blockSize);
        this.fillIno(r.root, r.path, tSt);
        this.fillIno(r.root, r.target, tSt);
      });
    });
  }

  private async applyRemove(r: PathRecord): Promise<void> {
    await this.at(r, r.path, 'existing', async (loc) => {
      // A missing parent (or a file or link where a parent should be) means the path is absent already.
      if (loc !== undefined) await this.removeAt(r.root, r.path, loc.dir, loc.name);
    });
    applyRecordToManifest(this.manifest, r, this.opts.blockSize);
  }

  /**
   * Rename: the one record that moves content, so it is not idempotent. `barrier` makes the
   * records before it durable and reports them; the caller then makes the rename itself durable
   * and reports it. On a redo, a missing source means the rename already happened.
   */
  private async applyRename(r: RenameRecord, barrier: () => Promise<void>): Promise<void> {
    const guard = this.guard!;
    // Refuse before anything happens, the barrier included: both names well formed, and neither
    // below a link the active itself made.
    try {
      const probe = await guard.locate('rename', r.root, r.path, r.seq, 'probe');
      closeLoc(probe);
    } catch (err) {
      if (isSwapped(err)) return void this.skipSwapped(err, 1);
      throw applyFailed(err, r.op, r.seq, r.root, r.path);
    }
    try {
      const probe = await guard.locate('rename', r.root, r.to, r.seq, 'probe');
      closeLoc(probe);
    } catch (err) {
      if (err instanceof TandemError && err.code === 'TANDEM_ERR_PATH_OUTSIDE_ROOT') {
        throw outsideRootError('rename', r.root, r.path, `target "${String(r.to)}": ${err.reason}`, r.seq);
      }
      if (isSwapped(err)) return void this.skipSwapped(err, 1);
      throw applyFailed(err, r.op, r.seq, r.root, r.path, { to: r.to });
    }
    if (r.to !== r.path && (isWithin(r.to, r.path) || isWithin(r.path, r.to))) {
      // The active's kernel refuses this too (EINVAL / ENOTEMPTY): the record cannot be real.
      throw new TandemError({
        code: 'TANDEM_ERR_APPLY_FAILED',
        op: `apply rename ${r.root}/${r.path}`,
        reason: `cannot move a directory into itself or onto its ancestor "${r.to}"`,
        hint: 'the active sent a rename no file system can perform; this is a bug: report it',
        details: { seq: r.seq, root: r.root, path: r.path, to: r.to, errno: 'EINVAL' },
      });
    }

    await barrier();

    try {
      await this.seams.beforeRecord?.(r);
      this.forgetPathLoc();
      await this.atOnce(r, r.path, 'existing', async (src) => {
        const srcSt = src === undefined ? undefined : lstatAt(src.at);
        if (src === undefined || srcSt === undefined) {
          await this.atOnce(r, r.to, 'existing', async (dst) => {
            const dstSt = dst === undefined ? undefined : lstatAt(dst.at);
            if (dst === undefined || dstSt === undefined) {
              this.log.warn({ root: r.root, path: r.path, to: r.to, seq: r.seq }, 'rename source missing');
              if (this.manifest.hasRoot(r.root)) {
                this.manifest.delete(r.root, r.path);
                this.manifest.delete(r.root, r.to);
              }
              return;
            }
            // Already renamed before a crash, perhaps never synced: sync both parents again.
            // Bring the manifest along only if it still has the source; if it does not, it
            // already describes the target and must keep it.
            this.markDir(r.root, parentOf(r.path));
            this.markDir(r.root, dst.dirRel);
            if (this.manifest.hasRoot(r.root) && this.manifest.get(r.root, r.path) !== undefined) {
              this.manifest.move(r.root, r.path, r.to);
              this.fillIno(r.root, r.to, dstSt);
            }
          });
          return;
        }
        if (r.to === r.path) return;
        await this.atOnce(r, r.to, 'create', async (dst) => {
          const d = dst!;
          const dstSt = lstatAt(d.at);
          // rename(2) replaces a file atomically, but not a directory by a non-directory (or the
          // reverse), nor a non-empty directory: the setter says "replacing to", so clear it first.
          if (dstSt !== undefined && (dstSt.isDirectory() || srcSt.isDirectory())) await this.removeAt(r.root, r.to, d.dir, d.name, dstSt);
          this.dropUnder(r.root, r.path);
          this.dropUnder(r.root, r.to);
          fs.renameSync(src.at, d.at);
          this.markDir(r.root, src.dirRel);
          this.markDir(r.root, d.dirRel);
          applyRecordToManifest(this.manifest, r, this.opts.blockSize);
          this.fillIno(r.root, r.to, srcSt);
        });
      });
    } catch (err) {
      if (isSwapped(err)) return void this.skipSwapped(err, 1);
      throw applyFailed(err, 'rename', r.seq, r.root, r.path, { to: r.to });
    }
  }

  // ---- paths ---------------------------------------------------------------------------------

  /**
   * The guard made a missing parent directory. A directory the manifest knows (one a foreign link
   * stood in for) gets back the owner and mode the records gave it; any other is 0755, root's,
   * until its own mkdir record says otherwise.
   */
  private createdDir(root: string, dirRel: string, parentFd: number): void {
    const name = dirRel.slice(dirRel.lastIndexOf('/') + 1);
    const d = openDirAt(parentFd, name);
    if (d.kind !== 'dir') return; // gone or swapped already: the walk sees it next
    try {
      const known = this.manifest.hasRoot(root) ? this.manifest.get(root, dirRel) : undefined;
      if (known?.kind === 'dir') {
        if (known.uid !== undefined && known.gid !== undefined) fs.fchownSync(d.fd, known.uid, known.gid);
        fs.fchmodSync(d.fd, known.mode & 0o7777);
      } else fs.fchmodSync(d.fd, CREATED_DIR_MODE);
      this.markDir(root, parentOf(dirRel));
      if (this.manifest.hasRoot(root)) {
        const st = fs.fstatSync(d.fd);
        this.manifest.set(root, dirRel, { ...(known?.kind === 'dir' ? known : { mtimeMs: 0 }), kind: 'dir', mode: st.mode & 0o7777, ino: st.ino, uid: st.uid, gid: st.gid, ctimeMs: st.ctimeMs });
      }
    } finally {
      closeFd(d.fd);
    }
  }

  /** Makes `rel` (named `name` in the directory open as `dirFd`) absent, whatever it is. Missing is fine. */
  private async removeAt(root: string, rel: string, dirFd: number, name: string, known?: Stats): Promise<void> {
    const st = known ?? lstatAt(at(dirFd, name));
    this.dropUnder(root, rel);
    if (st === undefined) return;
    // Every level is opened through the one above: a link inside loses only itself.
    if (st.isDirectory()) await removeTreeAt(dirFd, name, () => this.slice.breathe());
    else {
      try {
        fs.unlinkSync(at(dirFd, name));
      } catch (err) {
        const code = errnoOf(err);
        if (code === 'EISDIR') await removeTreeAt(dirFd, name, () => this.slice.breathe());
        else if (code !== 'ENOENT') throw err;
      }
    }
    this.markDir(root, parentOf(rel));
  }

  /** Marks the root and every directory above `rel` as needing an fsync. */
  private markAncestors(root: string, rel: string): void {
    this.markDir(root, '');
    for (let i = rel.indexOf('/'); i >= 0; i = rel.indexOf('/', i + 1)) this.markDir(root, rel.slice(0, i));
  }

  private markDir(root: string, rel: string): void {
    this.dirtyDirs.set(keyOf(root, rel), { root, rel });
  }

  // ---- open files ------------------------------------------------------------------------------

  /**
   * The open file at `loc`, a regular file. With `create`, whatever else is there (a link, a
   * directory, a fifo) is replaced by an empty file; without, undefined when it is not a regular
   * file. O_NOFOLLOW: a link at the final component is never written through. A descriptor kept
   * from an earlier record is used only if the path, walked again for this one, still leads to
   * its inode.
   */
  private async fileFor(loc: Loc, want: { writable: boolean; create: boolean }): Promise<OpenFile | undefined> {
    const { root, rel } = loc;
    const key = keyOf(root, rel);
    const cached = this.open.get(key);
    let carryDirty = false;
    if (cached !== undefined) {
      // Opened through this very walk (the records of one path): its name still leads there.
      const st = cached.loc === loc ? undefined : lstatAt(loc.at);
      const same = cached.loc === loc || (st !== undefined && st.isFile() && st.ino === cached.ino && st.dev === cached.dev);
      this.open.delete(key);
      if (same && (cached.writable || !want.writable)) {
        this.open.set(key, cached);
        cached.loc = loc;
        return cached;
      }
      // Opened for a meta and now to be written, or the path leads elsewhere now. fsync of the
      // new descriptor covers the old one's changes when it is the same file.
      if (same) carryDirty = cached.dirty;
      else if (cached.dirty) await this.settle(cached).catch(() => undefined);
      await cached.fh.close();
    }
    let fh: SyncFile | undefined;
    let opened: Stats | undefined;
    let created = false;
    let triedChmod = false;
    // A path the manifest does not know is most likely new: try to create it first, which saves
    // a failed open per new file.
    let createFirst = want.create && !(this.manifest.hasRoot(root) && this.manifest.get(root, rel) !== undefined);
    for (let attempt = 0; fh === undefined; attempt++) {
      if (attempt > 4) throw Object.assign(new Error(`could not open ${root}/${rel} as a regular file (it keeps changing)`), { code: 'EAGAIN' });
      if (createFirst) {
        createFirst = false;
        try {
          fh = await syncFs.open(loc.at, NEW_FILE_FLAGS, CREATED_FILE_MODE);
          created = true;
          break;
        } catch (err) {
          // Something is there (a file, a link, a directory): open it as below.
          if (errnoOf(err) !== 'EEXIST') throw err;
        }
      }
      try {
        const h = await syncFs.open(loc.at, want.writable ? OPEN_WRITE : OPEN_READ);
        const st = await h.stat();
        if (st.isFile()) {
          fh = h;
          opened = st;
          break;
        }
        await h.close();
        if (!want.create) return undefined;
        await this.removeAt(root, rel, loc.dir, loc.name, st);
      } catch (err) {
        const code = errnoOf(err);
        if (code === 'ENOENT') {
          if (!want.create) return undefined;
          try {
            fh = await syncFs.open(loc.at, NEW_FILE_FLAGS, CREATED_FILE_MODE);
            created = true;
          } catch (e2) {
            if (errnoOf(e2) !== 'EEXIST') throw e2;
          }
        } else if (code === 'ELOOP' || code === 'EISDIR' || code === 'ENXIO') {
          // A link (O_NOFOLLOW), a directory, or a fifo with no reader (O_NONBLOCK).
          if (!want.create) return undefined;
          await this.removeAt(root, rel, loc.dir, loc.name);
        } else if ((code === 'EACCES' || code === 'EPERM') && !triedChmod) {
          // A file we own but made read-only by an earlier meta (git objects are 0444): a redo
          // must still be able to write it; the following meta sets the mode again.
          triedChmod = true;
          if (!this.grantOwnerAccess(loc, want.writable)) throw err;
        } else throw err;
      }
    }
    // An open file's own fstat above; a created one's here (its mode after the umask).
    const st = opened ?? (await fh.stat());
    if (created) {
      // The umask may have narrowed the creation mode; the manifest says 0600 until a meta.
      // (The agent's own umask, 077, never does: no chmod per new file then.)
      if ((st.mode & 0o7777) !== CREATED_FILE_MODE) await fh.chmod(CREATED_FILE_MODE);
      this.markDir(root, loc.dirRel);
    }
    const of: OpenFile = { key, root, rel, fh, loc, ino: st.ino, dev: st.dev, writable: want.writable, dirty: created || carryDirty, statPending: created, created, uid: st.uid, gid: st.gid, mode: created ? CREATED_FILE_MODE : st.mode & 0o7777, size: created ? 0 : st.size };
    this.open.set(key, of);
    if (this.open.size > MAX_OPEN_FILES) await this.evictOldest(of);
    return of;
  }

  /** Adds the owner's read (and write) permission to a file this agent owns, through a descriptor (a path could be swapped). */
  private grantOwnerAccess(loc: Loc, writable: boolean): boolean {
    const st = lstatAt(loc.at);
    const uid = process.getuid?.();
    if (st === undefined || !st.isFile() || (uid !== undefined && uid !== 0 && st.uid !== uid)) return false;
    let fd: number;
    try {
      fd = fs.openSync(loc.at, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    } catch {
      // Not even readable (0000): only a path chmod would do, and a path may be swapped.
      return false;
    }
    try {
      const cur = fs.fstatSync(fd);
      if (cur.ino !== st.ino) return false;
      fs.fchmodSync(fd, (cur.mode & 0o7777) | (writable ? 0o600 : 0o400));
      return true;
    } finally {
      closeFd(fd);
    }
  }

  /**
   * Syncs and closes the least recently used files, several at once: their fsyncs then share
   * journal commits, where one at a time would cost a commit per file (~0.25 ms each). The
   * fsyncs run in the thread pool while the next records are applied, and are waited for at the
   * next durable point (or here, once BACKGROUND_SYNCS_MAX are in flight): a batch of thousands
   * of small files no longer stops every EVICT_BATCH files for a journal commit.
   */
  private async evictOldest(keep: OpenFile): Promise<void> {
    const victims: OpenFile[] = [];
    for (const of of this.open.values()) {
      if (victims.length >= EVICT_BATCH || this.open.size - victims.length <= MAX_OPEN_FILES - EVICT_BATCH) break;
      if (of !== keep) victims.push(of);
    }
    for (const of of victims) {
      this.open.delete(of.key);
      if (of.dirty && this.syncBin !== undefined && ++this.evictedDirty > (this.seams.syncfsAfterFiles ?? SYNCFS_AFTER_FILES)) {
        // Thousands of small files: one syncfs at the durable point covers this one with the
        // rest, where an fsync each would cost a journal commit each.
        this.unsynced.add(of.root);
        of.dirty = false;
      }
      this.syncing.push(this.closeAfter(of, this.settle(of), 0));
    }
    if (this.syncing.length >= BACKGROUND_SYNCS_MAX) await this.settleBackground(this.syncing.length - BACKGROUND_SYNCS_MAX / 2);
  }

  /**
   * A file taken out of the open set, synced in the background (`sync`): its descriptor is closed
   * only once that is over, never under a running fsync. The result is observed at the durable
   * point; never an unhandled rejection meanwhile.
   */
  private closeAfter(of: OpenFile, sync: Promise<void>, seq: number): Promise<void> {
    const done = sync.catch((err: unknown) => Promise.reject(applyFailed(err, 'sync', seq, of.root, of.rel))).finally(() => of.fh.close());
    done.catch(() => undefined);
    return done;
  }

  /** Waits for the oldest `n` background fsyncs (all by default); throws the first failure. */
  private async settleBackground(n = this.syncing.length): Promise<void> {
    await allOrFirstFailure(this.syncing.splice(0, n));
  }

  /** Waits for the writes behind, copies the stat of a written file into the manifest and fsyncs it if dirty (unless a syncfs will). */
  private async settle(of: OpenFile, fsync = true): Promise<void> {
    await of.fh.settled();
    if (of.statPending) {
      this.fillFileStat(of.root, of.rel, await of.fh.stat());
      of.statPending = false;
    }
    if (of.dirty && fsync) {
      await this.fsyncFd(of.fh.fd);
      of.dirty = false;
    }
  }

  /** Forgets the open files at `rel` or below (removed, replaced or renamed: their data no longer matters there). */
  private dropUnder(root: string, rel: string): void {
    // Directories at or below `rel` go or move: whatever was known of their default ACLs.
    this.defaultAcls.clear();
    // The directory the kept location holds open is going (it, or a directory above it).
    if (this.pathLoc !== undefined && this.pathLoc.root === root && this.pathLoc.dirRel !== '' && isWithin(this.pathLoc.dirRel, rel)) this.forgetPathLoc();
    for (const of of this.open.values()) {
      if (of.root === root && isWithin(of.rel, rel)) {
        this.open.delete(of.key);
        // The path's content is replaced: errors on close are moot. Its descriptor closes once
        // its writes behind are over, and the durable point waits for that as for an eviction.
        this.syncing.push(of.fh.close().catch(() => undefined));
      }
    }
  }

  private async closeAll(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.allSettled(all.map((of) => of.fh.close()));
  }

  // ---- durability ----------------------------------------------------------------------------

  /**
   * Makes every change since the last durable point durable: fsync (not fdatasync: sizes and
   * modes changed) of every dirty file and of every directory whose entries changed, all in
   * parallel, so that many small files share the file system's journal commits. Directories
   * are reached by walking from their root again: a directory replaced by a link since is not
   * followed (what it held is gone from the tree, and a redo or verify deals with it).
   */
  private async makeDurable(seq: number): Promise<void> {
    await this.waitAfter();
    // Roots whose files were closed unsynced get one syncfs, which also covers their open files
    // and directories: those are not fsynced one by one.
    const files = [...this.open.values()].filter((of) => of.dirty || of.statPending || of.fh.behind);
    const dirs = [...this.dirtyDirs.values()];
    const whole = this.wholeRoots(files, dirs);
    this.unsynced.clear();
    this.evictedDirty = 0;
    this.writtenSincePoint = 0;
    this.dirtyDirs.clear();
    const jobs: Promise<void>[] = [];
    for (const of of files) {
      jobs.push(this.settle(of, !whole.has(of.root)).catch((err) => Promise.reject(applyFailed(err, 'sync', seq, of.root, of.rel))));
    }
    for (const d of dirs) {
      if (whole.has(d.root)) continue;
      jobs.push(this.fsyncDir(d.root, d.rel).catch((err) => Promise.reject(applyFailed(err, 'sync', seq, d.root, d.rel === '' ? '.' : d.rel))));
    }
    // Files evicted since the last durable point were fsynced in the background: this point
    // covers them too.
    jobs.push(this.settleBackground());
    // After everything above, whose writes are in the page cache by now.
    jobs.push(Promise.allSettled(jobs).then(() => this.syncWhole(whole, seq)));
    // After a failed fsync the kernel may have dropped the dirty pages: nothing since the last
    // durable point can be trusted, and the caller redoes from there.
    await allOrFirstFailure(jobs);
    for (const of of files) if (whole.has(of.root)) of.dirty = false;
  }

  /** syncfs may make points durable: `sync` is there, and no test seam turned it off. */
  private syncfsEnabled(): boolean {
    return this.syncBin !== undefined && (this.seams.syncfsAfterFiles ?? SYNCFS_AFTER_FILES) !== Infinity;
  }

  /**
   * The roots a point syncs whole: those with files closed unsynced, and every dirty root when
   * more than SYNCFS_AT_POINT_AFTER files and directories would otherwise be fsynced one by one.
   */
  private wholeRoots(files: OpenFile[], dirs: { root: string }[]): Set<string> {
    const whole = new Set(this.unsynced);
    if (!this.syncfsEnabled()) return whole;
    const apart = files.filter((of) => of.dirty && !whole.has(of.root)).length + dirs.filter((d) => !whole.has(d.root)).length;
    if (apart > SYNCFS_AT_POINT_AFTER) {
      for (const of of files) if (of.dirty) whole.add(of.root);
      for (const d of dirs) whole.add(d.root);
    }
    return whole;
  }

  /** The previous call's point (ApplyOptions.after), once: its failure fails this call. */
  private async waitAfter(): Promise<void> {
    const after = this.after;
    this.after = undefined;
    await after;
  }

  /**
   * The last durable point of an overlapping call (ApplyOptions.overlap), started to run behind
   * the caller when one syncfs per root covers all of it, or the files no syncfs covers took
   * FSYNC_BEHIND_BYTES of data and no directory outside one changed; undefined otherwise (a point
   * of a few small writes: fsyncs cost less than flushing the whole file system), and the call
   * makes it itself. It waits for the previous point first. Open files get their stat now: the
   * descriptors of files a syncfs covers close with the call, before that syncfs; the others go
   * with the point, each closed once its fsync is over. The point also waits for the fsyncs
   * started in the background before it. Resolves once `durable(seq)`
   * returned; rejects with the first failure, after which nothing since the last point reported
   * can be trusted: the applier is suspect again, and the caller redoes from there.
   */
  private async startPoint(seq: number, durable: (seq: number) => Promise<void>, applied: (() => void) | undefined): Promise<PointBehind | undefined> {
    if (!this.syncfsEnabled()) return undefined;
    const files = [...this.open.values()];
    const dirs = [...this.dirtyDirs.values()];
    const whole = this.wholeRoots(files, dirs);
    // Files no syncfs covers: fsynced behind only after a group that wrote much (a large file),
    // and never with a directory to fsync too (its walk belongs to the call).
    const apart = files.filter((of) => of.dirty && !whole.has(of.root));
    if (!dirs.every((d) => whole.has(d.root)) || (apart.length > 0 && this.writtenSincePoint < FSYNC_BEHIND_BYTES)) return undefined;
    await this.waitAfter();
    await allOrFirstFailure(files.filter((of) => of.statPending || of.fh.behind).map((of) => this.settle(of, false).catch((err) => Promise.reject(applyFailed(err, 'stat', seq, of.root, of.rel)))));
    for (const of of files) of.dirty = false;
    this.dirtyDirs.clear();
    this.unsynced.clear();
    this.evictedDirty = 0;
    this.writtenSincePoint = 0;
    const background = this.syncing.splice(0);
    // Their descriptors go with the point, closed once their fsync is over (never under it);
    // the next call opens the files again.
    for (const of of apart) {
      this.open.delete(of.key);
      background.push(this.closeAfter(of, of.fh.settled().then(() => this.fsyncFd(of.fh.fd)), seq));
    }
    applied?.();
    const point = (async () => {
      await allOrFirstFailure(background);
      await this.syncWhole(whole, seq);
      await durable(seq);
    })().catch((err: unknown) => {
      this.suspect = true;
      throw err;
    });
    // Observed by the caller (and the next call); never an unhandled rejection meanwhile.
    point.catch(() => undefined);
    this.behind = point;
    return { done: point };
  }

  /** One syncfs per root whose files were closed unsynced. */
  private async syncWhole(roots: Set<string>, seq: number): Promise<void> {
    for (const root of roots) {
      const rootPath = this.rootPaths.get(root);
      if (rootPath === undefined) continue;
      try {
        ioCounters.fsyncs++;
        if (this.seams.syncfs !== undefined) await this.seams.syncfs(rootPath);
        else {
          let helper = this.syncfsHelpers.get(rootPath);
          if (helper === undefined) this.syncfsHelpers.set(rootPath, (helper = new SyncfsHelper(this.syncBin!, rootPath)));
          await helper.sync();
        }
      } catch (err) {
        // `sync` cannot be run at all: fsync each file from now on. Either way what was closed
        // unsynced cannot be trusted, and the caller redoes from the last durable point.
        if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'EACCES') {
          this.log.warn({ err }, `apply: ${this.syncBin ?? 'sync'} cannot be run: files are made durable one fsync each from now on`);
          this.syncBin = undefined;
        }
        throw applyFailed(err, 'sync', seq, root, '.');
      }
    }
  }

  private fsyncFd(fd: number): Promise<void> {
    if (this.seams.fsync !== undefined) return this.seams.fsync(fd);
    ioCounters.fsyncs++;
    return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
  }

  /** fsync of directory `rel` below its root; one removed or swapped since it was marked needs none. */
  private async fsyncDir(root: string, rel: string): Promise<void> {
    let fd: number | undefined;
    try {
      fd = openDirBeneath(this.guard?.rootRef(root) ?? this.rootPaths.get(root)!, rel);
    } catch (err) {
      if (err instanceof PathSwapped) return;
      throw err;
    }
    if (fd === undefined) return;
    try {
      await this.fsyncFd(fd);
    } finally {
      closeFd(fd);
    }
  }

  /** fsync of a directory by path (the parent of a root created at start-up). */
  private async fsyncPath(abs: string): Promise<void> {
    let fd: number;
    try {
      fd = fs.openSync(abs, DIR_FLAGS);
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return;
      throw err;
    }
    try {
      await this.fsyncFd(fd);
    } finally {
      closeFd(fd);
    }
  }

  // ---- manifest ------------------------------------------------------------------------------

  private fillFileStat(root: string, rel: string, st: FileStat): void {
    if (!this.manifest.hasRoot(root)) return;
    const e = this.manifest.get(root, rel);
    if (e?.kind !== 'file') return;
    this.manifest.set(root, rel, { ...e, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777, readAt: this.clock.now(), uid: st.uid, gid: st.gid, nlink: st.nlink, ctimeMs: st.ctimeMs });
    // The other names of a hard-linked file share its content and metadata.
    if (st.nlink > 1) {
      for (const p of this.manifest.pathsForIno(root, st.ino)) {
        const s = this.manifest.get(root, p);
        if (p !== rel && s?.kind === 'file') this.manifest.set(root, p, { ...this.manifest.get(root, rel)!, ino: st.ino } as typeof s);
      }
    }
  }

  /** The owner as on disk (and the attributes as applied) into the manifest entry of `rel`. */
  private fillMeta(root: string, rel: string, st: Stats | undefined, xattrHash: Buffer | undefined, xattrsSet: boolean): void {
    if (!this.manifest.hasRoot(root)) return;
    const e = this.manifest.get(root, rel);
    if (e === undefined) return;
    const next = { ...e };
    if (st !== undefined) {
      next.ino = st.ino;
      next.uid = st.uid;
      next.gid = st.gid;
      // The mode as applied, which is not the record's when a bit was cleared (owners off, an
      // unknown name): the manifest says what is on disk, for the standby watch and for capture
      // once this node is active.
      if (next.kind !== 'symlink') {
        next.ctimeMs = st.ctimeMs;
        next.mode = st.mode & 0o7777;
      }
    }
    if (xattrsSet && next.kind !== 'symlink') next.xattrHash = xattrHash;
    this.manifest.set(root, rel, next);
  }

  private fillIno(root: string, rel: string, st: Stats): void {
    if (!this.manifest.hasRoot(root)) return;
    const e = this.manifest.get(root, rel);
    if (e === undefined || e.ino === st.ino) return;
    this.manifest.set(root, rel, { ...e, ino: st.ino });
  }
}
