// Path resolution below a protected root that never leaves it (the kernel's
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), done by hand: Node has no openat). Each
// directory of a path is opened with O_DIRECTORY|O_NOFOLLOW *through the one above it*:
// /proc/self/fd/<fd of the directory above>/<name>, where the only link followed is the magic
// link of our own descriptor. The final operation then addresses
// /proc/self/fd/<fd of the parent>/<name>. A component that is, or becomes, a symbolic link
// stops the walk (the open fails with ENOTDIR) instead of leading anywhere, whatever swap
// happens between two calls: an opened directory stays the directory that was checked.
// Nothing is trusted across calls: a directory kept open from one path serves the next only once
// checked again (dirStillAt), as a directory just opened is.
import fs, { constants as C, type Stats } from 'node:fs';
import { errnoOf } from '../../shared/errors.ts';

/** How every directory of a walk is opened. */
export const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;

/** The path that names `name` inside the directory open as `dirFd`; `name` itself is not followed by l* calls and O_NOFOLLOW opens. */
export function at(dirFd: number, name: string): string {
  return `/proc/self/fd/${dirFd}/${name}`;
}

/** The path of an open descriptor itself (a directory to list or to fsync). */
export function fdPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

/** What stands at a name that was to be opened as a directory. */
export type DirAt = { kind: 'dir'; fd: number } | { kind: 'missing' } | { kind: 'link'; st: Stats } | { kind: 'other'; st: Stats };

/** lstat that answers undefined for a missing path. */
export function lstatAt(path: string): Stats | undefined {
  try {
    return fs.lstatSync(path);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/** Opens directory `name` inside `dirFd` without following it; what is there otherwise. */
export function openDirAt(dirFd: number, name: string): DirAt {
  for (let attempt = 0; ; attempt++) {
    try {
      return { kind: 'dir', fd: fs.openSync(at(dirFd, name), DIR_FLAGS) };
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'ENOENT') return { kind: 'missing' };
      if (code !== 'ENOTDIR' && code !== 'ELOOP') throw err;
    }
    const st = lstatAt(at(dirFd, name));
    if (st === undefined) return { kind: 'missing' };
    if (st.isSymbolicLink()) return { kind: 'link', st };
    if (!st.isDirectory()) return { kind: 'other', st };
    // A directory again: it was swapped back between the open and the lstat. Try once more.
    if (attempt > 0) return { kind: 'other', st };
  }
}

/** Opens a root directory (resolved with realpath at start-up): its own last component is not followed either. */
export function openRoot(rootPath: string): number {
  return fs.openSync(rootPath, DIR_FLAGS);
}

export function closeFd(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // Closing a descriptor we opened cannot fail in a way that matters here.
  }
}

/** A walk stopped at a component that is a symbolic link: nothing below it was touched. */
export class PathSwapped extends Error {
  constructor(
    /** The component (relative to the root) that is a link. */
    readonly component: string,
  ) {
    super(`"${component}" is a symbolic link`);
    this.name = 'PathSwapped';
  }
}

/**
 * Where a walk starts: a root's real path (opened, without following its last component, and
 * closed again by the walk), or a descriptor of the root held open by the caller for a while
 * (one capture round, one apply call) to save that open, with its real path; a held root is
 * never closed here.
 */
export type RootRef = string | { fd: number; path: string };

/**
 * The directory `dirRel` below `rootPath` opened in one call and kept only if the descriptor's
 * real path (readlink of /proc/self/fd/N) is exactly `rootPath/dirRel`: then no component on
 * the way was a link (a link would have led to another real path, or to the same place only by
 * a loop, which fails). O_DIRECTORY is checked before any driver is asked to open anything, so
 * a walk through a swapped link opens nothing but a directory. Undefined when the check fails
 * or the open does: the caller walks component by component, which also says why.
 */
export function openVerifiedDir(rootPath: string, dirRel: string): number | undefined {
  const want = `${rootPath}/${dirRel}`;
  let fd: number;
  try {
    fd = fs.openSync(want, DIR_FLAGS);
  } catch {
    return undefined;
  }
  if (dirStillAt(fd, want)) return fd;
  closeFd(fd);
  return undefined;
}

/**
 * The open directory `fd` is, right now, at exactly the real path `want`: the check
 * openVerifiedDir makes of a directory it just opened, and a descriptor kept from an earlier
 * path must pass again before it is used for the next (a directory moved, removed, or reached
 * through a link since then fails it).
 */
export function dirStillAt(fd: number, want: string): boolean {
  try {
    return fs.readlinkSync(fdPath(fd)) === want;
  } catch {
    return false;
  }
}

