// The passive's applier: turns the ordered data records of the write log into the state of the
// protected trees on disk, and reports how far that state is durable. Every path record is an
// absolute setter, so re-applying a run of records after a crash converges to the same tree;
// `rename` is the exception and therefore a commit barrier. It must never write outside a
// protected root, never follow a symbolic link, and never report a record durable before it is.
import fs, { constants as C, type Stats } from 'node:fs';
import fsp from 'node:fs/promises';
import { syncFs, type SyncFile } from './sync-fs.ts';
import { TandemError, errnoOf } from '../../shared/errors.ts';
import { hash64, initHash } from '../../shared/hash.ts';
import type { Logger } from '../../shared/log.ts';
import { systemClock, type Clock } from '../../shared/clock.ts';
import type { ProtectedRoot } from '../../shared/config/load.ts';
import {
  decompressWrite,
  isWithin,
  parentOf,
  type DataRecord,
  type FileRecord,
  type MetaRecord,
  type MkdirRecord,
  type PathRecord,
  type RenameRecord,
  type SymlinkRecord,
  type WriteRecord,
} from '../../shared/protocol/index.ts';
import { applyRecordToManifest, type Manifest } from '../manifest/index.ts';
import { PathGuard, lstatOrUndefined, outsideRootError } from './path-guard.ts';
import { ioCounters } from '../../shared/io-counters.ts';

/** Files kept open inside one apply call; beyond this the least recently used is synced and closed. */
export const MAX_OPEN_FILES = 64;
/** The applier works at most this long before it lets the event loop run other callbacks. */
const YIELD_EVERY_MS = 5;
/** Mode of parent directories the applier creates, and of files it creates before a `meta`. */
export const CREATED_DIR_MODE = 0o755;
export const CREATED_FILE_MODE = 0o644;
/** Files synced and closed together when the limit is passed. */
const EVICT_BATCH = 16;
/** Linux IOV_MAX: buffers per writev call. */
const IOV_MAX = 1024;

const OPEN_WRITE = C.O_WRONLY | C.O_NOFOLLOW | C.O_NONBLOCK;
const OPEN_READ = C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK;
const CREATE_WRITE = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW;

/**
 * Test seams. Production code leaves them unset; tests use them to simulate a crash at a given
 * record, a full disk, or to observe which descriptors were made durable.
 */
export interface ApplierSeams {
  /** Called before each record is applied; a throw fails the apply at that record. */
  beforeRecord?: (record: DataRecord) => void | Promise<void>;
  /** Replaces the positional writev of file data; returns the bytes written. */
  writev?: (fd: number, buffers: Uint8Array[], position: number) => Promise<number>;
  /** Replaces fsync of files and directories at durable points. */
  fsync?: (fd: number) => Promise<void>;
}

export interface ApplierOptions {
  roots: ProtectedRoot[];
  manifest: Manifest;
  blockSize: number;
  log: Logger;
  clock?: Clock;
  seams?: ApplierSeams;
}

interface OpenFile {
  key: string;
  root: string;
  rel: string;
  fh: SyncFile;
  writable: boolean;
  /** Written, truncated, created or chmod-ed since the last durable point: needs fsync. */
  dirty: boolean;
  /** Written or truncated since its stat was last copied into the manifest. */
  statPending: boolean;
}

interface DirtyDir {
  root: string;
  rel: string;
}

/** A file system error of one record, wrapped at the record boundary with its context. */
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

function keyOf(root: string, rel: string): string {
  return `${root}\0${rel}`;
}

function absParent(abs: string): string {
  return abs.slice(0, abs.lastIndexOf('/'));
}

/** Seconds as a double, the unit of futimes/utimes: number keeps sub-millisecond precision, a Date would not. */
function toSeconds(ms: number): number {
  return ms / 1000;
}

