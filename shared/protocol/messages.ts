// Messages on the replication channel: one msgpack map per WebSocket binary frame. Everything
// decoded from the peer is untrusted until `messageProblem` says it has the right shape.
import { metaFieldsProblem, type OwnerFields } from './metadata.ts';
import { relPathProblem } from './paths.ts';

// The protocol versions live with the package version (shared/version.ts).
export { PROTOCOL_VERSION } from '../version.ts';

export type Role = 'active' | 'passive';

/** First message each side sends after the channel is authenticated. */
export interface HelloMessage {
  t: 'hello';
  /** The lowest protocol this node speaks (a protocol-1 agent sends 1 and compares for equality). */
  proto: number;
  /** From protocol 2: the highest protocol this node speaks; the session runs at the highest both speak. */
  protoMax?: number;
  /** From protocol 2: the Tandem release of this node ("0.1.0"), for status. */
  version?: string;
  pair: string;
  node: string;
  role: Role;
  generation: string;
  /** Counts role changes (a promotion starts a new epoch): the higher epoch is the newer active. */
  epoch: number;
  /** This node runs its applications (its start script succeeded and no stop ran since). */
  serving: boolean;
  /** Block size of the manifests: both nodes must use the same one, or block hashes mean nothing. */
  blockSize: number;
  /**
   * Active: last journaled sequence. Passive: last sequence it holds, in order and to be applied
   * before anything else (up to protocol 2, all of it durably; from 3, the tail past `durableSeq`
   * may be held in memory only, and a crash of the passive forgets it).
   */
  headSeq: number;
  /**
   * From protocol 3, passive: last sequence it holds durably (applied, or in its receive log), what
   * the active may trim; batches past it up to `headSeq` are held in memory. Absent: `headSeq`.
   */
  durableSeq?: number;
  /** Active: oldest sequence still in the journal. Passive: 0. */
  firstSeq: number;
  /** The generations this node's continues, newest first, each with the sequence the next
   *  one forked at (agent/replication/lineage.ts); absent or empty: none known. */
  history?: { generation: string; forkSeq: number }[];
  /** The last epoch in which this node was active (0: never): split-brain policies read it. */
  activeEpoch?: number;
  /** Passive: the operator (tandem resolve) or a policy chose to discard this node's changes
   *  since it split from the active; the active may synchronise it over them. */
  discard?: boolean;
  /** Passive: last sequence applied and durable. Active: last sequence the peer acknowledged. */
  appliedSeq: number;
  /** Passive: id of an initial synchronisation it has begun but not finished ('' when none);
   * its tree is not a real state of the active until that synchronisation ends. */
  syncId: string;
  /**
   * Passive: its receive window, the unacknowledged batches (and their bytes on the wire) it
   * holds at most; the active sends within the smaller of this and its own, and the passive
   * refuses anything beyond (TANDEM_ERR_WINDOW_EXCEEDED). Absent from older agents.
   */
  window?: { batches: number; bytes: number };
  /** Passive: what it holds received and not yet acknowledged, which counts against the window. */
  held?: { batches: number; bytes: number };
}

/** A batch: the exact journal frames of records `first..last`, commit frame last. */
export interface BatchMessage {
  t: 'batch';
  first: number;
  last: number;
  frames: Uint8Array;
}

/** Passive → active: every record up to `seq` is applied and durable. */
export interface AckMessage {
  t: 'ack';
  seq: number;
  /**
   * Every batch up to `received` is durable in the passive's receive log (it applies it by
   * itself, after a restart or at a promotion): the active's window and journal trim count it.
   * Absent from older agents: then `seq`.
   */
  received?: number | undefined;
  /**
   * Every batch up to `released` has left the passive's window: applied (its durable point may
   * still run) or, like `received`, held durably to be applied by itself. Only the active's
   * window counts it; the journal keeps everything past `received`. Absent from older agents:
   * then `received`.
   */
  released?: number | undefined;
}