/** The parent directory of a path, open, and the path's last name inside it. */
export class Parent {
  constructor(
    readonly fd: number,
    readonly name: string,
    /** False when `fd` is a held root descriptor: close() leaves it open. */
    readonly owned = true,
  ) {}

  /** The path naming the entry itself (not followed by O_NOFOLLOW opens and l* calls). */
  get at(): string {
    return at(this.fd, this.name);
  }

  close(): void {
    if (this.owned) closeFd(this.fd);
  }
}

/** Walks to directory `dirRel`; the descriptor, and whether the caller must close it. */
function walk(root: RootRef, dirRel: string): { fd: number; owned: boolean } | undefined {
  if (dirRel !== '') {
    // One open and one readlink, however deep; a component walk only when that check fails.
    const quick = openVerifiedDir(typeof root === 'string' ? root : root.path, dirRel);
    if (quick !== undefined) return { fd: quick, owned: true };
  }
  let fd = typeof root === 'string' ? openRoot(root) : root.fd;
  let owned = typeof root === 'string';
  if (dirRel === '') return { fd, owned };
  let done = '';
  for (const seg of dirRel.split('/')) {
    done = done === '' ? seg : `${done}/${seg}`;
    const next = openDirAt(fd, seg);
    if (owned) closeFd(fd);
    if (next.kind === 'dir') {
      fd = next.fd;
      owned = true;
      continue;
    }
    if (next.kind === 'link') throw new PathSwapped(done);
    return undefined;
  }
  return { fd, owned };
}

/**
 * Opens the directory `dirRel` ('' is the root) below `root` component by component; the caller
 * closes the descriptor. Undefined when a component is missing or is not a directory (nothing
 * is there to read); throws PathSwapped when a component is a symbolic link.
 */
export function openDirBeneath(root: RootRef, dirRel: string): number | undefined {
  const w = walk(root, dirRel);
  if (w === undefined) return undefined;
  // A held root is opened again through its own descriptor ("." after the magic link: O_NOFOLLOW
  // would refuse the link itself as the last component).
  return w.owned ? w.fd : fs.openSync(at(w.fd, '.'), DIR_FLAGS);
}

/** The open parent of `rel` (a non-empty relative path) below `root`; undefined or PathSwapped as for openDirBeneath. */
export function openParent(root: RootRef, rel: string): Parent | undefined {
  const i = rel.lastIndexOf('/');
  const w = walk(root, i < 0 ? '' : rel.slice(0, i));
  return w === undefined ? undefined : new Parent(w.fd, i < 0 ? rel : rel.slice(i + 1), w.owned);
}

/**
 * As openParent, for readers to whom a path below a link is simply absent (verify, the
 * synchronisation, the passive's manifest): undefined then too.
 */
export function openParentOrNone(root: RootRef, rel: string): Parent | undefined {
  try {
    return openParent(root, rel);
  } catch (err) {
    if (err instanceof PathSwapped) return undefined;
    throw err;
  }
}

/** Runs `fn` with the open parent of `rel`, closing it after (also when `fn` fails). */
export async function withParent<T>(root: RootRef, rel: string, fn: (p: Parent) => Promise<T> | T): Promise<T | undefined> {
  const p = openParent(root, rel);
  if (p === undefined) return undefined;
  try {
    return await fn(p);
  } finally {
    p.close();
  }
}

/** Parent directories a ParentDirs keeps open at most; past it, it closes them all and starts again. */
const PARENT_DIRS_MAX = 64;

/**
 * lstat of many paths below roots, each parent directory opened (and verified, as openParent
 * does) once instead of once per path: for one synchronous run of checks (the standby watch
 * after a batch: the applier's 100 files in one directory cost 100 opens and readlinks of it),
 * closed by the caller at its end. Within the run, a parent found missing or swapped for a link
 * stays so, and paths below it are absent; a parent changed by someone else meanwhile is seen
 * as it was when opened, as with an open a moment before each lstat. Read-only.
 */
export class ParentDirs {
  private readonly dirs = new Map<string, number | null>();

  /** lstat of `rel` (non-empty) below the root at `rootPath`; undefined when absent or below a link. */
  lstat(rootPath: string, rel: string): Stats | undefined {
    const i = rel.lastIndexOf('/');
    const dirRel = i < 0 ? '' : rel.slice(0, i);
    const key = `${rootPath}\0${dirRel}`;
    let fd = this.dirs.get(key);
    if (fd === undefined) {
      if (this.dirs.size >= PARENT_DIRS_MAX) this.close();
      let opened: number | undefined;
      try {
        opened = openDirBeneath(rootPath, dirRel);
      } catch (err) {
        if (!(err instanceof PathSwapped)) throw err;
      }
      fd = opened ?? null;
      this.dirs.set(key, fd);
    }
    return fd === null ? undefined : lstatAt(at(fd, i < 0 ? rel : rel.slice(i + 1)));
  }