export class Applier {
  private readonly opts: ApplierOptions;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly manifest: Manifest;
  private readonly seams: ApplierSeams;
  private readonly rootPaths = new Map<string, string>();
  private guard: PathGuard | undefined;
  /** Open files in least-recently-used order (Map keeps insertion order; a use re-inserts). */
  private readonly open = new Map<string, OpenFile>();
  /** Directories (absolute path) whose entries or own metadata changed since the last durable point. */
  private readonly dirtyDirs = new Map<string, DirtyDir>();
  private busy = false;
  /**
   * The disk may hold changes that were applied but never made durable: after start-up (the
   * previous process may have crashed mid-batch) and after a failed apply. A redo then finds
   * directories and entries already there, so "created now" no longer tells which directories
   * need an fsync: while suspect, every ancestor directory of every path touched is synced.
   */
  private suspect = true;
  private closed = false;

  constructor(opts: ApplierOptions) {
    if (!Number.isSafeInteger(opts.blockSize) || opts.blockSize <= 0) {
      throw new TandemError({ code: 'TANDEM_ERR_INTERNAL', op: 'create applier', reason: `bad block size ${opts.blockSize}` });
    }
    this.opts = opts;
    this.log = opts.log.child({ component: 'apply' });
    this.clock = opts.clock ?? systemClock;
    this.manifest = opts.manifest;
    this.seams = opts.seams ?? {};
  }

