// The records of the write log. Every data record is an *absolute setter*: it says what a path
// must be ("a regular file of N bytes", "these bytes at this offset", "absent"), never how to
// change it. Re-applying a run of setters in order therefore ends in the same state whatever
// part of the run was applied before a crash. `rename` is the one exception (it moves content);
// the applier treats it as a commit barrier (docs/apply.md).
import { metaFieldsProblem, type MetaFields, type OwnerFields } from './metadata.ts';
import { relPathProblem } from './paths.ts';

interface Base {
  seq: number;
  root: string;
  path: string;
}

/**
 * Make `path` a directory with this mode (replacing whatever else is there), and, when given,
 * this owner and exactly these extended attributes (its default ACL among them).
 */
export interface MkdirRecord extends Base, MetaFields { op: 'mkdir'; mode: number }
/** Make `path` a regular file of exactly `size` bytes, keeping its bytes below `size`. */
export interface FileRecord extends Base { op: 'file'; size: number }
/**
 * These bytes at this offset of the regular file `path`; `hash` is xxhash64 of the bytes.
 * With `encoding` set, `data` holds the bytes compressed (block-codec.ts) and `rawLength` their
 * length once inflated; `hash` is always over the uncompressed bytes, so a block damaged
 * anywhere between the active's read and the passive's write is still caught.
 */
export interface WriteRecord extends Base {
  op: 'write';
  offset: number;
  data: Uint8Array;
  hash: Uint8Array;
  encoding?: BlockEncoding;
  rawLength?: number;
}

/** How a write record's data is encoded when it is not raw: zlib's raw deflate (RFC 1951). */
export type BlockEncoding = 'deflate-raw';
/** No block inflates beyond this (a write record holds at most one block of 16 MiB). */
export const MAX_BLOCK_BYTES = 16 * 1024 * 1024;
/**
 * The blocks of one batch inflate to at most this many bytes: a compressed batch of zero blocks
 * (deflate shrinks 64 KiB of zeros to about 100 bytes) would otherwise make a few MiB on the
 * wire cost gigabytes to inflate. The passive refuses a batch beyond it before inflating
 * anything (TANDEM_ERR_BATCH_TOO_LARGE).
 */
export const MAX_BATCH_RAW_BYTES = 64 * 1024 * 1024;
/**
 * The active closes a batch once its blocks reach this many raw bytes, so that a batch stays
 * under MAX_BATCH_RAW_BYTES with room for the run of blocks read before the next check (one
 * read chunk: at most 1 MiB, or one block when blocks are bigger).
 */
export const BATCH_RAW_CUT_BYTES = 32 * 1024 * 1024;
/**
 * Records in one batch, at most: decoding one costs the passive about 200 bytes of memory and a
 * few microseconds each, so a 16 MiB frame of the smallest records (some 470,000, measured 1.6 s
 * to decode on a busy 2-core machine) must not be one batch. Counted from the frame headers
 * before anything is decoded (TANDEM_ERR_BATCH_TOO_LARGE).
 */
export const MAX_BATCH_RECORDS = 65_536;
/** The active closes a batch once it holds this many records (room for one more read's worth). */
export const BATCH_RECORDS_CUT = 16_384;
/**
 * Set the permission bits and the modification time of `path`, and, when given, its owner and
 * exactly these extended attributes. Owner first, mode last: chown clears setuid/setgid, and the
 * passive grants those bits only together with the owner (docs/replication.md).
 */
export interface MetaRecord extends Base, MetaFields { op: 'meta'; mode: number; mtimeMs: number }
/** Make `path` a symbolic link to `target` (the target is data: never followed), owned as given. */
export interface SymlinkRecord extends Base, OwnerFields { op: 'symlink'; target: string }
/**
 * Make `path` another name of the regular file `target` of the same root (a hard link, as
 * rsync -H keeps them): both names then share one inode, its content and its metadata.
 */
export interface HardlinkRecord extends Base { op: 'hardlink'; target: string }
/**
 * These bytes of the regular file `path` read as zero (a block of zeros, sent without its
 * data). The passive leaves them a hole where it can: a new or grown file is extended with
 * ftruncate, which allocates nothing.
 */
