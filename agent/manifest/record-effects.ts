// What a record does to a manifest, as a pure function. The passive's applier uses it to keep
// its manifest true to its disk; the initial synchronisation uses it to follow, record by
// record, what the passive's tree is at each point of the stream.
import { writeLength, type DataRecord } from '../../shared/protocol/index.ts';
import { HASH_BYTES } from '../../shared/hash.ts';
import { blockCount, type FileEntry, type Manifest } from './manifest.ts';

/** A placeholder hash for blocks that no write has described yet (never equals a real one by intent). */
export const UNKNOWN_BLOCK = Buffer.alloc(HASH_BYTES, 0xff);

function emptyFile(mode: number): FileEntry {
  return { kind: 'file', mode, size: 0, mtimeMs: 0, ino: 0, blocks: Buffer.alloc(0), readAt: 0 };
}

export function applyRecordToManifest(m: Manifest, r: DataRecord, blockSize: number): void {
  if (r.op === 'sync-begin' || r.op === 'sync-end') return;
  if (!m.hasRoot(r.root)) return;
  const prev = m.get(r.root, r.path);
  switch (r.op) {
    case 'mkdir':
      if (prev?.kind === 'dir') m.set(r.root, r.path, { ...prev, mode: r.mode });
      else m.set(r.root, r.path, { kind: 'dir', mode: r.mode, ino: 0, mtimeMs: 0 });
      return;
    case 'file': {
      const base = prev?.kind === 'file' ? prev : emptyFile(0o644);
      m.set(r.root, r.path, { ...base, size: r.size, blocks: resizeBlocks(base.blocks, base.size, r.size, blockSize) });
      return;
    }
    case 'write': {
      const base = prev?.kind === 'file' ? prev : emptyFile(0o644);
      const index = Math.floor(r.offset / blockSize);
      const length = writeLength(r); // the block's, also when the record carries it compressed
      const end = r.offset + length;
      const size = Math.max(base.size, end);
      const blocks = resizeBlocks(base.blocks, base.size, size, blockSize);
      if (r.offset % blockSize === 0 && (length === blockSize || end === size)) {
        Buffer.from(r.hash.buffer, r.hash.byteOffset, HASH_BYTES).copy(blocks, index * HASH_BYTES);
      } else {
        // An unaligned write leaves the block's hash unknown until it is read again.
        UNKNOWN_BLOCK.copy(blocks, index * HASH_BYTES);
      }
      m.set(r.root, r.path, { ...base, size, blocks });
      return;
    }
    case 'meta':
      if (prev !== undefined && prev.kind !== 'symlink') m.set(r.root, r.path, { ...prev, mode: r.mode, mtimeMs: r.mtimeMs });
      else if (prev?.kind === 'symlink') m.set(r.root, r.path, { ...prev, mtimeMs: r.mtimeMs });
      return;
    case 'symlink':
      m.set(r.root, r.path, { kind: 'symlink', target: r.target, ino: 0, mtimeMs: 0 });
      return;
    case 'unlink':
    case 'rmdir':
      m.delete(r.root, r.path);
      return;
    case 'rename':
      // An unknown source means the rename already happened (a redo) or the source is missing:
      // the applier then leaves `to` as it is, and so does the manifest.
      if (prev !== undefined) m.move(r.root, r.path, r.to);
      return;
  }
}

/**
 * Block hashes for a file resized from `oldSize` to `newSize`: blocks wholly below both sizes
 * keep their hash; a last block that changed length, and new blocks, become unknown.
 */
export function resizeBlocks(blocks: Buffer, oldSize: number, newSize: number, blockSize: number): Buffer {
  const n = blockCount(newSize, blockSize);
  if (oldSize === newSize && blocks.length === n * HASH_BYTES) return blocks;
  const out = Buffer.alloc(n * HASH_BYTES);
  const keep = Math.min(Math.floor(Math.min(oldSize, newSize) / blockSize), n, blocks.length / HASH_BYTES);
  blocks.copy(out, 0, 0, keep * HASH_BYTES);
  for (let i = keep; i < n; i++) UNKNOWN_BLOCK.copy(out, i * HASH_BYTES);
  return out;
}
