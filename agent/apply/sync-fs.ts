// The file-system calls of the applier, with the shapes of node:fs/promises but done with
// synchronous calls. A small file costs the applier about ten calls (open, chmod, truncate,
// write, stat, utimes…); as thread-pool round trips they left the passive waiting ~1 ms per
// file and unable to keep up with 1,000 new files a second, while each takes microseconds from
// the page cache. fsync stays asynchronous: it waits for the disk, and many run in parallel.
import fs, { type Mode, type PathLike, type Stats } from 'node:fs';

/** Writes up to this size are made synchronously. */
const SYNC_WRITE_MAX_BYTES = 256 * 1024;

/** A file descriptor with the FileHandle methods the applier uses. */
export class SyncFile {
  private closed = false;

  constructor(readonly fd: number) {}

  async stat(): Promise<Stats> {
    return fs.fstatSync(this.fd);
  }

  async truncate(len: number): Promise<void> {
    fs.ftruncateSync(this.fd, len);
  }

  async chmod(mode: Mode): Promise<void> {
    fs.fchmodSync(this.fd, mode);
  }

  async utimes(atime: number, mtime: number): Promise<void> {
    fs.futimesSync(this.fd, atime, mtime);
  }

  /**
   * Small writes synchronously (the round trip would cost more than the copy); large ones in the
   * thread pool, where copying megabytes overlaps with decoding and hashing the next batch.
   */
  async writev(buffers: readonly NodeJS.ArrayBufferView[], position: number): Promise<{ bytesWritten: number }> {
    let bytes = 0;
    for (const b of buffers) bytes += b.byteLength;
    if (bytes <= SYNC_WRITE_MAX_BYTES) return { bytesWritten: fs.writevSync(this.fd, buffers, position) };
    return new Promise((resolve, reject) =>
      fs.writev(this.fd, buffers, position, (err, bytesWritten) => (err ? reject(err) : resolve({ bytesWritten }))),
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
  }
}

export const syncFs = {
  async open(path: PathLike, flags: number, mode?: Mode): Promise<SyncFile> {
    return new SyncFile(fs.openSync(path, flags, mode));
  },
};