  /** Must be called once before apply: resolves each root with realpath (a root may itself be a configured symlink), creates a missing root directory. */
  async init(): Promise<void> {
    await initHash();
    for (const r of this.opts.roots) {
      try {
        const existed = (await lstatOrUndefined(r.path)) !== undefined;
        if (!existed) {
          await fsp.mkdir(r.path, { recursive: true, mode: CREATED_DIR_MODE });
          // The agent's umask is 077 (its own files are private): the root gets its mode as before.
          await fsp.chmod(r.path, CREATED_DIR_MODE);
          await this.fsyncPath(absParent(r.path));
          this.log.info({ root: r.name, path: r.path }, 'protected root created');
        }
        const real = await fsp.realpath(r.path);
        const st = await fsp.stat(real);
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
    this.guard = new PathGuard(this.rootPaths);
  }

  /**
   * Applies `records` in order (one batch, or the rest of one after a crash). Calls
   * `durable(seq)` each time every record up to `seq` is applied AND durable, and always once
   * at the end with the last record's seq; resolves after that last call returned. The same seq
   * is never reported twice (a batch ending with a rename reports it once). Throws TandemError:
   * TANDEM_ERR_PATH_OUTSIDE_ROOT, TANDEM_ERR_APPLY_FAILED (details: seq, root, path, errno),
   * TANDEM_ERR_CHECKSUM. Records before the failing one may have been applied; they were
   * reported durable only if `durable` was called for them.
   */
  async apply(records: DataRecord[], durable: (seq: number) => Promise<void>): Promise<void> {
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
    // The disk may have changed between calls (an operator, a crash): trust nothing cached.
    this.guard.clear();
    let lastApplied: number | undefined;
    let pending = false;
    try {
      let i = 0;
      let sliceStart = performance.now();
      while (i < records.length) {
        // Most calls are synchronous (sync-fs.ts): let timers and sockets run every few ms.
        if (performance.now() - sliceStart > YIELD_EVERY_MS) {
          await new Promise<void>((resolve) => setImmediate(resolve));
          sliceStart = performance.now();
        }
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
        const n = await this.applyAt(records, i);
        if (this.suspect && r.op !== 'sync-begin' && r.op !== 'sync-end') {
          this.markAncestors(r.root, r.path);
          if (r.op === 'mkdir') this.markDir(r.root, r.path, `${this.rootPaths.get(r.root)!}/${r.path}`);
        }
        lastApplied = records[i + n - 1]!.seq;
        pending = true;
        i += n;
      }
      if (pending && lastApplied !== undefined) {
        await this.makeDurable(lastApplied);
        await durable(lastApplied);
      }
      this.suspect = false;
    } catch (err) {
      this.suspect = true;
      throw err;
    } finally {
      // Descriptors never outlive the call: between batches an operator could replace or delete
      // a file, and a kept descriptor would then write into an inode no path leads to.
      await this.closeAll();
      this.dirtyDirs.clear();
      this.busy = false;
    }
  }

  /** Closes any file descriptors kept open. */
  async close(): Promise<void> {
    this.closed = true;
    await this.closeAll();
  }

  // ---- one record (or a run of coalesced writes) -------------------------------------------

  /** Applies the record at `i` (and the writes that coalesce with it); returns how many were consumed. */
  private async applyAt(records: DataRecord[], i: number): Promise<number> {
    const r = records[i]!;
    if (r.op === 'sync-begin' || r.op === 'sync-end') {
      await this.seams.beforeRecord?.(r);
      return 1;
    }
    if (r.op === 'write') return this.applyWriteRun(records, i);
    try {
      await this.seams.beforeRecord?.(r);
      switch (r.op) {
        case 'mkdir':
          await this.applyMkdir(r);
          break;
        case 'file':
          await this.applyFile(r);
          break;
        case 'meta':
          await this.applyMeta(r);
          break;
        case 'symlink':
          await this.applySymlink(r);
          break;
        case 'unlink':
        case 'rmdir':
          await this.applyRemove(r);
          break;
        case 'rename':
          throw new Error('rename reached applyAt');
      }
    } catch (err) {
      throw applyFailed(err, r.op, r.seq, r.root, r.path);
    }
    return 1;
  }

  private async applyMkdir(r: MkdirRecord): Promise<void> {
    const abs = await this.prepare(r, r.path, true);
    const mode = r.mode & 0o7777;
    let st = await lstatOrUndefined(abs);
    if (st !== undefined && !st.isDirectory()) {
      await this.removePath(r.root, r.path, abs, st);
      st = undefined;
    }
    if (st === undefined) {
      await syncFs.mkdir(abs, mode & 0o777);
      this.markDir(r.root, parentOf(r.path), absParent(abs));
    }
    // mkdir's mode passes through the umask and drops setgid/sticky: chmod says what it must be.
    if (st === undefined || (st.mode & 0o7777) !== mode) {
      await syncFs.chmod(abs, mode);
      this.markDir(r.root, r.path, abs);
      st = await syncFs.lstat(abs);
    }
    this.guard!.noteDir(r.root, r.path);
    applyRecordToManifest(this.manifest, r, this.opts.blockSize);
    this.fillIno(r.root, r.path, st);
  }

  private async applyFile(r: FileRecord): Promise<void> {
    const abs = await this.prepare(r, r.path, true);
    const of = (await this.fileFor(r.root, r.path, abs, { writable: true, create: true }))!;
    await of.fh.truncate(r.size);
    of.dirty = true;
    of.statPending = true;
    applyRecordToManifest(this.manifest, r, this.opts.blockSize);
  }

  /**
   * Writes the write record at `i` together with the following writes to the same file at
   * contiguous offsets, in one writev: a 4 MiB batch of 64 KiB writes is one syscall, not 64.
   * Every hash is checked before anything is written; a run stops before a record whose hash
   * does not match, and that record then fails on its own with nothing of it written.
   */
  private async applyWriteRun(records: DataRecord[], i: number): Promise<number> {
    const first = records[i] as WriteRecord;
    this.checkHash(first);
    let n = 1;
    let end = first.offset + first.data.length;
    for (;;) {
      const next = records[i + n];
      if (next === undefined || next.op !== 'write' || next.root !== first.root || next.path !== first.path || next.offset !== end) break;
      if (!this.hashMatches(next)) break;
      end += next.data.length;
      n++;
    }
    try {
      for (let k = 0; k < n; k++) await this.seams.beforeRecord?.(records[i + k]!);
      const abs = await this.prepare(first, first.path, true);
      const of = (await this.fileFor(first.root, first.path, abs, { writable: true, create: true }))!;
      const buffers: Uint8Array[] = [];
      for (let k = 0; k < n; k++) buffers.push((records[i + k] as WriteRecord).data);
      of.dirty = true;
      of.statPending = true;
      await this.writeAll(of.fh, buffers, first.offset);
    } catch (err) {
      throw applyFailed(err, 'write', first.seq, first.root, first.path, n > 1 ? { records: n } : {});
    }
    for (let k = 0; k < n; k++) applyRecordToManifest(this.manifest, records[i + k]!, this.opts.blockSize);
    return n;
  }

  private hashMatches(r: WriteRecord): boolean {
    const h = hash64(r.data);
    return r.hash.length === h.length && h.equals(r.hash);
  }

  private checkHash(r: WriteRecord): void {
    if (this.hashMatches(r)) return;
    throw new TandemError({
      code: 'TANDEM_ERR_CHECKSUM',
      op: `apply write ${r.root}/${r.path}`,
      reason: `the data (${r.data.length} bytes at offset ${r.offset}) does not match its xxhash64`,
      hint: 'the record was damaged after the active hashed it (memory, disk or transport); nothing was written: the passive must receive it again',
      details: { seq: r.seq, root: r.root, path: r.path, offset: r.offset },
    });
  }

  private async writeAll(fh: SyncFile, buffers: Uint8Array[], position: number): Promise<void> {
    let pos = position;
    let rest = buffers;
    while (rest.length > 0) {
      const chunk = rest.length > IOV_MAX ? rest.slice(0, IOV_MAX) : rest;
      const want = chunk.reduce((s, b) => s + b.length, 0);
      const wrote = this.seams.writev !== undefined ? await this.seams.writev(fh.fd, chunk, pos) : (await fh.writev(chunk, pos)).bytesWritten;
      pos += wrote;
      if (wrote >= want) {
        rest = rest.slice(chunk.length);
        continue;
      }
      if (wrote === 0) throw Object.assign(new Error('writev wrote nothing'), { code: 'EIO' });
      // A short write (rare on a regular file): drop what was written and go on from there.
      let skip = wrote;
      const left: Uint8Array[] = [];
      for (const b of rest) {
        if (skip >= b.length) skip -= b.length;
        else {
          left.push(skip > 0 ? b.subarray(skip) : b);
          skip = 0;
        }
      }
      rest = left;
    }
  }

  private async applyMeta(r: MetaRecord): Promise<void> {
    const { abs, parentsExist } = await this.prepareExisting(r, r.path);
    const st = parentsExist ? await lstatOrUndefined(abs) : undefined;
    if (st === undefined) {
      // Only on a redo can a meta meet a missing path (a later record that removed it had
      // already been applied); otherwise it is a divergence that verify repairs.
      this.log.debug({ root: r.root, path: r.path, seq: r.seq }, 'meta: path missing, skipped');
      applyRecordToManifest(this.manifest, r, this.opts.blockSize);
      return;
    }
    const mode = r.mode & 0o7777;
    const t = toSeconds(r.mtimeMs);
    if (st.isSymbolicLink()) {
      // Link permissions mean nothing on Linux; only its own times, never the target's.
      await syncFs.lutimes(abs, t, t);
      this.markDir(r.root, parentOf(r.path), absParent(abs));
      applyRecordToManifest(this.manifest, r, this.opts.blockSize);
      this.fillIno(r.root, r.path, st);
      return;
    }
    if (st.isFile()) {
      const of = await this.fileFor(r.root, r.path, abs, { writable: false, create: false });
      if (of !== undefined) {
        await of.fh.chmod(mode);
        await of.fh.utimes(t, t);
        of.dirty = true;
        of.statPending = false;
        const after = await of.fh.stat();
        applyRecordToManifest(this.manifest, r, this.opts.blockSize);
        this.fillFileStat(r.root, r.path, after);
        return;
      }
    }
    // A directory (or a file that could not be opened, or a fifo): by path. Parents are real
    // directories and the final component was not a link a moment ago.
    await syncFs.chmod(abs, mode);
    await syncFs.utimes(abs, t, t);
    if (st.isDirectory()) this.markDir(r.root, r.path, abs);
    else this.markDir(r.root, parentOf(r.path), absParent(abs));
    const after = await syncFs.lstat(abs);
    applyRecordToManifest(this.manifest, r, this.opts.blockSize);
    if (after.isFile()) this.fillFileStat(r.root, r.path, after);
    else this.fillIno(r.root, r.path, after);
  }

  private async applySymlink(r: SymlinkRecord): Promise<void> {
    const abs = await this.prepare(r, r.path, true);
    let st: Stats | undefined;
    try {
      await syncFs.symlink(r.target, abs);
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw err;
      const cur = await syncFs.lstat(abs);
      if (cur.isSymbolicLink() && (await syncFs.readlink(abs)) === r.target) st = cur;
      else {
        await this.removePath(r.root, r.path, abs, cur);
        await syncFs.symlink(r.target, abs);
      }
    }
    this.dropUnder(r.root, r.path);
    this.guard!.invalidate(r.root, r.path);
    this.markDir(r.root, parentOf(r.path), absParent(abs));
    st ??= await syncFs.lstat(abs);
    applyRecordToManifest(this.manifest, r, this.opts.blockSize);
    this.fillIno(r.root, r.path, st);
  }

  private async applyRemove(r: PathRecord): Promise<void> {
    const { abs, parentsExist } = await this.prepareExisting(r, r.path);
    // A missing parent (or a file where a parent should be) means the path is absent already.
    if (parentsExist) await this.removePath(r.root, r.path, abs);
    applyRecordToManifest(this.manifest, r, this.opts.blockSize);
  }

  /**
   * Rename: the one record that moves content, so it is not idempotent. `barrier` makes the
   * records before it durable and reports them; the caller then makes the rename itself durable
   * and reports it. On a redo, a missing source means the rename already happened.
   */
  private async applyRename(r: RenameRecord, barrier: () => Promise<void>): Promise<void> {
    const guard = this.guard!;
    // Refuse before anything happens, the barrier included.
    const src = await this.wrap(r, () => guard.checkParents('rename', r.root, r.path, r.seq));
    try {
      guard.resolve('rename', r.root, r.to, r.seq);
    } catch (err) {
      throw err instanceof TandemError ? outsideRootError('rename', r.root, r.path, `target "${String(r.to)}": ${err.reason}`, r.seq) : err;
    }
    const dst = await this.wrap(r, async () => {
      try {
        return await guard.checkParents('rename', r.root, r.to, r.seq);
      } catch (err) {
        if (err instanceof TandemError) throw outsideRootError('rename', r.root, r.path, `target "${r.to}": ${err.reason}`, r.seq);
        throw err;
      }
    });
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
      const srcSt = src.firstMissing < 0 ? await lstatOrUndefined(src.abs) : undefined;
      if (srcSt === undefined) {
        const dstSt = dst.firstMissing < 0 ? await lstatOrUndefined(dst.abs) : undefined;
        if (dstSt === undefined) {
          this.log.warn({ root: r.root, path: r.path, to: r.to, seq: r.seq }, 'rename source missing');
          if (this.manifest.hasRoot(r.root)) {
            this.manifest.delete(r.root, r.path);
            this.manifest.delete(r.root, r.to);
          }
          return;
        }
        // Already renamed before a crash, perhaps never synced: sync both parents again. Bring
        // the manifest along only if it still has the source; if it does not, it already
        // describes the target and must keep it.
        this.markDir(r.root, parentOf(r.path), absParent(src.abs));
        this.markDir(r.root, parentOf(r.to), absParent(dst.abs));
        if (this.manifest.hasRoot(r.root) && this.manifest.get(r.root, r.path) !== undefined) {
          this.manifest.move(r.root, r.path, r.to);
          this.fillIno(r.root, r.to, dstSt);
        }
        return;
      }
      if (r.to === r.path) return;
      if (dst.firstMissing >= 0) await this.ensureParents(r.root, r.to, dst.firstMissing, r.seq, 'rename');
      const dstSt = await lstatOrUndefined(dst.abs);
      // rename(2) replaces a file atomically, but not a directory by a non-directory (or the
      // reverse), nor a non-empty directory: the setter says "replacing to", so clear it first.
      if (dstSt !== undefined && (dstSt.isDirectory() || srcSt.isDirectory())) await this.removePath(r.root, r.to, dst.abs, dstSt);
      this.dropUnder(r.root, r.path);
      this.dropUnder(r.root, r.to);
      guard.invalidate(r.root, r.path);
      guard.invalidate(r.root, r.to);
      await syncFs.rename(src.abs, dst.abs);
      this.markDir(r.root, parentOf(r.path), absParent(src.abs));
      this.markDir(r.root, parentOf(r.to), absParent(dst.abs));
      applyRecordToManifest(this.manifest, r, this.opts.blockSize);
      this.fillIno(r.root, r.to, srcSt);
    } catch (err) {
      throw applyFailed(err, 'rename', r.seq, r.root, r.path, { to: r.to });
    }
  }

  // ---- paths ---------------------------------------------------------------------------------

  private async wrap<T>(r: PathRecord, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw applyFailed(err, r.op, r.seq, r.root, r.path);
    }
  }

