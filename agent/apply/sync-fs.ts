// The file-system calls of the applier, with the shapes of node:fs/promises but done with
// synchronous calls. A small file costs the applier about ten calls (open, chmod, truncate,
// write, stat, utimes…); as thread-pool round trips they left the passive waiting ~1 ms per
// file and unable to keep up with 1,000 new files a second, while each takes microseconds from
// the page cache. fsync stays asynchronous: it waits for the disk, and many run in parallel.
// Large writes go behind (writeBehind): the thread pool copies them into the page cache while
// the applier goes on with the next records. A file's calls must never overtake its writes, and
// its descriptor must never be closed under one: every call on a SyncFile waits for the writes
// behind it first, and fails with the first of them that failed.
import fs, { type Mode, type PathLike, type Stats } from 'node:fs';

/** Writes from this size on go behind (writeBehind); smaller ones cost less made at once than handed over. */
export const WRITE_BEHIND_MIN_BYTES = 32 * 1024;
/** Linux IOV_MAX: buffers per writev call. */
const IOV_MAX = 1024;

/** A file descriptor with the FileHandle methods the applier uses. */
export class SyncFile {
  private closed = false;
  /** The calls behind, in order: resolves (never rejects) once the last is over. */
  private queue: Promise<void> | undefined;
  /** The first call behind that failed: every later call on this file fails with it. */
  private failure: Error | undefined;

  constructor(readonly fd: number) {}

  /** True while writes (or calls after them) run behind. */
  get behind(): boolean {
    return this.queue !== undefined;
  }

  /** Waits for the calls behind; throws the first failure among them. */
  async settled(): Promise<void> {
    if (this.queue !== undefined) await this.queue;
    if (this.failure !== undefined) throw this.failure;
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

  /**
   * Writes all of `buffers` at `position`, at once (the copy into the page cache on this thread).
   * Only while nothing runs behind: a write must never overtake an earlier one.
   */
  async writev(buffers: readonly NodeJS.ArrayBufferView[], position: number): Promise<{ bytesWritten: number }> {
    await this.settled();
    return { bytesWritten: fs.writevSync(this.fd, buffers, position) };
  }

  /**
   * Writes all of `buffers` at `position` in the thread pool, behind the calls already behind,
   * and returns at once: the buffers must not change until settled(). A failure (`wrap`ped, to
   * say which record) fails every later call on this file.
   */
  writeBehind(buffers: readonly Uint8Array[], position: number, wrap: (err: unknown) => Error): void {
    this.after(async () => {
      try {
        await writeFully(this.fd, buffers, position);
      } catch (err) {
        throw wrap(err);
      }
    });
  }

  /** futimes behind the writes (a write after it would move the time it sets). */
  utimesBehind(atime: number, mtime: number): void {
    this.after(async () => fs.futimesSync(this.fd, atime, mtime));
  }

  private after(call: () => Promise<void>): void {
    const run = (this.queue ?? Promise.resolve()).then(async () => {
      if (this.failure !== undefined) return;
      try {
        await call();
      } catch (err) {
        this.failure = err instanceof Error ? err : new Error(String(err));
      }
    });
    this.queue = run;
    void run.then(() => {
      if (this.queue === run) this.queue = undefined;
    });
  }

  /** Closes the descriptor once the calls behind are over (never under one); throws their failure. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.queue !== undefined) await this.queue;
    fs.closeSync(this.fd);
    if (this.failure !== undefined) throw this.failure;
  }
}

/** writev in the thread pool until every byte is written. */
function writeFully(fd: number, buffers: readonly Uint8Array[], position: number): Promise<void> {
  return writeAllWith(buffers, position, (chunk, pos) => new Promise<number>((resolve, reject) => fs.writev(fd, chunk, pos, (err, n) => (err ? reject(err) : resolve(n)))));
}

/**
 * Writes every byte of `buffers` from `position` with `writev` (which returns the bytes it
 * wrote): IOV_MAX buffers a call; a short write (rare on a regular file) goes on where it stopped.
 */
export async function writeAllWith(buffers: readonly Uint8Array[], position: number, writev: (chunk: readonly Uint8Array[], position: number) => Promise<number>): Promise<void> {
  let pos = position;
  let rest = buffers;
  while (rest.length > 0) {
    const chunk = rest.length > IOV_MAX ? rest.slice(0, IOV_MAX) : rest;
    const want = chunk.reduce((s, b) => s + b.length, 0);
    const wrote = await writev(chunk, pos);
    pos += wrote;
    if (wrote >= want) {
      rest = rest.slice(chunk.length);
      continue;
    }
    if (wrote === 0) throw Object.assign(new Error('writev wrote nothing'), { code: 'EIO' });
    rest = skipBytes(rest, wrote);
  }
}

/** `buffers` without their first `n` bytes (after a short write). */
export function skipBytes(buffers: readonly Uint8Array[], n: number): Uint8Array[] {
  let skip = n;
  const left: Uint8Array[] = [];
  for (const b of buffers) {
    if (skip >= b.length) skip -= b.length;
    else {
      left.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
  }
  return left;
}

export const syncFs = {
  async open(path: PathLike, flags: number, mode?: Mode): Promise<SyncFile> {
    return new SyncFile(fs.openSync(path, flags, mode));
  },
};
