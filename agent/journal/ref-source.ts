// Where the journal reads the bytes of a referenced write back (docs/journal.md, "Referenced
// blocks"): the protected file itself, reached from its root without following a link
// (agent/tree/beneath.ts), and only while it is still the inode capture read. Read-only: it
// never writes, and never reads through a link or outside a root. Whether the bytes are still
// the ones journaled is the journal's check (their xxhash64), not this file's.
import fs, { constants as C } from 'node:fs';
import type { WriteRefRecord } from '../../shared/protocol/index.ts';
import { PathSwapped, closeFd, openParent } from '../tree/beneath.ts';

export interface RefSession {
  /**
   * Fills `into` (exactly the record's length) with the bytes at the record's offset of its
   * file; false when the path is gone, below a link, no longer that inode, or too short.
   */
  read(ref: WriteRefRecord, into: Buffer): boolean;
  /** Closes what the session holds open. */
  close(): void;
}

/** Opens reading sessions: one per batch read back, so a file's many blocks cost one open. */
export interface RefSource {
  open(): RefSession;
}

/** Read-only, never through a link; O_NONBLOCK: a FIFO put at the path must not block the open. */
const FILE_FLAGS = C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK;

/** The protected roots' files, by root name and path. */
export class ProtectedFiles implements RefSource {
  private readonly real = new Map<string, string>();

  constructor(private readonly roots: ReadonlyArray<{ name: string; path: string }>) {}

  open(): RefSession {
    let held: { key: string; fd: number | undefined } | undefined;
    const release = (): void => {
      if (held?.fd !== undefined) closeFd(held.fd);
      held = undefined;
    };
    return {
      read: (ref, into) => {
        const key = `${ref.root}\0${ref.path}\0${ref.ino}`;
        if (held?.key !== key) {
          release();
          held = { key, fd: this.openFile(ref) };
        }
        return held.fd !== undefined && readAll(held.fd, into, ref.offset);
      },
      close: release,
    };
  }

  /** The file of `ref`, open, if it is a regular file below its root with the inode recorded. */
  private openFile(ref: WriteRefRecord): number | undefined {
    const root = this.rootPath(ref.root);
    if (root === undefined) return undefined;
    let parent;
    try {
      parent = openParent(root, ref.path);
    } catch (err) {
      if (err instanceof PathSwapped) return undefined;
      throw err;
    }
    if (parent === undefined) return undefined;
    let fd: number;
    try {
      fd = fs.openSync(parent.at, FILE_FLAGS);
    } catch {
      return undefined;
    } finally {
      parent.close();
    }
    const st = fs.fstatSync(fd);
    if (st.isFile() && st.ino === ref.ino) return fd;
    closeFd(fd);
    return undefined;
  }

  /** The root's real path (the walks compare real paths), or undefined for an unknown or missing root. */
  private rootPath(name: string): string | undefined {
    const known = this.real.get(name);
    if (known !== undefined) return known;
    const r = this.roots.find((x) => x.name === name);
    if (r === undefined) return undefined;
    try {
      const p = fs.realpathSync(r.path);
      this.real.set(name, p);
      return p;
    } catch {
      return undefined; // missing now: asked again next time
    }
  }
}

function readAll(fd: number, into: Buffer, position: number): boolean {
  let got = 0;
  while (got < into.length) {
    const n = fs.readSync(fd, into, got, into.length - got, position + got);
    if (n === 0) return false;
    got += n;
  }
  return true;
}
