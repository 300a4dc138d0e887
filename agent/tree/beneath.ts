// Path resolution below a protected root that never leaves it (the kernel's
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), done by hand: Node has no openat). Each
// directory of a path is opened with O_DIRECTORY|O_NOFOLLOW *through the one above it*:
// /proc/self/fd/<fd of the directory above>/<name>, where the only link followed is the magic
// link of our own descriptor. The final operation then addresses
// /proc/self/fd/<fd of the parent>/<name>. A component that is, or becomes, a symbolic link
// stops the walk (the open fails with ENOTDIR) instead of leading anywhere, whatever swap
// happens between two calls: an opened directory stays the directory that was checked.
// Nothing is cached across calls: each record walks from its root again.
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

/** The parent directory of a path, open, and the path's last name inside it. */
export class Parent {
  constructor(
    readonly fd: number,
    readonly name: string,
  ) {}

  /** The path naming the entry itself (not followed by O_NOFOLLOW opens and l* calls). */
  get at(): string {
    return at(this.fd, this.name);
  }

  close(): void {
    closeFd(this.fd);
  }
}

/**
 * Opens the directory `dirRel` ('' is the root) below `rootPath` component by component.
 * Undefined when a component is missing or is not a directory (nothing is there to read);
 * throws PathSwapped when a component is a symbolic link.
 */
export function openDirBeneath(rootPath: string, dirRel: string): number | undefined {
  let fd = openRoot(rootPath);
  if (dirRel === '') return fd;
  let done = '';
  for (const seg of dirRel.split('/')) {
    done = done === '' ? seg : `${done}/${seg}`;
    const next = openDirAt(fd, seg);
    closeFd(fd);
    if (next.kind === 'dir') {
      fd = next.fd;
      continue;
    }
    if (next.kind === 'link') throw new PathSwapped(done);
    return undefined;
  }
  return fd;
}

/** The open parent of `rel` (a non-empty relative path) below `rootPath`; undefined or PathSwapped as for openDirBeneath. */
export function openParent(rootPath: string, rel: string): Parent | undefined {
  const i = rel.lastIndexOf('/');
  const fd = openDirBeneath(rootPath, i < 0 ? '' : rel.slice(0, i));
  return fd === undefined ? undefined : new Parent(fd, i < 0 ? rel : rel.slice(i + 1));
}

/** Runs `fn` with the open parent of `rel`, closing it after (also when `fn` fails). */
export async function withParent<T>(rootPath: string, rel: string, fn: (p: Parent) => Promise<T> | T): Promise<T | undefined> {
  const p = openParent(rootPath, rel);
  if (p === undefined) return undefined;
  try {
    return await fn(p);
  } finally {
    p.close();
  }
}

/** lstat of `rel` below `rootPath`: undefined when absent; PathSwapped when a parent is a link. */
export function lstatBeneath(rootPath: string, rel: string): Stats | undefined {
  if (rel === '') return lstatAt(rootPath);
  const p = openParent(rootPath, rel);
  if (p === undefined) return undefined;
  try {
    return lstatAt(p.at);
  } finally {
    p.close();
  }
}

/** The names in directory `dirRel` below `rootPath`; undefined when it is not a directory there. */
export function readdirBeneath(rootPath: string, dirRel: string): string[] | undefined {
  const fd = openDirBeneath(rootPath, dirRel);
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
