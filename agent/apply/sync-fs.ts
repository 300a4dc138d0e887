// The file-system calls of the applier, with the shapes of node:fs/promises but done with
// synchronous calls. A small file costs the applier about ten calls (open, chmod, truncate,
// write, stat, utimes…); as thread-pool round trips they left the passive waiting ~1 ms per
// file and unable to keep up with 1,000 new files a second, while each takes microseconds from
// the page cache. fsync stays asynchronous: it waits for the disk, and many run in parallel.
// Large writes go behind (write-behind.ts): every other call on the file waits for them first.
import fs, { type Mode, type PathLike, type Stats } from 'node:fs';
import { BehindChain, type WritesBehind } from './write-behind.ts';

/** A file descriptor with the FileHandle methods the applier uses. */
export class SyncFile {
  private closed = false;
  /** Its writes behind, once it had one. */
  private behind: BehindChain | undefined;

  constructor(readonly fd: number) {}

  /** Resolves once the writes behind issued so far ended; rejects with the first that failed. */
  async settled(): Promise<void> {
    if (this.behind !== undefined && !this.behind.idle) await this.behind.settled();
  }

  async stat(): Promise<Stats> {
    await this.settled();
    return fs.fstatSync(this.fd);
  }

  async truncate(len: number): Promise<void> {
    await this.settled();
    fs.ftruncateSync(this.fd, len);
  }

  async chmod(mode: Mode): Promise<void> {
    await this.settled();
    fs.fchmodSync(this.fd, mode);
  }

  async utimes(atime: number, mtime: number): Promise<void> {
    await this.settled();
    fs.futimesSync(this.fd, atime, mtime);
  }

  /** A write made at once, after the writes behind before it. */
  async writev(buffers: readonly NodeJS.ArrayBufferView[], position: number): Promise<{ bytesWritten: number }> {
    await this.settled();
    return { bytesWritten: fs.writevSync(this.fd, buffers, position) };
  }

  /**
   * A write issued in the thread pool and not waited for: `writes` counts it against its budget
   * (the caller waits for room first) and the next call on this file waits for it. `dev`/`ino`
   * name the inode, for a descriptor opened on it later (WritesBehind.onInode); `wrap` gives a
   * failure the context of the record that made the write.
   */
  writeBehind(buffers: readonly Uint8Array[], position: number, bytes: number, writes: WritesBehind, dev: number, ino: number, wrap: (err: unknown) => Error): void {
    this.behind ??= new BehindChain(this.fd, dev, ino, writes);
    this.behind.push(buffers, position, bytes, wrap);
  }

  /** Closes the descriptor once its writes behind ended (never under a running write: the number could be reused); rejects if one failed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.behind === undefined || this.behind.idle) {
      fs.closeSync(this.fd);
      return;
    }
    try {
      await this.behind.settled();
    } finally {
      fs.closeSync(this.fd);
    }
  }
}

export const syncFs = {
  async open(path: PathLike, flags: number, mode?: Mode): Promise<SyncFile> {
    return new SyncFile(fs.openSync(path, flags, mode));
  },
};
