// Which consistency a protected root can have: `snapshot` (the root of a btrfs subvolume, which
// read-only snapshots turn into instants of the whole tree) or `file` (anything else: each file
// is replicated as a state it had, but two files may come from different moments). The choice
// is a pure function of facts gathered from the system, so that status, `tandem check` and the
// agent's start-up give the same answer and the same reason.
import fs from 'node:fs';
import path from 'node:path';
import { findBtrfs } from './btrfs.ts';

export type ConsistencyMode = 'snapshot' | 'file';
/** What protect[].consistency asks: `auto` takes snapshots where the root allows them. */
export type ConsistencySetting = 'auto' | 'snapshot' | 'file';

/** statfs f_type of btrfs. */
export const BTRFS_MAGIC = 0x9123683e;
/** The inode number of every subvolume's root directory on btrfs. */
export const SUBVOLUME_ROOT_INO = 256;

const FS_NAMES: Record<number, string> = {
  [BTRFS_MAGIC]: 'btrfs',
  0xef53: 'ext4',
  0x58465342: 'xfs',
  0x01021994: 'tmpfs',
  0x794c7630: 'overlayfs',
  0x6969: 'nfs',
  0x2fc12fc1: 'zfs',
  0x65735546: 'fuse',
  0xff534d42: 'cifs',
  0x9fa0: 'proc',
};

export function fsName(type: number | undefined): string {
  if (type === undefined) return 'unknown';
  return FS_NAMES[type] ?? `file system type 0x${type.toString(16)}`;
}

export interface RootFacts {
  /** statfs f_type of the root; undefined when it could not be read. */
  fsType: number | undefined;
  /** The root directory's inode number. */
  ino: number | undefined;
  /** The btrfs program, if installed. */
  btrfs: string | undefined;
  /** The agent holds CAP_SYS_ADMIN (deleting snapshots and `btrfs send` need it). */
  sysAdmin: boolean;
  /** Why the points directory cannot be used, if it cannot. */
  pointsDirProblem?: string | undefined;
}

export interface ConsistencyVerdict {
  mode: ConsistencyMode;
  /** Why, in words: shown in status, `tandem check` and the log. */
  reason: string;
  /** Set when `consistency: snapshot` was asked and cannot be had: the agent must not start. */
  refused?: string | undefined;
}

/** The consistency a root gets from what it is and what was asked. */
export function decideConsistency(setting: ConsistencySetting, f: RootFacts): ConsistencyVerdict {
  if (setting === 'file') return { mode: 'file', reason: 'file-level consistency only: set so (protect[].consistency: file)' };
  let why: string | undefined;
  if (f.fsType !== BTRFS_MAGIC) why = `the root is on ${fsName(f.fsType)}, not btrfs`;
  else if (f.ino !== SUBVOLUME_ROOT_INO) why = `the root is a directory inside a btrfs subvolume (inode ${f.ino ?? '?'}), not the root of a subvolume`;
  else if (f.btrfs === undefined) why = 'btrfs-progs is not installed (the btrfs program was not found)';
  else if (!f.sysAdmin) why = 'the agent lacks CAP_SYS_ADMIN (run it as root): deleting snapshots and btrfs send need it';
  else if (f.pointsDirProblem !== undefined) why = f.pointsDirProblem;
  if (why === undefined) return { mode: 'snapshot', reason: 'btrfs subvolume: read-only snapshots give consistency points' };
  const reason = `file-level consistency only: ${why}`;
  return setting === 'snapshot' ? { mode: 'file', reason, refused: why } : { mode: 'file', reason };
}

/** Whether this process holds CAP_SYS_ADMIN (bit 21 of CapEff in /proc/self/status). */
export function hasSysAdmin(statusText?: string): boolean {
  let text = statusText;
  if (text === undefined) {
    try {
      text = fs.readFileSync('/proc/self/status', 'utf8');
    } catch {
      return false;
    }
  }
  const m = /^CapEff:\s*([0-9a-fA-F]+)$/m.exec(text);
  if (m === null) return false;
  return (BigInt(`0x${m[1]}`) & (1n << 21n)) !== 0n;
}

/**
 * Where a root's snapshots live by default: beside the root on the same file system, never
 * inside it (a snapshot inside the root would be replicated, and snapshot itself).
 */
export function defaultPointsDir(rootPath: string): string {
  return path.join(path.dirname(rootPath), '.tandem-points', path.basename(rootPath));
}

/** The facts of a root, read from the system (statfs, stat, the program, the capability). */
export function gatherRootFacts(rootPath: string, pointsDirProblem?: string): RootFacts {
  let fsType: number | undefined;
  let ino: number | undefined;
  try {
    fsType = fs.statfsSync(rootPath).type;
    ino = fs.statSync(rootPath).ino;
  } catch {
    // unreadable: the verdict says "unknown" file system
  }
  return { fsType, ino, btrfs: findBtrfs(), sysAdmin: hasSysAdmin(), pointsDirProblem };
}
