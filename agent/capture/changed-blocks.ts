// Reads only the blocks of a file that a snapshot comparison says changed, and takes every other
// block's hash from what the manifest holds for the older snapshot. A checkpoint that rewrites
// a few pages of a large table then costs those pages, not the table: `btrfs send` lists the
// byte ranges whose extents changed (exactly: it compares the two trees' extent records), so a
// block outside them has the bytes it had. Only for a file read from an immutable snapshot whose
// previous state the manifest holds exactly; anything else is read whole (block-reader.ts).
import { HASH_BYTES } from '../../shared/hash.ts';
import { chunkBytesFor, fileStatOf, hashBlocks, openRegular, type BlockReadOutcome, type ChunkHandler, type FileStat } from './block-reader.ts';

export interface ChangedBlocks {
  /** Hashes of the older state, one per block of `size`. */
  blocks: Buffer;
  size: number;
  /** Blocks whose bytes may differ (numbers of `blockSize` blocks). */
  changed: ReadonlySet<number>;
}

/**
 * The blocks to read: those listed, and when the size changed the block where the shorter of the
 * two sizes ends and every block after it (a grown file's new blocks, which may be holes the list
 * does not name, and a last block whose length changed).
 */
export function blocksToRead(prevSize: number, size: number, blockSize: number, changed: ReadonlySet<number>): number[] {
  const n = Math.ceil(size / blockSize);
  const out = new Set<number>();
  for (const b of changed) if (b < n) out.add(b);
  if (size !== prevSize) for (let b = Math.floor(Math.min(size, prevSize) / blockSize); b < n; b++) out.add(b);
  return [...out].sort((a, b) => a - b);
}

export async function readChangedBlocks(
  absPath: string,
  blockSize: number,
  prev: ChangedBlocks,
  readAt: number,
  onChunk: ChunkHandler,
  onOpen?: (stat: FileStat) => void,
): Promise<BlockReadOutcome> {
  const opened = await openRegular(absPath);
  if (!('fh' in opened)) return opened;
  const { fh, st } = opened;
  try {
    const stat = fileStatOf(st);
    onOpen?.(stat);
    const size = st.size;
    const n = Math.ceil(size / blockSize);
    const blocks = Buffer.alloc(n * HASH_BYTES);
    prev.blocks.copy(blocks, 0, 0, Math.min(prev.blocks.length, blocks.length));
    const todo = blocksToRead(prev.size, size, blockSize, prev.changed);
    const maxRun = Math.max(1, Math.floor(chunkBytesFor(blockSize) / blockSize));
    let buf = Buffer.alloc(0);
    for (let i = 0; i < todo.length; ) {
      // A run of consecutive blocks, one chunk at most.
      let j = i + 1;
      while (j < todo.length && todo[j] === todo[j - 1]! + 1 && j - i < maxRun) j++;
      const first = todo[i]!;
      const offset = first * blockSize;
      const want = Math.min((j - i) * blockSize, size - offset);
      if (buf.length < want) buf = Buffer.allocUnsafe(Math.max(want, blockSize));
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(buf, got, want - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      // A snapshot does not change: a short read is a damaged file system, not a race.
      if (got < want) throw new Error(`read ${got} of ${want} bytes at offset ${offset} of a snapshot`);
      const chunk = buf.subarray(0, got);
      const hashes = hashBlocks(chunk, blockSize);
      hashes.copy(blocks, first * HASH_BYTES);
      await onChunk(offset, chunk, hashes);
      i = j;
    }
    return { kind: 'file', stat, size, blocks, readAt, torn: false };
  } finally {
    await fh.close();
  }
}
