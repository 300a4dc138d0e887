// Whether a path on the passive is still what the applier left there, as a pure function of
// the manifest entry (the applier's record of its own last write) and a fresh lstat. Every
// field the applier sets is compared; fields it cannot set (a directory's mtime, a link's
// times, the change time) are not, so replication itself never looks like a foreign change.
import type { Stats } from 'node:fs';
import { HASH_BYTES } from '../../shared/hash.ts';
import { kindOf } from '../capture/stat-match.ts';
import { UNKNOWN_BLOCK, type Entry } from '../manifest/index.ts';

/** What someone other than the applier did to a path, as far as its stat tells. */
export type Drift = 'created' | 'removed' | 'kind' | 'replaced' | 'size' | 'mtime' | 'mode' | 'owner' | 'content';

/** The stat fields compared; a Stats fits. */
export type DriftStat = Pick<Stats, 'ino' | 'size' | 'mtimeMs' | 'mode' | 'uid' | 'gid'> & { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean };

/**
 * The first way `st` differs from `entry`, or undefined when the path is as the applier left
 * it (or absent on both sides). `st` undefined: the path is absent (or of a kind that is never
 * replicated: a FIFO, a socket, a device). Owners are compared once entries carry them.
 */
export function statDrift(entry: Entry | undefined, st: DriftStat | undefined): Drift | undefined {
  const kind = st === undefined ? undefined : kindOf(st as Stats);
  if (entry === undefined) return kind === undefined ? undefined : 'created';
  if (st === undefined || kind === undefined) return 'removed';
  if (kind !== entry.kind) return 'kind';
  // 0: not filled in yet (an entry the applier made before it stat-ed the path).
  if (entry.ino !== 0 && st.ino !== entry.ino) return 'replaced';
  const owners = entry as { uid?: unknown; gid?: unknown };
  if ((typeof owners.uid === 'number' && owners.uid !== st.uid) || (typeof owners.gid === 'number' && owners.gid !== st.gid)) return 'owner';
  switch (entry.kind) {
    case 'file':
      if (st.size !== entry.size) return 'size';
      if (st.mtimeMs !== entry.mtimeMs) return 'mtime';
      return (st.mode & 0o7777) !== (entry.mode & 0o7777) ? 'mode' : undefined;
    case 'dir':
      return (st.mode & 0o7777) !== (entry.mode & 0o7777) ? 'mode' : undefined;
    case 'symlink':
      // A link cannot be changed in place: a new target is a new inode, caught above.
      return undefined;
  }
}

/**
 * Whether a file's block hashes, read from disk, are the ones the manifest holds. A block the
 * manifest does not know (UNKNOWN_BLOCK: an unaligned write was the last to touch it) proves
 * nothing either way and is not held against the file.
 */
export function blocksMatch(manifest: Buffer, disk: Buffer): boolean {
  if (manifest.length !== disk.length) return false;
  for (let off = 0; off < manifest.length; off += HASH_BYTES) {
    if (manifest.compare(disk, off, off + HASH_BYTES, off, off + HASH_BYTES) === 0) continue;
    if (manifest.compare(UNKNOWN_BLOCK, 0, HASH_BYTES, off, off + HASH_BYTES) !== 0) return false;
  }
  return true;
}