  /** Guard check of `rel`, then creation of its missing parents (when `create`). Returns its absolute path. */
  private async prepare(r: PathRecord, rel: string, create: boolean): Promise<string> {
    const check = await this.guard!.checkParents(r.op, r.root, rel, r.seq);
    if (check.firstMissing >= 0 && create) await this.ensureParents(r.root, rel, check.firstMissing, r.seq, r.op);
    return check.abs;
  }

  private async prepareExisting(r: PathRecord, rel: string): Promise<{ abs: string; parentsExist: boolean }> {
    const check = await this.guard!.checkParents(r.op, r.root, rel, r.seq);
    return { abs: check.abs, parentsExist: check.firstMissing < 0 };
  }

  /**
   * Makes the parents of `rel` real directories from segment `from` down: the passive's tree
   * belongs to Tandem, so a regular file in the way is replaced. A link in the way is never
   * replaced (the guard refused it; one appearing now is a race, refused the same way).
   */
  private async ensureParents(root: string, rel: string, from: number, seq: number, op: string): Promise<void> {
    const rootPath = this.rootPaths.get(root)!;
    const segs = rel.split('/');
    for (let i = from; i < segs.length - 1; i++) {
      const dirRel = segs.slice(0, i + 1).join('/');
      const abs = `${rootPath}/${dirRel}`;
      try {
        await syncFs.mkdir(abs, CREATED_DIR_MODE);
      } catch (err) {
        if (errnoOf(err) !== 'EEXIST') throw err;
        const st = await syncFs.lstat(abs);
        if (st.isSymbolicLink()) throw outsideRootError(op, root, rel, `parent "${dirRel}" is a symbolic link`, seq);
        if (st.isDirectory()) {
          this.guard!.noteDir(root, dirRel);
          continue;
        }
        await this.removePath(root, dirRel, abs, st);
        await syncFs.mkdir(abs, CREATED_DIR_MODE);
      }
      await syncFs.chmod(abs, CREATED_DIR_MODE);
      this.markDir(root, parentOf(dirRel), absParent(abs));
      this.guard!.noteDir(root, dirRel);
      if (this.manifest.hasRoot(root)) {
        const st = await syncFs.lstat(abs);
        this.manifest.set(root, dirRel, { kind: 'dir', mode: CREATED_DIR_MODE, ino: st.ino, mtimeMs: 0 });
      }
    }
  }

