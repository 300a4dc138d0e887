// Whether a path's lstat still proves its manifest entry right. This is how offline changes
// and missed events are found without hashing: only a file whose stat no longer matches (or
// whose last read was "racy") is read again.
import type { Stats } from 'node:fs';
import { RACY_WINDOW_MS } from '../../shared/constants.ts';
import type { Entry } from '../manifest/index.ts';

export type EntryKind = Entry['kind'];

export function kindOf(st: Stats): EntryKind | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  return undefined; // sockets, FIFOs, devices are not replicated
}

/**
 * The content read at `readAt` may be older than a write made in the same timestamp tick. Only
 * an mtime near the read is: one far in the future (an archive's date, a clock stepped back) is
 * not what a write stamps now, so any write changes it. Counted racy, such a file was read
 * again every settle, for ever. `readAt` 0 means the content was never proven by a read here
 * (an entry from the peer, or one the standby watch saw changed by hand): racy until read.
 */
export function isRacy(entry: Entry): boolean {
  if (entry.kind !== 'file') return false;
  if (entry.readAt === 0) return true;
  return racyAt(entry.mtimeMs, entry.readAt);
}

/** Content read at `at` of a file with this mtime would be racy (a write in the same tick may follow). */
export function racyAt(mtimeMs: number, at: number): boolean {
  return mtimeMs >= at - RACY_WINDOW_MS && mtimeMs <= at + RACY_WINDOW_MS;
}

/**
 * The `readAt` to record for content read from a snapshot asked for at `at` and known made at
 * `doneAt`. Its instant lies somewhere between, so a file stamped at any time from just before
 * `at` to just after `doneAt` may have been written again after the instant within the same
 * timestamp tick (the kernel stamps with a clock of 4 ms ticks unless the mtime was just read):
 * its record must stay racy, and `readAt` is then the mtime itself. Any other mtime is proven by
 * the snapshot as of `at`. Recording `at` alone lets such a write be missed: with snapshots
 * taking hundreds of ms under PostgreSQL, the mtime falls outside the window around `at`, and a
 * later comparison of the same size and mtime keeps a page the active rewrote.
 */
export function snapshotReadAt(mtimeMs: number, at: number, doneAt: number): number {
  return mtimeMs >= at - RACY_WINDOW_MS && mtimeMs <= doneAt + RACY_WINDOW_MS ? mtimeMs : at;
}

/**
 * The owner is part of what is replicated; so are extended attributes, which only the ctime
 * betrays (a chown, a setfattr or a new hard link moves it, the mtime does not). An entry that
 * never recorded them (a manifest from before owners were replicated) does not match: its path
 * is looked at once more, and its owner sent.
 */
function sameOwnerAndCtime(entry: Entry, st: Stats): boolean {
  if (entry.uid !== st.uid || entry.gid !== st.gid) return false;
  return entry.kind === 'symlink' || entry.ctimeMs === st.ctimeMs;
}

export function statMatches(entry: Entry | undefined, st: Stats): boolean {
  if (entry === undefined) return false;
  if (kindOf(st) !== entry.kind || st.ino !== entry.ino) return false;
  switch (entry.kind) {
    case 'file':
      return st.size === entry.size && st.mtimeMs === entry.mtimeMs && (st.mode & 0o7777) === entry.mode && !isRacy(entry) && sameOwnerAndCtime(entry, st);
    case 'dir':
      return (st.mode & 0o7777) === entry.mode && sameOwnerAndCtime(entry, st);
    case 'symlink':
      return st.mtimeMs === entry.mtimeMs && sameOwnerAndCtime(entry, st);
  }
}