  close(): void {
    for (const fd of this.dirs.values()) if (fd !== null) closeFd(fd);
    this.dirs.clear();
  }
}

/**
 * The parent of the last path asked for, kept open for the next path of the same directory: a
 * reader that goes through a directory's files one after the other (a synchronisation, parents
 * first, then by name) opens and closes each directory once instead of once per file (100,000
 * small files: an open and a close of a directory per file were ~9 % of the active's CPU). The
 * kept descriptor is checked again before each use as a new one would be (dirStillAt: its real
 * path is exactly root/dirRel), so it answers what openParentOrNone would: a directory moved,
 * removed or swapped for a link since is never read through. Its walk is a reader's (a path
 * below a link is absent): the applier, which writes, keeps its own (PathGuard.locate) with the
 * same check. ParentDirs holds many directories without checking them again, for one
 * synchronous run only; this holds one across awaits, and checks it at each use. The Parent it returns is closed by `close()`, not by the caller (its `close()`
 * does nothing).
 */
export class KeptParent {
  private kept: { rootPath: string; dirRel: string; fd: number } | undefined;

  /** The open parent of `rel` (non-empty) below the root at `rootPath`, as openParentOrNone answers. */
  parentOf(rootPath: string, rel: string): Parent | undefined {
    const i = rel.lastIndexOf('/');
    const dirRel = i < 0 ? '' : rel.slice(0, i);
    const name = i < 0 ? rel : rel.slice(i + 1);
    const k = this.kept;
    if (k !== undefined && k.rootPath === rootPath && k.dirRel === dirRel && dirStillAt(k.fd, dirRel === '' ? rootPath : `${rootPath}/${dirRel}`)) {
      return new Parent(k.fd, name, false);
    }
    this.close();
    const p = openParentOrNone(rootPath, rel);
    if (p === undefined || !p.owned) return p;
    this.kept = { rootPath, dirRel, fd: p.fd };
    return new Parent(p.fd, name, false);
  }

  close(): void {
    if (this.kept !== undefined) closeFd(this.kept.fd);
    this.kept = undefined;
  }
}

/** lstat of `rel` (non-empty) below `root`: undefined when absent; PathSwapped when a parent is a link. */
export function lstatBeneath(root: RootRef, rel: string): Stats | undefined {
  const p = openParent(root, rel);
  if (p === undefined) return undefined;
  try {
    return lstatAt(p.at);
  } finally {
    p.close();
  }
}

/** The names in directory `dirRel` below `root`; undefined when it is not a directory there. */
export function readdirBeneath(root: RootRef, dirRel: string): string[] | undefined {
  const fd = openDirBeneath(root, dirRel);
  if (fd === undefined) return undefined;
  try {
    return fs.readdirSync(fdPath(fd));
  } finally {
    closeFd(fd);
  }
}

/**
 * Removes `name` inside the directory open as `dirFd`, whatever it is; a directory goes with
 * everything below it, each level opened through the one above (a directory swapped for a link
 * halfway loses only the link: nothing outside is ever removed). Missing is fine. `breathe` is
 * awaited between entries, so a large tree does not hold the event loop.
 */
export async function removeTreeAt(dirFd: number, name: string, breathe: () => Promise<void> = async () => {}): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const d = openDirAt(dirFd, name);
    if (d.kind === 'missing') return;
    if (d.kind !== 'dir') {
      unlinkIfThere(at(dirFd, name));
      return;
    }
    try {
      for (const child of fs.readdirSync(fdPath(d.fd))) {
        const st = lstatAt(at(d.fd, child));
        if (st === undefined) continue;
        if (st.isDirectory()) await removeTreeAt(d.fd, child, breathe);
        else unlinkIfThere(at(d.fd, child));
        await breathe();
      }
    } finally {
      closeFd(d.fd);
    }
    try {
      fs.rmdirSync(at(dirFd, name));
      return;
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'ENOENT') return;
      if (code === 'ENOTDIR') {
        unlinkIfThere(at(dirFd, name));
        return;
      }
      // Something was created in it meanwhile: empty it again.
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    }
  }
  throw Object.assign(new Error(`cannot remove ${name}: entries keep appearing in it`), { code: 'ENOTEMPTY' });
}

function unlinkIfThere(path: string): void {
  try {
    fs.unlinkSync(path);
  } catch (err) {
    const code = errnoOf(err);
    if (code !== 'ENOENT') throw err;
  }
}