  /** Makes `rel` absent, whatever it is (a directory goes with its content). Missing is fine. */
  private async removePath(root: string, rel: string, abs: string, known?: Stats): Promise<void> {
    const st = known ?? (await lstatOrUndefined(abs));
    this.dropUnder(root, rel);
    this.guard!.invalidate(root, rel);
    if (st === undefined) return;
    // rm never follows links inside the tree (it lstats), so a link to elsewhere loses only itself.
    if (st.isDirectory()) await fsp.rm(abs, { recursive: true, force: true });
    else {
      try {
        await syncFs.unlink(abs);
      } catch (err) {
        if (errnoOf(err) !== 'ENOENT') throw err;
      }
    }
    this.markDir(root, parentOf(rel), absParent(abs));
  }

  /** Marks the root and every directory above `rel` as needing an fsync. */
  private markAncestors(root: string, rel: string): void {
    const rootPath = this.rootPaths.get(root)!;
    this.markDir(root, '', rootPath);
    for (let i = rel.indexOf('/'); i >= 0; i = rel.indexOf('/', i + 1)) {
      const dirRel = rel.slice(0, i);
      this.markDir(root, dirRel, `${rootPath}/${dirRel}`);
    }
  }

  private markDir(root: string, rel: string, abs: string): void {
    this.dirtyDirs.set(abs, { root, rel });
  }