export interface HoleRecord extends Base { op: 'hole'; offset: number; length: number }
/** Make `path` absent (a file or a link). */
export interface UnlinkRecord extends Base { op: 'unlink' }
/** Make `path` absent (a directory and anything still below it). */
export interface RmdirRecord extends Base { op: 'rmdir' }
/** Move `path` to `to` within the same root, replacing `to`. */
export interface RenameRecord extends Base { op: 'rename'; to: string }

export type PathRecord =
  | MkdirRecord
  | FileRecord
  | WriteRecord
  | MetaRecord
  | SymlinkRecord
  | UnlinkRecord
  | RmdirRecord
  | RenameRecord
  | HardlinkRecord
  | HoleRecord;

/** An initial synchronisation starts: records up to `baseSeq` are replaced by what follows. */
export interface SyncBeginRecord { op: 'sync-begin'; seq: number; id: string; baseSeq: number; bytesTotal: number }
/** The synchronisation `id` is complete: the passive now holds a real state of the active. */
export interface SyncEndRecord { op: 'sync-end'; seq: number; id: string }

export type DataRecord = PathRecord | SyncBeginRecord | SyncEndRecord;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A record before the journal stamps its sequence number on it. */
export type NewRecord = DistributiveOmit<DataRecord, 'seq'>;

/** Closes a batch: the unit the passive applies atomically. Carries no sequence of its own. */
export interface CommitEntry {
  op: 'commit';
  first: number;
  last: number;
  /** Every file in the batch was read inside one quiet window (a real instant of the disk). */
  consistent: boolean;
  /** Wall-clock time the batch was journaled, for lag. */
  ts: number;
  generation: string;
  /**
   * Set when the active takes consistency points (docs/replication.md, "Consistency points"):
   * the batch belongs to a point whose instant is `at` (wall-clock ms of the active), and `end`
   * says it is the point's last batch. The passive applies a point only once its last batch is
   * held; the point is then the state after this batch's last record. Absent: the batch applies
   * on its own (file-level consistency).
   */
  point?: CommitPoint;
}

export interface CommitPoint {
  at: number;
  end: boolean;
}

/** Receive log only: every record up to `seq` is applied and durable on the passive. */
export interface AppliedEntry { op: 'applied'; seq: number }

export type LogEntry = DataRecord | CommitEntry | AppliedEntry;

/**
 * The active's journal only, never on the wire: a `write` whose bytes the journal does not hold.
 * They are `length` bytes at `offset` of the protected file `path`, inode `ino`, whose xxhash64
 * was `hash` when capture read them. The sender sends them as a plain `write` read back from
 * that file (from memory while the batch is cached), or, when the file no longer holds exactly
 * those bytes, not at all: the passive is then brought back by a synchronisation
 * (docs/journal.md, "Referenced blocks"). So a large new file is written once on the active's
 * disk, by its application, not twice.
 */
export interface WriteRefRecord extends Base { op: 'write-ref'; offset: number; length: number; hash: Uint8Array; ino: number }

/** What the journal's segments hold: log entries, and referenced writes. */
export type StoredEntry = LogEntry | WriteRefRecord;

/** As entryProblem, for the active's own journal, which may also hold referenced writes. */
export function storedEntryProblem(e: unknown): string | undefined {
  const r = e as Record<string, unknown> | null;
  if (typeof r !== 'object' || r === null || r.op !== 'write-ref') return entryProblem(e);
  if (!isUint(r.seq) || typeof r.root !== 'string' || r.root.length === 0) return 'write-ref: bad seq/root';
  const pp = relPathProblem(r.path);
  if (pp !== undefined) return `write-ref: path ${pp}`;
  if (!isUint(r.offset) || !isUint(r.length) || r.length === 0 || r.length > MAX_BLOCK_BYTES || !isUint(r.ino) || !isBytes(r.hash) || r.hash.length !== 8) return 'write-ref: bad fields';
  return undefined;
}

export type PathOp = PathRecord['op'];
const PATH_OPS = new Set<string>(['mkdir', 'file', 'write', 'meta', 'symlink', 'unlink', 'rmdir', 'rename', 'hardlink', 'hole']);

export function isPathRecord(e: LogEntry): e is PathRecord {
  return PATH_OPS.has(e.op);
}

const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;

/**
 * Checks the shape of a decoded entry from an untrusted source (the wire, a log on disk).
 * Returns a reason when it is not a valid entry. Path *containment* is checked again by the
 * applier against the real file system; this only checks well-formedness.
 */
