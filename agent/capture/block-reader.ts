// Reads a regular file in chunks and hashes it block by block, without following a symlink and
// without ever holding the whole file: the next chunks are read while the current one is hashed
// and handed on, so a 1 GiB file costs a few chunk buffers (two, or READS_IN_FLIGHT for capture)
// and the event loop never stalls for more than one chunk's hashing (about a millisecond).
import fs, { constants as fsConstants } from 'node:fs';
import fsp from 'node:fs/promises';
import { HASH_BYTES, hash64Into } from '../../shared/hash.ts';
import { errnoOf } from '../../shared/errors.ts';

import { fileStatOf, type FileStat } from '../tree/file-stat.ts';

export { fileStatOf, type FileStat };

export interface BlockReadResult {
  kind: 'file';
  /** Stat taken when the file was opened. */
  stat: FileStat;
  /** Bytes actually read (the file's size as read). */
  size: number;
  /** xxhash64 of each block read. */
  blocks: Buffer;
  /** Wall-clock ms just before the first read. */
  readAt: number;
  /** The file changed while it was read: what was read may never have existed as a whole. */
  torn: boolean;
}

export type BlockReadOutcome = BlockReadResult | { kind: 'vanished' } | { kind: 'not-a-file' };

/**
 * Called for each chunk, in order. `chunk` holds whole blocks starting at `offset` (the last
 * one may be short) and is only valid until the returned promise settles.
 */
export type ChunkHandler = (offset: number, chunk: Buffer, hashes: Buffer) => Promise<void> | void;

/** What a failed open of a hinted path means: gone, or not a regular file; anything else throws. */
export function openFailure(err: unknown): BlockReadOutcome {
  const code = errnoOf(err);
  if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'vanished' };
  if (code === 'ELOOP' || code === 'EISDIR') return { kind: 'not-a-file' };
  throw err;
}

/** Read-only, never through a link; O_NONBLOCK: a FIFO swapped in after the lstat must not block the open forever. */
const OPEN_FLAGS = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK;

/**
 * Opens `absPath` for reading if it is a regular file, with its stat as opened; what a path
 * that is gone, a link or not a file means otherwise (the handle is then closed).
 */
export async function openRegular(absPath: string): Promise<{ fh: fsp.FileHandle; st: fs.Stats } | { kind: 'vanished' } | { kind: 'not-a-file' }> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(absPath, OPEN_FLAGS);
  } catch (err) {
    return openFailure(err) as { kind: 'vanished' } | { kind: 'not-a-file' };
  }
  try {
    const st = await fh.stat();
    if (st.isFile()) return { fh, st };
  } catch (err) {
    await fh.close();
    throw err;
  }
  await fh.close();
  return { kind: 'not-a-file' };
}

/** xxhash64 of each block of `chunk` (the last may be short), in a new buffer. */
export function hashBlocks(chunk: Buffer, blockSize: number): Buffer {
  const n = Math.ceil(chunk.length / blockSize);
  const hashes = Buffer.allocUnsafe(n * HASH_BYTES);
  for (let i = 0; i < n; i++) hash64Into(chunk.subarray(i * blockSize, Math.min(chunk.length, (i + 1) * blockSize)), hashes, i * HASH_BYTES);
  return hashes;
}

/**
 * Chunk buffers of a large file that capture reads (readBlocks): the next three are read while
 * one is hashed. Verify keeps the default two: up to 32 answers may read at once on the passive.
 */
export const READS_IN_FLIGHT = 4;

export function chunkBytesFor(blockSize: number): number {
  return Math.max(blockSize, Math.floor((1 << 20) / blockSize) * blockSize);
}

