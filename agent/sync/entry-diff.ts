// What must be sent so that the passive's entry for a path becomes the active's: a pure
// comparison of two manifest entries. The synchronisation runner (and verify's repair) turns it
// into records. The passive's entry describes its owner in the terms it applies owners by
// (sync/manifest-export.ts, `wireMetaOf`): numbers, names, or nothing when it does not apply
// them; the comparison follows the same terms, so a passive with `replication.owners: off`
// is not asked for ever to take an owner it will not take.
import { HASH_BYTES, zeroBlockHash } from '../../shared/hash.ts';
import type { Entry, FileEntry } from '../manifest/index.ts';
import { PRIVILEGE_BITS, sameXattrHash } from '../tree/index.ts';

export type SyncAction =
  | { kind: 'remove'; dir: boolean }
  | { kind: 'mkdir'; mode: number }
  | { kind: 'symlink'; target: string }
  /** Make the path another name of `target` (the first name of its inode on the active). */
  | { kind: 'hardlink'; target: string }
  | {
      kind: 'file';
      /** The passive's file is missing, of another kind, or of another size. */
      setSize: boolean;
      /** Indexes of the blocks whose content differs (blocks of zeros the passive reads as zeros already left out). */
      blocks: number[];
      /** Mode, mtime, owner or attributes differ (always true when anything else is sent). */
      meta: boolean;
      /** The passive's name shares its inode with names the active does not link it to: unlink it first and send it whole. */
      replace: boolean;
      /** The passive's size before this action (its bytes past it read as zero). */
      passiveSize: number;
    };

/** How a file path stands among hard links, on both sides (sync-runner.ts works it out). */
export interface LinkView {
  /** The first name (in sync order) of this path's inode on the active, when it is not this path. */
  leader?: string | undefined;
  /** On the passive this path already shares its inode with `leader` (its content and metadata then compare as any file's). */
  linkedToLeader?: boolean;
  /** On the passive this path shares its inode with a name the active does not link it to. */
  sharedWrongly?: boolean;
}

/**
 * utimes takes seconds as a double, so an mtime set on the passive reads back a fraction of a
 * microsecond off; anything closer than 10 µs is the same time.
 */
export function sameMtime(a: number, b: number): boolean {
  return Math.abs(a - b) < 0.01;
}

/** Length of block `i` of a file of `size` bytes. */
function blockLen(size: number, i: number, bs: number): number {
  return Math.max(0, Math.min(bs, size - i * bs));
}

/**
 * The same owner, in the passive's terms: names where both sides have them (owners: names),
 * ids otherwise; no owner on either side (the passive does not apply owners, or an entry from
 * an older version) is not a difference.
 */
export function sameOwner(a: Entry, p: Entry): boolean {
  if (a.uid === undefined || p.uid === undefined) return true;
  const user = a.user !== undefined && p.user !== undefined ? a.user === p.user : a.uid === p.uid;
  const group = a.group !== undefined && p.group !== undefined ? a.group === p.group : a.gid === p.gid;
  return user && group;
}

/** The same mode; a passive that applies no owners keeps no setuid/setgid on files, by design. */
export function sameMode(a: Entry & { mode: number }, p: Entry & { mode: number }): boolean {
  const mask = a.kind === 'file' && p.uid === undefined ? 0o7777 & ~PRIVILEGE_BITS : 0o7777;
  return (a.mode & mask) === (p.mode & mask);
}

function sameMeta(a: Entry & { mode: number }, p: Entry & { mode: number }): boolean {
  return sameMode(a, p) && sameOwner(a, p) && (a.kind === 'symlink' || p.kind === 'symlink' || sameXattrHash(a.xattrHash, p.xattrHash));
}

export function diffEntry(active: Entry | undefined, passive: Entry | undefined, blockSize: number, links: LinkView = {}): SyncAction | undefined {
  if (active === undefined) return passive === undefined ? undefined : { kind: 'remove', dir: passive.kind === 'dir' };
  switch (active.kind) {
    case 'dir':
      return passive?.kind === 'dir' && sameMeta(active, passive) ? undefined : { kind: 'mkdir', mode: active.mode };
    case 'symlink':
      return passive?.kind === 'symlink' && passive.target === active.target && sameOwner(active, passive) ? undefined : { kind: 'symlink', target: active.target };
    case 'file':
      // Another name of an inode whose first name is elsewhere: it must be a link to it first.
      if (links.leader !== undefined && links.linkedToLeader !== true) return { kind: 'hardlink', target: links.leader };
      return diffFile(active, passive?.kind === 'file' && links.sharedWrongly !== true ? passive : undefined, blockSize, links.sharedWrongly === true && passive?.kind === 'file');
  }
}

function diffFile(a: FileEntry, p: FileEntry | undefined, bs: number, replace: boolean): SyncAction | undefined {
  const n = a.blocks.length / HASH_BYTES;
  const pn = p === undefined ? 0 : p.blocks.length / HASH_BYTES;
  const passiveSize = p?.size ?? 0;
  const blocks: number[] = [];
  for (let i = 0; i < n; i++) {
    const len = blockLen(a.size, i, bs);
    const same =
      p !== undefined &&
      i < pn &&
      len === blockLen(p.size, i, bs) &&
      a.blocks.compare(p.blocks, i * HASH_BYTES, (i + 1) * HASH_BYTES, i * HASH_BYTES, (i + 1) * HASH_BYTES) === 0;
    // A block of zeros wholly past the passive's size: setting the size makes it a hole there.
    const hole = i * bs >= passiveSize && a.blocks.compare(zeroBlockHash(len), 0, HASH_BYTES, i * HASH_BYTES, (i + 1) * HASH_BYTES) === 0;
    if (!same && !hole) blocks.push(i);
  }
  const setSize = p === undefined || p.size !== a.size;
  const meta = setSize || blocks.length > 0 || replace || !sameMeta(a, p) || !sameMtime(p.mtimeMs, a.mtimeMs);
  if (!meta) return undefined;
  return { kind: 'file', setSize, blocks, meta, replace, passiveSize };
}

/** Bytes of block data an action sends. */
export function actionBytes(action: SyncAction, entry: Entry | undefined, blockSize: number): number {
  if (action.kind !== 'file' || entry?.kind !== 'file') return 0;
  let n = 0;
  for (const i of action.blocks) n += blockLen(entry.size, i, blockSize);
  return n;
}