/** Passive → active: how applying goes, sent when it changes (pauses, alarms, sync progress). */
export interface PeerStateMessage {
  t: 'peer-state';
  state: string;
  /** Active: its journal head, so the passive can tell whether it is in sync. */
  headSeq?: number | undefined;
  alarm?: { code: string; message: string; hint?: string } | undefined;
  /** Active, while the passive catches up: bytes journaled and not acknowledged, paths not yet journaled. */
  catchUp?: { bytesLeft: number; pathsLeft: number } | undefined;
  /**
   * Active, when it takes consistency points: the newest point, by the sequence of its last
   * record, and the latest instant its disk was known to be that point (it closes the point on
   * the passive if no batch did).
   */
  point?: { id: number; at: number } | undefined;
}

/** Active → passive: send me your block manifest (initial synchronisation). */
export interface ManifestRequestMessage {
  t: 'manifest-request';
  id: string;
}

/**
 * An entry's metadata as the passive describes it to the active, in the terms of its own
 * `replication.owners`: ids (and, with `names`, the names it maps them by); no owner at all
 * when it does not apply owners (`off`, or a version before owners), so that the active does
 * not count as a difference what the passive never meant to copy.
 */
export interface WireMeta extends OwnerFields {
  /** xxhash64 of the replicated extended attributes; absent: none. */
  xattrHash?: Uint8Array | undefined;
  /** Files: names of the inode on the passive's disk. */
  nlink?: number | undefined;
  /** Files with nlink > 1: the passive's inode, so the active can tell which names share one. */
  link?: number | undefined;
}

export interface WireManifestEntry extends WireMeta {
  root: string;
  path: string;
  kind: 'file' | 'dir' | 'symlink';
  mode: number;
  size: number;
  mtimeMs: number;
  /** Files: xxhash64 of each block, 8 bytes each, concatenated. */
  blocks?: Uint8Array | undefined;
  /** Symlinks: the link's target. */
  target?: string | undefined;
}

export interface ManifestChunkMessage {
  t: 'manifest-chunk';
  id: string;
  entries: WireManifestEntry[];
}

export interface ManifestEndMessage {
  t: 'manifest-end';
  id: string;
  count: number;
  /** Protected roots the passive has, so a root missing there is reported, not guessed. */
  roots: string[];
}

/** Every heartbeat interval, both ways, once hellos were exchanged: each side's view. */
export interface HeartbeatMessage {
  t: 'hb';
  seq: number;
  role: Role;
  epoch: number;
  serving: boolean;
  /** This node's own public checks. */
  publicState: 'unknown' | 'ok' | 'failing';
  /** Passive: it has applied everything the active journaled. Active: its passive is in sync. */
  inSync: boolean;
  /** The last epoch in which the sender was active (0: never); absent from older agents. */
  activeEpoch?: number;
  /**
   * The last heartbeat heard from the peer and how long (µs) it was held before this one left:
   * the peer takes the round-trip from it (NTP's way). Absent from older agents and before the
   * first heartbeat is heard.
   */
  echo?: { seq: number; heldUs: number };
  /**
   * Active: the age (ms) of the oldest change it holds and has not sent yet (journaled and held
   * back by the window or the socket, or seen and not journaled yet); 0 when it sent everything.
   * The passive lacks at least that much, plus the time this heartbeat travelled. Absent from
   * passives and older agents.
   */
  unsentMs?: number;
}

/** Active → passive, planned switchover: everything up to headSeq is yours; take the role. */
export interface TakeoverMessage {
  t: 'takeover';
  epoch: number;
  headSeq: number;
  reason: string;
}

/** Passive → active: the outcome of a takeover. */
export interface TakeoverResultMessage {
  t: 'takeover-result';
  epoch: number;
  ok: boolean;
  error?: string | undefined;
}

/** Active → passive: both changed since they split; nothing is sent until it is resolved. */
export interface SplitBrainMessage {
  t: 'split-brain';
  /** The generation where the two lines last agreed, and up to which sequence. */
  generation: string;
  commonSeq: number;
  activeChanges: number;
  passiveChanges: number;
}