  // ---- open files ------------------------------------------------------------------------------

  /**
   * The open file for `rel`, a regular file. With `create`, whatever else is there (a link, a
   * directory, a fifo) is replaced by an empty file; without, undefined when it is not a regular
   * file. O_NOFOLLOW: a link at the final component is never written through.
   */
  private async fileFor(root: string, rel: string, abs: string, want: { writable: boolean; create: boolean }): Promise<OpenFile | undefined> {
    const key = keyOf(root, rel);
    const cached = this.open.get(key);
    let carryDirty = false;
    if (cached !== undefined) {
      if (cached.writable || !want.writable) {
        this.open.delete(key);
        this.open.set(key, cached);
        return cached;
      }
      // Opened for a meta; now it must be written. fsync of the new descriptor covers the old one's changes.
      this.open.delete(key);
      carryDirty = cached.dirty;
      await cached.fh.close();
    }
    let fh: SyncFile | undefined;
    let created = false;
    let triedChmod = false;
    // A path the manifest does not know is most likely new: try to create it first, which saves
    // a failed open per new file (each file system call is a thread-pool round trip).
    let createFirst = want.create && !(this.manifest.hasRoot(root) && this.manifest.get(root, rel) !== undefined);
    for (let attempt = 0; fh === undefined; attempt++) {
      if (attempt > 4) throw Object.assign(new Error(`could not open ${abs} as a regular file (it keeps changing)`), { code: 'EAGAIN' });
      if (createFirst) {
        createFirst = false;
        try {
          fh = await syncFs.open(abs, CREATE_WRITE, CREATED_FILE_MODE);
          created = true;
          break;
        } catch (err) {
          // Something is there (a file, a link, a directory): open it as below.
          if (errnoOf(err) !== 'EEXIST') throw err;
        }
      }
      try {
        const h = await syncFs.open(abs, want.writable ? OPEN_WRITE : OPEN_READ);
        const st = await h.stat();
        if (st.isFile()) {
          fh = h;
          break;
        }
        await h.close();
        if (!want.create) return undefined;
        await this.removePath(root, rel, abs, st);
      } catch (err) {
        const code = errnoOf(err);
        if (code === 'ENOENT') {
          if (!want.create) return undefined;
          try {
            fh = await syncFs.open(abs, CREATE_WRITE, CREATED_FILE_MODE);
            created = true;
          } catch (e2) {
            if (errnoOf(e2) !== 'EEXIST') throw e2;
          }
        } else if (code === 'ELOOP' || code === 'EISDIR' || code === 'ENXIO') {
          // A link (O_NOFOLLOW), a directory, or a fifo with no reader (O_NONBLOCK).
          if (!want.create) return undefined;
          await this.removePath(root, rel, abs);
        } else if ((code === 'EACCES' || code === 'EPERM') && !triedChmod) {
          // A file we own but made read-only by an earlier meta (git objects are 0444): a redo
          // must still be able to write it; the following meta sets the mode again.
          triedChmod = true;
          if (!(await this.grantOwnerAccess(abs, want.writable))) throw err;
        } else throw err;
      }
    }
    if (created) {
      // The umask may have narrowed the creation mode; the manifest says 0644 until a meta.
      await fh.chmod(CREATED_FILE_MODE);
      this.markDir(root, parentOf(rel), absParent(abs));
    }
    const of: OpenFile = { key, root, rel, fh, writable: want.writable, dirty: created || carryDirty, statPending: created };
    this.open.set(key, of);
    if (this.open.size > MAX_OPEN_FILES) await this.evictOldest(of);
    return of;
  }

