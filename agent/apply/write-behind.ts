// Writes behind: the passive's large writes run in the thread pool while its main thread goes on
// with the next records (decoding, checking, the next file), instead of copying every byte into
// the page cache itself. It must never let two writes to one inode change order, let any other
// call on a file run before the writes issued to it before, or let a durable point, a stat for
// the manifest or the end of an apply call pass a write that is still running.
import fs from 'node:fs';

/** A write of at least this many bytes goes behind; a smaller one is made at once (its round trip would cost more than the copy). */
export const BEHIND_MIN_BYTES = 64 * 1024;
/** Bytes in flight at most: past it, the next write behind waits for the oldest (the thread pool also serves fsyncs and the receive log). */
export const BEHIND_MAX_BYTES = 16 * 1024 * 1024;

/** Linux IOV_MAX: buffers per writev call. */
const IOV_MAX = 1024;

/** One descriptor's writes behind, in order: each starts once the one before it ended. */
export class BehindChain {
  private tail: Promise<void> | undefined;
  /** The first failure: the file's content is unknown from then on, and every later call on it fails. */
  private failure: Error | undefined;

  constructor(
    readonly fd: number,
    readonly dev: number,
    readonly ino: number,
    private readonly writes: WritesBehind,
  ) {}

  /** Queues `buffers` at `position` after the writes before it; `bytes` is their total length; `wrap` gives a failure its context. */
  push(buffers: readonly Uint8Array[], position: number, bytes: number, wrap: (err: unknown) => Error): void {
    const before = this.tail;
    const run = (async () => {
      if (before !== undefined) await before;
      await writeWhole(this.fd, buffers, position);
    })();
    const tail = run.catch((err: unknown) => {
      // A write queued after a failed one never runs (it awaited that one): the first failure
      // is the one kept.
      this.failure ??= wrap(err);
      throw this.failure;
    });
    tail.catch(() => undefined);
    this.tail = tail;
    this.writes.started(this, tail, bytes);
  }

  /** Resolves once every write queued so far ended; rejects with the first failure. */
  async settled(): Promise<void> {
    if (this.tail !== undefined) await this.tail.catch(() => undefined);
    if (this.failure !== undefined) throw this.failure;
  }

  /** No write running and none failed: the next call need not wait. */
  get idle(): boolean {
    return this.tail === undefined && this.failure === undefined;
  }

  /** Called by WritesBehind once `tail` ended, if it is still the last. */
  ended(tail: Promise<void>): void {
    if (this.tail === tail) this.tail = undefined;
  }
}

/** All writes behind of one applier: the byte budget, and the waits that must see none running. */
export class WritesBehind {
  private readonly running = new Map<Promise<void>, { chain: BehindChain; bytes: number }>();
  private bytes = 0;

  /** Writes issued and not yet ended. */
  get inFlight(): number {
    return this.running.size;
  }

  started(chain: BehindChain, tail: Promise<void>, bytes: number): void {
    this.running.set(tail, { chain, bytes });
    this.bytes += bytes;
    const end = () => {
      this.running.delete(tail);
      this.bytes -= bytes;
      chain.ended(tail);
    };
    tail.then(end, end);
  }

  /** Waits until a write of `bytes` fits the budget (the oldest writes end first: they were queued first). */
  async room(bytes: number): Promise<void> {
    while (this.bytes > 0 && this.bytes + bytes > BEHIND_MAX_BYTES) {
      const oldest = this.running.keys().next().value as Promise<void>;
      await oldest.catch(() => undefined);
    }
  }

  /**
   * The writes behind on inode `dev`/`ino` (a file evicted, or dropped when its path was renamed
   * or removed, then opened again through a new descriptor): the new descriptor's calls must come
   * after them.
   */
  async onInode(dev: number, ino: number): Promise<void> {
    const waits = new Set<BehindChain>();
    for (const { chain } of this.running.values()) if (chain.dev === dev && chain.ino === ino) waits.add(chain);
    for (const c of waits) await c.settled();
  }

  /** Waits for every write behind; rejects with the first failure once all ended. */
  async drain(): Promise<void> {
    let first: Error | undefined;
    while (this.running.size > 0) {
      const chains = new Set([...this.running.values()].map((r) => r.chain));
      for (const c of chains) {
        try {
          await c.settled();
        } catch (err) {
          first ??= err instanceof Error ? err : new Error(String(err));
        }
      }
    }
    if (first !== undefined) throw first;
  }
}

/** pwritev of all of `buffers` from `position`, in the thread pool, going on after a short write. */
async function writeWhole(fd: number, buffers: readonly Uint8Array[], position: number): Promise<void> {
  let pos = position;
  let rest = buffers;
  while (rest.length > 0) {
    const chunk = rest.length > IOV_MAX ? rest.slice(0, IOV_MAX) : rest;
    const want = chunk.reduce((s, b) => s + b.length, 0);
    const wrote = await new Promise<number>((resolve, reject) => fs.writev(fd, chunk, pos, (err, n) => (err ? reject(err) : resolve(n))));
    pos += wrote;
    if (wrote >= want) {
      rest = rest.slice(chunk.length);
      continue;
    }
    if (wrote === 0) throw Object.assign(new Error('writev wrote nothing'), { code: 'EIO', syscall: 'writev' });
    let skip = wrote;
    const left: Uint8Array[] = [];
    for (const b of rest) {
      if (skip >= b.length) skip -= b.length;
      else {
        left.push(skip > 0 ? b.subarray(skip) : b);
        skip = 0;
      }
    }
    rest = left;
  }
}