/** Active → passive, `tandem verify`: the entries of directory `path` ("" is the root). */
export interface VerifyListMessage {
  t: 'verify-list';
  /** The active's number for this request; the reply carries it back. */
  req: number;
  root: string;
  path: string;
  /** Answer only once every record up to this sequence is applied (the active read at this point). */
  afterSeq: number;
  /** Files of at most this many bytes come with their block hashes (one answer for many small files). */
  blocksUpTo?: number;
}

/** Active → passive, `tandem verify`: one path's entry, with the block hashes of a file. */
export interface VerifyEntryMessage {
  t: 'verify-entry';
  req: number;
  root: string;
  path: string;
  afterSeq: number;
}

/** What the passive has at one path. Only hashes travel, never file data. */
export interface WireVerifyEntry extends WireMeta {
  name: string;
  kind: 'file' | 'dir' | 'symlink';
  mode: number;
  size: number;
  mtimeMs: number;
  /** Files, in a verify-entry reply: xxhash64 of each block, 8 bytes each. */
  blocks?: Uint8Array;
  target?: string;
  /**
   * The passive's standby watch holds this path as changed by hand (agent/standby): whatever
   * its bytes look like now, the passive's record of what it applied there is not to be trusted
   * until the path is sent whole again.
   */
  modified?: boolean;
}

/** Passive → active: the answer to a verify-list (`entries`) or a verify-entry (`entry`, null: absent). */
export interface VerifyReplyMessage {
  t: 'verify-reply';
  req: number;
  /** The passive's applied sequence when it read (at least the request's afterSeq). */
  atSeq: number;
  /** verify-list: the directory is absent (or not a directory) on the passive. */
  missing?: boolean;
  entries?: WireVerifyEntry[];
  entry?: WireVerifyEntry | null;
  /** Set when the passive could not answer (not applied far enough in time, unreadable path). */
  error?: string;
}

/** Sent before closing the channel on purpose, so the peer can log the reason. */
export interface ErrorMessage {
  t: 'error';
  code: string;
  message: string;
}

export type Message =
  | HelloMessage
  | BatchMessage
  | AckMessage
  | PeerStateMessage
  | ManifestRequestMessage
  | ManifestChunkMessage
  | ManifestEndMessage
  | HeartbeatMessage
  | TakeoverMessage
  | TakeoverResultMessage
  | SplitBrainMessage
  | VerifyListMessage
  | VerifyEntryMessage
  | VerifyReplyMessage
  | ErrorMessage;

const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isStr = (v: unknown, max = 256): v is string => typeof v === 'string' && v.length <= max;

/** Owner, attribute hash and link fields of a wire entry: absent or well formed. */
function wireMetaProblem(r: Record<string, unknown>): string | undefined {
  const mp = metaFieldsProblem({ uid: r.uid, gid: r.gid, user: r.user, group: r.group });
  if (mp !== undefined) return `entry: ${mp}`;
  if (r.xattrHash !== undefined && !(r.xattrHash instanceof Uint8Array && r.xattrHash.length === 8)) return 'entry: bad xattrHash';
  if ((r.nlink !== undefined && !isUint(r.nlink)) || (r.link !== undefined && !isUint(r.link))) return 'entry: bad nlink/link';
  return undefined;
}

function manifestEntryProblem(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return 'entry not a map';
  const r = e as Record<string, unknown>;
  if (!isStr(r.root) || r.root.length === 0) return 'entry: bad root';
  const pp = relPathProblem(r.path);
  if (pp !== undefined) return `entry: path ${pp}`;
  if (r.kind !== 'file' && r.kind !== 'dir' && r.kind !== 'symlink') return 'entry: bad kind';
  if (!isUint(r.mode) || !isUint(r.size) || typeof r.mtimeMs !== 'number') return 'entry: bad stat fields';
  if (r.kind === 'file' && !(r.blocks instanceof Uint8Array && r.blocks.length % 8 === 0)) return 'entry: bad blocks';
  if (r.kind === 'symlink' && !(isStr(r.target, 4096) && r.target.length > 0)) return 'entry: bad target';
  return wireMetaProblem(r);
}

