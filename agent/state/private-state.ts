// Makes an existing install private: the state directory and every directory in it 0700, every
// file 0600, and the log file 0600, whatever older versions or an operator left (the journal
// holds copies of protected files, readable by root alone on the active). Run once at start-up,
// before anything is read from the state.
//
// The walk never follows a symlink below the state directory: each directory is opened with
// O_NOFOLLOW and its entries are reached through /proc/self/fd/<fd>/<name>, which resolves
// inside the directory already opened (openat's semantics), so a user who could still write
// into a loose directory cannot swap an entry for a link and have chmod land outside. Nor does it
// enter a mount point or another file system below the state directory: standby protection
// writes through a bind mount of each protected root there (agent/standby), and the modes of
// the protected data are the application's, never Tandem's to tighten.
import fs from 'node:fs';
import path from 'node:path';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../../shared/constants.ts';
import { errnoOf } from '../../shared/errors.ts';
import { parseMountInfo } from '../standby/mount-info.ts';

export interface TightenedPath {
  /** Relative to the state directory; the log file by its absolute path. */
  path: string;
  from: number;
  to: number;
}

export interface TightenReport {
  fixed: TightenedPath[];
  /** Entries left alone: symlinks, sockets, FIFOs, devices, or what could not be opened. */
  skipped: string[];
}

const C = fs.constants;
const OPEN_DIR = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;
const OPEN_FILE = C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK;

/** Tightens `stateDir` (which must exist) and, when given, the log file. Throws only when the state directory itself cannot be opened. */
export function tightenPrivateState(stateDir: string, logFile?: string): TightenReport {
  const report: TightenReport = { fixed: [], skipped: [] };
  // The state directory itself may be a configured symlink: open what it leads to.
  const top = fs.openSync(stateDir, C.O_RDONLY | C.O_DIRECTORY);
  try {
    fix(top, '.', PRIVATE_DIR_MODE, report);
    const real = fs.realpathSync(`/proc/self/fd/${top}`);
    walk(top, '', report, { real, dev: fs.fstatSync(top).dev, mounts: mountPointsBelow(real) });
  } finally {
    fs.closeSync(top);
  }
  if (logFile !== undefined) {
    try {
      const fd = fs.openSync(logFile, OPEN_FILE);
      try {
        if (fs.fstatSync(fd).isFile()) fix(fd, logFile, PRIVATE_FILE_MODE, report);
        else report.skipped.push(logFile);
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      // Not there yet (it is created 0600), or a symlink the operator chose: left as it is.
      if (errnoOf(err) !== 'ENOENT') report.skipped.push(logFile);
    }
  }
  return report;
}

function fix(fd: number, rel: string, want: number, report: TightenReport): void {
  const mode = fs.fstatSync(fd).mode & 0o7777;
  if (mode === want) return;
  fs.fchmodSync(fd, want);
  report.fixed.push({ path: rel, from: mode, to: want });
}

interface WalkBounds {
  /** The state directory's real path. */
  real: string;
  /** Its file system: a directory on another one is not the state's. */
  dev: number;
  /** Mount points below it (bind mounts keep the same device number). */
  mounts: ReadonlySet<string>;
}

/** Mount points strictly below `dir`, from /proc/self/mountinfo (none when it cannot be read). */
function mountPointsBelow(dir: string): Set<string> {
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return new Set();
  }
  return new Set(parseMountInfo(text).map((m) => m.mountPoint).filter((p) => p.startsWith(`${dir}/`)));
}

function walk(dirFd: number, rel: string, report: TightenReport, bounds: WalkBounds): void {
  const here = `/proc/self/fd/${dirFd}`;
  for (const name of fs.readdirSync(here)) {
    const childRel = rel === '' ? name : path.join(rel, name);
    const at = `${here}/${name}`;
    let st: fs.Stats;
    try {
      st = fs.lstatSync(at);
    } catch {
      continue; // gone meanwhile
    }
    if ((!st.isDirectory() && !st.isFile()) || bounds.mounts.has(path.join(bounds.real, childRel))) {
      report.skipped.push(childRel);
      continue;
    }
    let fd: number;
    try {
      fd = fs.openSync(at, st.isDirectory() ? OPEN_DIR : OPEN_FILE);
    } catch {
      report.skipped.push(childRel);
      continue;
    }
    try {
      const now = fs.fstatSync(fd);
      if (now.isDirectory() && now.dev !== bounds.dev) {
        report.skipped.push(childRel);
      } else if (now.isDirectory()) {
        fix(fd, childRel, PRIVATE_DIR_MODE, report);
        walk(fd, childRel, report, bounds);
      } else if (now.isFile()) {
        fix(fd, childRel, PRIVATE_FILE_MODE, report);
      } else {
        report.skipped.push(childRel);
      }
    } finally {
      fs.closeSync(fd);
    }
  }
}