export async function readBlocks(
  absPath: string,
  blockSize: number,
  now: () => number,
  onChunk: ChunkHandler,
  /** Called once the file is open, with its stat, before the first chunk. */
  onOpen?: (stat: FileStat) => void,
  /** Chunk buffers, each with a read in flight while another is hashed (capture: READS_IN_FLIGHT). */
  buffers = 2,
): Promise<BlockReadOutcome> {
  const opened = await openRegular(absPath);
  if (!('fh' in opened)) return opened;
  const { fh, st: st0 } = opened;
  try {
    const stat = fileStatOf(st0);
    onOpen?.(stat);
    const total = st0.size;
    // Never larger than the file: a small file must not cost several 1 MiB buffers.
    const chunkBytes = Math.min(chunkBytesFor(blockSize), Math.max(blockSize, Math.ceil(total / blockSize) * blockSize));
    const depth = Math.max(1, Math.min(buffers, Math.ceil(total / chunkBytes)));
    const bufs = Array.from({ length: depth }, () => Buffer.allocUnsafe(chunkBytes));
    const nBlocks = Math.ceil(total / blockSize);
    const blocks = Buffer.allocUnsafe(nBlocks * HASH_BYTES);
    const readAt = now();
    let torn = false;

    const readChunk = async (buf: Buffer, offset: number): Promise<number> => {
      const want = Math.min(chunkBytes, total - offset);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(buf, got, want - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return got;
    };

    // The next chunks are read while this one is hashed and handed on: one read at a time left
    // the reader idle a third of the time (bench (c), 1 GiB: each 1 MiB read waits its turn in
    // the thread pool). A chunk's buffer is read into again only once its handler settled.
    const inflight: { offset: number; buf: Buffer; read: Promise<number> }[] = [];
    let issued = 0;
    let nextOffset = 0;
    const fill = () => {
      while (inflight.length < depth && nextOffset < total) {
        const buf = bufs[issued++ % depth]!;
        inflight.push({ offset: nextOffset, buf, read: readChunk(buf, nextOffset) });
        nextOffset += chunkBytes;
      }
    };
    let size = 0;
    try {
      fill();
      while (inflight.length > 0) {
        const { offset, buf, read } = inflight.shift()!;
        const got = await read;
        const short = got < Math.min(chunkBytes, total - offset);
        if (short) torn = true; // the file shrank under us
        const chunk = buf.subarray(0, got);
        const hashes = hashBlocks(chunk, blockSize);
        hashes.copy(blocks, (offset / blockSize) * HASH_BYTES);
        await onChunk(offset, chunk, hashes);
        size = offset + got;
        // What follows a short read is not handed on: the file as read ends there.
        if (short) break;
        fill();
      }
    } finally {
      // Never close the file under a read still running (its descriptor could be reused).
      await Promise.allSettled(inflight.map((r) => r.read));
    }
    const st1 = await fh.stat();
    if (st1.size !== st0.size || st1.mtimeMs !== st0.mtimeMs) torn = true;
    return { kind: 'file', stat, size, blocks: blocks.subarray(0, Math.ceil(size / blockSize) * HASH_BYTES), readAt, torn };
  } finally {
    await fh.close();
  }
}

/** Files up to this size are read in one synchronous call (see readBlocksSync). */
export const SYNC_READ_MAX_BYTES = 256 * 1024;

let scratch = Buffer.alloc(0);

/**
 * Reads a small file in one go, synchronously. For a file of a few KiB the six asynchronous
 * round trips of open/fstat/read/fstat/close cost about a millisecond of waiting, while the
 * synchronous calls take tens of microseconds from the page cache: at 1,000 new files a second
 * that is the difference between keeping up and falling behind. `chunk` is a view into a buffer
 * reused by the next call. A file that turns out larger than SYNC_READ_MAX_BYTES is not read:
 * the caller reads it with readBlocks.
 */
export function readBlocksSync(
  absPath: string,
  blockSize: number,
  now: () => number,
  onChunk: (offset: number, chunk: Buffer, hashes: Buffer) => void,
  onOpen?: (stat: FileStat) => void,
): BlockReadOutcome | { kind: 'too-large' } {
  let fd: number;
  try {
    fd = fs.openSync(absPath, OPEN_FLAGS);
  } catch (err) {
    return openFailure(err);
  }
  try {
    const st0 = fs.fstatSync(fd);
    if (!st0.isFile()) return { kind: 'not-a-file' };
    if (st0.size > SYNC_READ_MAX_BYTES) return { kind: 'too-large' };
    const stat = fileStatOf(st0);
    onOpen?.(stat);
    if (scratch.length < st0.size) scratch = Buffer.allocUnsafe(Math.max(st0.size, 64 * 1024));
    const readAt = now();
    let got = 0;
    while (got < st0.size) {
      const n = fs.readSync(fd, scratch, got, st0.size - got, got);
      if (n === 0) break;
      got += n;
    }
    const chunk = scratch.subarray(0, got);
    const hashes = hashBlocks(chunk, blockSize);
    if (got > 0) onChunk(0, chunk, hashes);
    const st1 = fs.fstatSync(fd);
    const torn = got !== st0.size || st1.size !== st0.size || st1.mtimeMs !== st0.mtimeMs;
    return { kind: 'file', stat, size: got, blocks: hashes, readAt, torn };
  } finally {
    fs.closeSync(fd);
  }
}