export function entryProblem(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return 'not a map';
  const r = e as Record<string, unknown>;
  switch (r.op) {
    case 'commit':
      if (!isUint(r.first) || !isUint(r.last) || r.last < r.first) return 'commit: bad first/last';
      if (typeof r.consistent !== 'boolean' || !isUint(r.ts) || typeof r.generation !== 'string') return 'commit: bad fields';
      if (r.point !== undefined) {
        const pt = r.point as Record<string, unknown> | null;
        if (typeof pt !== 'object' || pt === null || !isUint(pt.at) || typeof pt.end !== 'boolean') return 'commit: bad point';
      }
      return undefined;
    case 'applied':
      return isUint(r.seq) ? undefined : 'applied: bad seq';
    case 'sync-begin':
      return isUint(r.seq) && typeof r.id === 'string' && isUint(r.baseSeq) && isUint(r.bytesTotal) ? undefined : 'sync-begin: bad fields';
    case 'sync-end':
      return isUint(r.seq) && typeof r.id === 'string' ? undefined : 'sync-end: bad fields';
    default:
      break;
  }
  if (typeof r.op !== 'string' || !PATH_OPS.has(r.op)) return `unknown op ${JSON.stringify(r.op)}`;
  if (!isUint(r.seq)) return `${r.op}: bad seq`;
  if (typeof r.root !== 'string' || r.root.length === 0) return `${r.op}: bad root`;
  const pp = relPathProblem(r.path);
  if (pp !== undefined) return `${r.op}: path ${pp}`;
  switch (r.op) {
    case 'mkdir': {
      if (!isUint(r.mode)) return 'mkdir: bad mode';
      const mp = metaFieldsProblem(r);
      return mp === undefined ? undefined : `mkdir: ${mp}`;
    }
    case 'file':
      return isUint(r.size) ? undefined : 'file: bad size';
    case 'write':
      if (!isUint(r.offset) || !isBytes(r.data) || !isBytes(r.hash) || r.hash.length !== 8) return 'write: bad fields';
      // Journals written before compression carry neither field: they read as raw blocks.
      if (r.encoding === undefined && r.rawLength === undefined) return undefined;
      if (r.encoding !== 'deflate-raw') return `write: unknown encoding ${JSON.stringify(r.encoding)}`;
      if (!isUint(r.rawLength) || r.rawLength === 0 || r.rawLength > MAX_BLOCK_BYTES) return 'write: bad rawLength';
      return undefined;
    case 'meta': {
      if (!isUint(r.mode) || typeof r.mtimeMs !== 'number' || !Number.isFinite(r.mtimeMs)) return 'meta: bad fields';
      const mp = metaFieldsProblem(r);
      return mp === undefined ? undefined : `meta: ${mp}`;
    }
    case 'symlink': {
      if (typeof r.target !== 'string' || r.target.length === 0 || r.target.length > 4096 || r.target.includes('\0')) return 'symlink: bad target';
      const mp = metaFieldsProblem({ ...r, xattrs: undefined });
      return mp === undefined ? undefined : `symlink: ${mp}`;
    }
    case 'hardlink': {
      // "target path": the receiver refuses a malformed one as a path outside the root.
      const tp = relPathProblem(r.target);
      if (tp !== undefined) return `hardlink: target path ${tp}`;
      return r.target === r.path ? 'hardlink: target path is the path itself' : undefined;
    }
    case 'hole':
      return isUint(r.offset) && isUint(r.length) && r.length > 0 && r.length <= MAX_BLOCK_BYTES ? undefined : 'hole: bad offset/length';
    case 'rename': {
      const tp = relPathProblem(r.to);
      return tp === undefined ? undefined : `rename: to ${tp}`;
    }
    default:
      return undefined;
  }
}

/** Bytes of the file a write record sets: its block's length, compressed or not. */
export function writeLength(r: WriteRecord): number {
  return r.encoding === undefined ? r.data.length : r.rawLength!;
}

/** Bytes of file data a record carries, uncompressed (for progress and lag accounting). */
export function payloadBytes(r: DataRecord | WriteRefRecord): number {
  return r.op === 'write' ? writeLength(r) : r.op === 'write-ref' ? r.length : 0;
}
