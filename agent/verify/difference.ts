// What verify concludes about one path, as a pure function of three views of it: the active's
// manifest (what the journal says the passive must hold), the active's disk, and the passive's
// disk. A path whose active disk does not match the manifest is *unsettled*: it is changing (or
// capture has not caught up), and comparing it now would report replication in flight.
import type { Entry } from '../manifest/index.ts';
import { diffEntry, sameMode, sameOwner, type LinkView, type SyncAction } from '../sync/index.ts';
import { sameXattrHash } from '../tree/index.ts';

export type DifferenceKind = 'missing-on-passive' | 'only-on-passive' | 'kind' | 'content' | 'size' | 'mode' | 'owner' | 'xattrs' | 'links' | 'mtime' | 'symlink' | 'modified-on-passive';

/** The active's disk as verify read it: kind and stat, and block hashes when it hashed a file. */
export interface DiskView {
  kind: Entry['kind'];
  mode: number;
  size: number;
  mtimeMs: number;
  uid?: number | undefined;
  gid?: number | undefined;
  /** Files and directories: the hash of the replicated extended attributes (undefined: none). */
  xattrHash?: Buffer | undefined;
  target?: string | undefined;
  /** Block hashes of a file, when it was read; undefined: not read (stat only). */
  blocks?: Buffer | undefined;
}

export type Verdict =
  | { kind: 'same' }
  | { kind: 'unsettled'; reason: string }
  | { kind: 'different'; what: DifferenceKind; action: SyncAction; blocks: number };

/** Whether the active's disk is what its manifest says; a reason when it is not. */
export function unsettledReason(manifest: Entry | undefined, disk: DiskView | undefined): string | undefined {
  if (manifest === undefined) return disk === undefined ? undefined : 'on disk, not journaled yet';
  if (disk === undefined) return 'journaled, gone from disk';
  if (disk.kind !== manifest.kind) return 'kind changed on disk';
  if (manifest.uid !== undefined && (disk.uid !== manifest.uid || disk.gid !== manifest.gid)) return 'owner changed on disk';
  switch (manifest.kind) {
    case 'dir':
      if (disk.mode !== manifest.mode) return 'mode changed on disk';
      return sameXattrHash(disk.xattrHash, manifest.xattrHash) ? undefined : 'attributes changed on disk';
    case 'symlink':
      return disk.target === undefined || disk.target === manifest.target ? undefined : 'link target changed on disk';
    case 'file':
      if (disk.size !== manifest.size) return 'size changed on disk';
      if (disk.blocks !== undefined && !disk.blocks.equals(manifest.blocks)) return 'content changed on disk';
      if (disk.blocks === undefined && disk.mtimeMs !== manifest.mtimeMs) return 'mtime changed on disk';
      if (!sameXattrHash(disk.xattrHash, manifest.xattrHash)) return 'attributes changed on disk';
      return undefined;
  }
}

/** Names the difference an action reveals (the most telling one when several apply). */
export function differenceKind(active: Entry | undefined, passive: Entry | undefined, action: SyncAction): DifferenceKind {
  if (active === undefined) return 'only-on-passive';
  if (passive === undefined) return 'missing-on-passive';
  if (active.kind !== passive.kind) return 'kind';
  switch (action.kind) {
    case 'symlink':
      return active.kind === 'symlink' && passive.kind === 'symlink' && active.target === passive.target ? 'owner' : 'symlink';
    case 'hardlink':
      return 'links';
    case 'remove':
      return 'kind';
    case 'mkdir':
    case 'file': {
      if (action.kind === 'file') {
        if (action.replace) return 'links';
        if (action.blocks.length > 0) return 'content';
        if (action.setSize) return 'size';
      }
      if (active.kind === 'symlink' || passive.kind === 'symlink') return 'mode';
      if (!sameOwner(active, passive)) return 'owner';
      if (!sameMode(active, passive)) return 'mode';
      if (!sameXattrHash(active.xattrHash, passive.xattrHash)) return 'xattrs';
      return action.kind === 'mkdir' ? 'mode' : 'mtime';
    }
  }
}

/**
 * How `p` stands among hard links, from what verify can see of one path: the active's names of
 * its inode (`activeNames`, in the manifest, this path among them) and the passive's link
 * count. Equal counts pass; fewer on the passive: link it to the first name; more: it shares
 * its inode with a name it must not, and the first name is sent again on its own.
 */
export function linkViewFromCount(p: string, activeNames: string[], passiveLinks: number | undefined): LinkView {
  if (passiveLinks === undefined || activeNames.length === 0) return {};
  const g = activeNames.length;
  const leader = activeNames[0]!;
  if (leader !== p) return { leader, linkedToLeader: passiveLinks === g };
  return { sharedWrongly: passiveLinks > g };
}

/**
 * The verdict on one path. `passive` must carry block hashes when both sides hold a file.
 * `touched`: a record for this path was journaled after the active read and applied before
 * the passive read, so the two views are of different moments: unsettled, never different.
 */
export function judge(manifest: Entry | undefined, disk: DiskView | undefined, passive: Entry | undefined, blockSize: number, touched = false, links: LinkView = {}, passiveModified = false): Verdict {
  const why = unsettledReason(manifest, disk);
  if (why !== undefined) return { kind: 'unsettled', reason: why };
  if (touched) return { kind: 'unsettled', reason: 'replicated while being compared' };
  const action = diffEntry(manifest, passive, blockSize, links);
  if (action === undefined) {
    // The passive's standby watch holds this path as changed by hand: its bytes match, but its
    // record of what it applied there does not (the change came and went, or raced the applier).
    // It is sent whole again, which is what clears it there.
    const whole = passiveModified && manifest !== undefined ? diffEntry(manifest, undefined, blockSize, links) : undefined;
    if (whole === undefined) return { kind: 'same' };
    return { kind: 'different', what: 'modified-on-passive', action: whole, blocks: whole.kind === 'file' ? whole.blocks.length : 0 };
  }
  return { kind: 'different', what: differenceKind(manifest, passive, action), action, blocks: action.kind === 'file' ? action.blocks.length : 0 };
}