function verifyEntryProblem(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return 'entry not a map';
  const r = e as Record<string, unknown>;
  if (!isStr(r.name, 4096) || r.name.length === 0 || r.name.includes('/') || r.name === '.' || r.name === '..') return 'entry: bad name';
  if (r.kind !== 'file' && r.kind !== 'dir' && r.kind !== 'symlink') return 'entry: bad kind';
  if (!isUint(r.mode) || !isUint(r.size) || typeof r.mtimeMs !== 'number') return 'entry: bad stat fields';
  if (r.blocks !== undefined && !(r.blocks instanceof Uint8Array && r.blocks.length % 8 === 0)) return 'entry: bad blocks';
  if (r.target !== undefined && !isStr(r.target, 4096)) return 'entry: bad target';
  if (r.modified !== undefined && typeof r.modified !== 'boolean') return 'entry: bad modified';
  return wireMetaProblem(r);
}

/** Undefined when `m` is a well-formed message; otherwise the reason it is not. */
export function messageProblem(m: unknown): string | undefined {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return 'not a map';
  const r = m as Record<string, unknown>;
  switch (r.t) {
    case 'hello':
      if (!isUint(r.proto) || !isStr(r.pair) || !isStr(r.node) || !isStr(r.generation)) return 'hello: bad identity fields';
      if (!isUint(r.blockSize)) return 'hello: bad blockSize';
      if (!isUint(r.epoch) || typeof r.serving !== 'boolean') return 'hello: bad epoch/serving';
      if (r.role !== 'active' && r.role !== 'passive') return 'hello: bad role';
      if (!isUint(r.headSeq) || !isUint(r.firstSeq) || !isUint(r.appliedSeq) || !isStr(r.syncId)) return 'hello: bad sequence fields';
      if (r.history !== undefined && !(Array.isArray(r.history) && r.history.length <= 64 && r.history.every((h: unknown) => typeof h === 'object' && h !== null && isStr((h as Record<string, unknown>).generation) && isUint((h as Record<string, unknown>).forkSeq)))) return 'hello: bad history';
      if ((r.activeEpoch !== undefined && !isUint(r.activeEpoch)) || (r.discard !== undefined && typeof r.discard !== 'boolean')) return 'hello: bad activeEpoch/discard';
      if ((r.protoMax !== undefined && !isUint(r.protoMax)) || (r.version !== undefined && !isStr(r.version, 64))) return 'hello: bad protoMax/version';
      if (r.durableSeq !== undefined && !(isUint(r.durableSeq) && r.durableSeq <= r.headSeq)) return 'hello: bad durableSeq';
      for (const k of ['window', 'held'] as const) {
        const w = r[k] as Record<string, unknown> | null | undefined;
        if (w !== undefined && (typeof w !== 'object' || w === null || !isUint(w.batches) || !isUint(w.bytes))) return `hello: bad ${k}`;
      }
      if (r.window !== undefined && ((r.window as { batches: number }).batches === 0 || (r.window as { bytes: number }).bytes === 0)) return 'hello: empty window';
      return undefined;
    case 'batch':
      if (!isUint(r.first) || !isUint(r.last) || r.last < r.first) return 'batch: bad first/last';
      return r.frames instanceof Uint8Array ? undefined : 'batch: frames not binary';
    case 'ack':
      return isUint(r.seq) && (r.received === undefined || isUint(r.received)) && (r.released === undefined || isUint(r.released)) ? undefined : 'ack: bad seq';
    case 'peer-state':
      if (r.alarm !== undefined) {
        const a = r.alarm as Record<string, unknown> | null;
        if (typeof a !== 'object' || a === null || !isStr(a.code, 64) || !isStr(a.message, 4096) || (a.hint !== undefined && !isStr(a.hint, 4096))) return 'peer-state: bad alarm';
      }
      if (r.catchUp !== undefined) {
        const c = r.catchUp as Record<string, unknown> | null;
        if (typeof c !== 'object' || c === null || !isUint(c.bytesLeft) || !isUint(c.pathsLeft)) return 'peer-state: bad catchUp';
      }
      if (r.point !== undefined) {
        const pt = r.point as Record<string, unknown> | null;
        if (typeof pt !== 'object' || pt === null || !isUint(pt.id) || !isUint(pt.at)) return 'peer-state: bad point';
      }
      return isStr(r.state) && (r.headSeq === undefined || isUint(r.headSeq)) ? undefined : 'peer-state: bad fields';
    case 'manifest-request':
      return isStr(r.id) ? undefined : 'manifest-request: bad id';
    case 'manifest-chunk': {
      if (!isStr(r.id) || !Array.isArray(r.entries)) return 'manifest-chunk: bad fields';
      for (const e of r.entries) {
        const p = manifestEntryProblem(e);
        if (p !== undefined) return `manifest-chunk: ${p}`;
      }
      return undefined;
    }
    case 'manifest-end':
      return isStr(r.id) && isUint(r.count) && Array.isArray(r.roots) && r.roots.every((x) => isStr(x)) ? undefined : 'manifest-end: bad fields';
    case 'hb':
      if (!isUint(r.seq) || !isUint(r.epoch) || typeof r.serving !== 'boolean' || typeof r.inSync !== 'boolean') return 'hb: bad fields';
      if (r.role !== 'active' && r.role !== 'passive') return 'hb: bad role';
      if (r.activeEpoch !== undefined && !isUint(r.activeEpoch)) return 'hb: bad activeEpoch';
      if (r.unsentMs !== undefined && !isUint(r.unsentMs)) return 'hb: bad unsentMs';
      if (r.echo !== undefined) {
        const e = r.echo as Record<string, unknown> | null;
        if (typeof e !== 'object' || e === null || !isUint(e.seq) || !isUint(e.heldUs)) return 'hb: bad echo';
      }
      return r.publicState === 'unknown' || r.publicState === 'ok' || r.publicState === 'failing' ? undefined : 'hb: bad publicState';
    case 'takeover':
      return isUint(r.epoch) && isUint(r.headSeq) && isStr(r.reason, 1024) ? undefined : 'takeover: bad fields';
    case 'takeover-result':
      return isUint(r.epoch) && typeof r.ok === 'boolean' && (r.error === undefined || isStr(r.error, 4096)) ? undefined : 'takeover-result: bad fields';
    case 'split-brain':
      return isStr(r.generation) && isUint(r.commonSeq) && isUint(r.activeChanges) && isUint(r.passiveChanges) ? undefined : 'split-brain: bad fields';
    case 'verify-list':
    case 'verify-entry': {
      if (!isUint(r.req) || !isUint(r.afterSeq) || !isStr(r.root) || r.root.length === 0) return `${r.t}: bad fields`;
      if (r.blocksUpTo !== undefined && !isUint(r.blocksUpTo)) return `${r.t}: bad blocksUpTo`;
      // A listing may name the root itself ("").
      const pp = r.t === 'verify-list' && r.path === '' ? undefined : relPathProblem(r.path);
      return pp === undefined ? undefined : `${r.t}: path ${pp}`;
    }
    case 'verify-reply': {
      if (!isUint(r.req) || !isUint(r.atSeq)) return 'verify-reply: bad req/atSeq';
      if (r.missing !== undefined && typeof r.missing !== 'boolean') return 'verify-reply: bad missing';
      if (r.error !== undefined && !isStr(r.error, 4096)) return 'verify-reply: bad error';
      if (r.entries !== undefined) {
        if (!Array.isArray(r.entries)) return 'verify-reply: entries not a list';
        for (const e of r.entries) {
          const p = verifyEntryProblem(e);
          if (p !== undefined) return `verify-reply: ${p}`;
        }
      }
      if (r.entry !== undefined && r.entry !== null) {
        const p = verifyEntryProblem(r.entry);
        if (p !== undefined) return `verify-reply: ${p}`;
      }
      return undefined;
    }
    case 'error':
      return isStr(r.code) && isStr(r.message, 4096) ? undefined : 'error: bad fields';
    default:
      return `unknown message type ${JSON.stringify(r.t)}`;
  }
}