  private async grantOwnerAccess(abs: string, writable: boolean): Promise<boolean> {
    const st = await lstatOrUndefined(abs);
    const uid = process.getuid?.();
    if (st === undefined || !st.isFile() || (uid !== undefined && uid !== 0 && st.uid !== uid)) return false;
    await syncFs.chmod(abs, (st.mode & 0o7777) | (writable ? 0o600 : 0o400));
    return true;
  }

  /**
   * Syncs and closes the least recently used files, several at once: their fsyncs then share
   * journal commits, where one at a time would cost a commit per file (~0.25 ms each).
   */
  private async evictOldest(keep: OpenFile): Promise<void> {
    const victims: OpenFile[] = [];
    for (const of of this.open.values()) {
      if (victims.length >= EVICT_BATCH || this.open.size - victims.length <= MAX_OPEN_FILES - EVICT_BATCH) break;
      if (of !== keep) victims.push(of);
    }
    for (const of of victims) this.open.delete(of.key);
    const results = await Promise.allSettled(victims.map((of) => this.settle(of).finally(() => of.fh.close())));
    const failed = results.find((x): x is PromiseRejectedResult => x.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  /** Copies the stat of a written file into the manifest and fsyncs it if dirty. */
  private async settle(of: OpenFile): Promise<void> {
    if (of.statPending) {
      this.fillFileStat(of.root, of.rel, await of.fh.stat());
      of.statPending = false;
    }
    if (of.dirty) {
      await this.fsyncFd(of.fh.fd);
      of.dirty = false;
    }
  }

  /** Forgets the open files at `rel` or below (removed, replaced or renamed: their data no longer matters there). */
  private dropUnder(root: string, rel: string): void {
    for (const of of this.open.values()) {
      if (of.root === root && isWithin(of.rel, rel)) {
        this.open.delete(of.key);
        // Nothing to wait for: the path's content is replaced; errors on close are moot.
        of.fh.close().catch(() => undefined);
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
   * parallel, so that many small files share the file system's journal commits.
   */
  private async makeDurable(seq: number): Promise<void> {
    const files = [...this.open.values()].filter((of) => of.dirty || of.statPending);
    const dirs = [...this.dirtyDirs.entries()];
    this.dirtyDirs.clear();
    const jobs: Promise<void>[] = [];
    for (const of of files) {
      jobs.push(this.settle(of).catch((err) => Promise.reject(applyFailed(err, 'sync', seq, of.root, of.rel))));
    }
    for (const [abs, d] of dirs) {
      jobs.push(this.fsyncPath(abs).catch((err) => Promise.reject(applyFailed(err, 'sync', seq, d.root, d.rel === '' ? '.' : d.rel))));
    }
    const results = await Promise.allSettled(jobs);
    const failed = results.find((x): x is PromiseRejectedResult => x.status === 'rejected');
    if (failed !== undefined) {
      // After a failed fsync the kernel may have dropped the dirty pages: nothing since the last
      // durable point can be trusted, and the caller redoes from there.
      throw failed.reason;
    }
  }

  private fsyncFd(fd: number): Promise<void> {
    if (this.seams.fsync !== undefined) return this.seams.fsync(fd);
    ioCounters.fsyncs++;
    return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
  }

  /** fsync of a directory (or file) by path; a directory removed since it was marked needs none. */
  private async fsyncPath(abs: string): Promise<void> {
    let fh: SyncFile;
    try {
      fh = await syncFs.open(abs, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return;
      throw err;
    }
    try {
      await this.fsyncFd(fh.fd);
    } finally {
      await fh.close();
    }
  }

  // ---- manifest ------------------------------------------------------------------------------

  private fillFileStat(root: string, rel: string, st: Stats): void {
    if (!this.manifest.hasRoot(root)) return;
    const e = this.manifest.get(root, rel);
    if (e?.kind !== 'file') return;
    this.manifest.set(root, rel, { ...e, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, readAt: this.clock.now() });
  }

  private fillIno(root: string, rel: string, st: Stats): void {
    if (!this.manifest.hasRoot(root)) return;
    const e = this.manifest.get(root, rel);
    if (e === undefined || e.ino === st.ino) return;
    this.manifest.set(root, rel, { ...e, ino: st.ino });
  }
}
