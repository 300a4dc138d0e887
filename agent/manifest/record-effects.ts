// What a record does to a manifest, as a pure function. The passive's applier uses it to keep
// its manifest true to its disk; the initial synchronisation uses it to follow, record by
// record, what the passive's tree is at each point of the stream.
import { writeLength, type DataRecord, type FileRecord, type HoleRecord, type MetaFields, type MetaRecord, type OwnerFields, type WriteRecord } from '../../shared/protocol/index.ts';
import { HASH_BYTES, zeroBlockHash } from '../../shared/hash.ts';
import { xattrsHash } from '../tree/xattrs.ts';
import { blockCount, type Entry, type EntryAttrs, type EntryOwner, type FileEntry, type Manifest } from './manifest.ts';

/** A placeholder hash for blocks that no write has described yet (never equals a real one by intent). */
export const UNKNOWN_BLOCK = Buffer.alloc(HASH_BYTES, 0xff);

function emptyFile(mode: number): FileEntry {
  return { kind: 'file', mode, size: 0, mtimeMs: 0, ino: 0, blocks: Buffer.alloc(0), readAt: 0 };
}

/**
 * One string per owner name: each decoded record brings its own copy of "root", and the
 * passive's manifest kept two per entry (4.6 MiB of 100,000 entries' ~97 MiB, heap snapshot).
 * Bounded, since the names come from the network: past the bound a name is kept as it came.
 */
export const OWNER_NAMES_MAX = 4096;
const ownerNames = new Map<string, string>();

function ownerName(name: string): string {
  const known = ownerNames.get(name);
  if (known !== undefined) return known;
  if (ownerNames.size < OWNER_NAMES_MAX) ownerNames.set(name, name);
  return name;
}

/** Owner names shared so far (at most OWNER_NAMES_MAX). */
export function ownerNamesKept(): number {
  return ownerNames.size;
}

/** The owner a record sets; nothing when it carries none (a record journaled before owners were). */
export function ownerOf(r: OwnerFields): EntryOwner {
  if (r.uid === undefined) return {};
  const out: EntryOwner = { uid: r.uid, gid: r.gid };
  if (r.user !== undefined) out.user = ownerName(r.user);
  if (r.group !== undefined) out.group = ownerName(r.group);
  return out;
}

/** Owner and attributes a record sets, over what the entry had (fields it does not carry stay). */
function attrsOf(r: MetaFields): EntryAttrs {
  const out: EntryAttrs = ownerOf(r);
  if (r.xattrs !== undefined) out.xattrHash = xattrsHash(r.xattrs);
  return out;
}

/**
 * A new entry: `base` with `changes` over it. Not `{ ...base, ...changes }`: once warm, V8
 * gives an object spread-cloned and then given properties its source lacked (the owner, the
 * attributes' hash) a hidden class of its own (measured: two maps, ~400 of the ~750 heap bytes
 * of each entry of the passive's manifest and of the synchronisation's shadow), where
 * Object.assign onto a fresh object shares them.
 */
function copyOf<T extends object>(base: T, ...changes: object[]): T {
  return Object.assign({}, base, ...changes) as T;
}

export function applyRecordToManifest(m: Manifest, r: DataRecord, blockSize: number): void {
  if (r.op === 'sync-begin' || r.op === 'sync-end') return;
  if (!m.hasRoot(r.root)) return;
  applyOne(m, r, blockSize);
  // The names of one inode (hard links) share its content and metadata: what a record did to
  // one of them, it did to all.
  if (r.op === 'file' || r.op === 'write' || r.op === 'hole' || r.op === 'meta') {
    const e = m.get(r.root, r.path);
    if (e?.kind !== 'file' || e.ino === 0) return;
    for (const q of m.pathsForIno(r.root, e.ino)) {
      if (q !== r.path && m.get(r.root, q)?.kind === 'file') m.set(r.root, q, copyOf(e, { blocks: Buffer.from(e.blocks) }));
    }
  }
}

function applyOne(m: Manifest, r: Exclude<DataRecord, { op: 'sync-begin' | 'sync-end' }>, blockSize: number): void {
  const prev = m.get(r.root, r.path);
  switch (r.op) {
    case 'mkdir':
      if (prev?.kind === 'dir') m.set(r.root, r.path, copyOf(prev, { mode: r.mode }, attrsOf(r)));
      else m.set(r.root, r.path, Object.assign({ kind: 'dir' as const, mode: r.mode, ino: 0, mtimeMs: 0 }, attrsOf(r)));
      return;
    case 'file':
      m.set(r.root, r.path, afterFile(prev, r, blockSize));
      return;
    case 'write':
    case 'hole':
      m.set(r.root, r.path, afterWrite(prev, r, blockSize));
      return;
    case 'meta':
      if (prev !== undefined) m.set(r.root, r.path, afterMeta(prev, r));
      return;
    case 'symlink':
      m.set(r.root, r.path, Object.assign({ kind: 'symlink' as const, target: r.target, ino: 0, mtimeMs: 0 }, ownerOf(r)));
      return;
    case 'hardlink': {
      const t = m.get(r.root, r.target);
      // A missing target (a redo after it went) leaves the path as it is, as the applier does.
      if (t?.kind !== 'file') return;
      let ino = t.ino;
      if (ino === 0) {
        ino = m.syntheticIno();
        m.set(r.root, r.target, copyOf(t, { ino }));
      }
      m.set(r.root, r.path, copyOf(t, { ino, blocks: Buffer.from(t.blocks) }));
      return;
    }
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

/** What a `file` record makes of the entry `prev` (undefined: a path not in the manifest). */
function afterFile(prev: Entry | undefined, r: FileRecord, blockSize: number): FileEntry {
  const base = prev?.kind === 'file' ? prev : emptyFile(0o600);
  return copyOf(base, { size: r.size, blocks: resizeBlocks(base.blocks, base.size, r.size, blockSize) });
}

/** What a `write` or `hole` record makes of the entry `prev`. */
function afterWrite(prev: Entry | undefined, r: WriteRecord | HoleRecord, blockSize: number): FileEntry {
  const base = prev?.kind === 'file' ? prev : emptyFile(0o600);
  const index = Math.floor(r.offset / blockSize);
  const length = r.op === 'write' ? writeLength(r) : r.length; // the block's, also when the record carries it compressed
  const end = r.offset + length;
  const size = Math.max(base.size, end);
  const blocks = resizeBlocks(base.blocks, base.size, size, blockSize);
  if (r.offset % blockSize === 0 && (length === blockSize || end === size)) {
    const h = r.op === 'write' ? Buffer.from(r.hash.buffer, r.hash.byteOffset, HASH_BYTES) : zeroBlockHash(length);
    h.copy(blocks, index * HASH_BYTES);
  } else {
    // An unaligned write leaves the block's hash unknown until it is read again.
    for (let i = index; i * blockSize < end; i++) UNKNOWN_BLOCK.copy(blocks, i * HASH_BYTES);
  }
  return copyOf(base, { size, blocks });
}

/** What a `meta` record makes of the entry `prev`. */
function afterMeta<E extends Entry>(prev: E, r: MetaRecord): E {
  return prev.kind === 'symlink' ? copyOf(prev, { mtimeMs: r.mtimeMs }) : copyOf(prev, { mode: r.mode, mtimeMs: r.mtimeMs }, attrsOf(r));
}

/**
 * The entry that a new file's records (its `file`, its writes in order, its `meta`), applied one
 * by one to a manifest that does not know its path and holds no other name of it, leave there:
 * one entry made instead of one per record (the passive's new-file worker, bench (e)).
 */
export function newFileEntry(file: FileRecord, writes: readonly WriteRecord[], meta: MetaRecord, blockSize: number): FileEntry {
  let e = afterFile(undefined, file, blockSize);
  for (const w of writes) e = afterWrite(e, w, blockSize);
  return afterMeta(e, meta);
}

/**
 * Block hashes for a file resized from `oldSize` to `newSize`: blocks wholly below both sizes
 * keep their hash; whole blocks past the old size are zeros (ftruncate extends with a hole);
 * a last block that changed length is unknown.
 */
export function resizeBlocks(blocks: Buffer, oldSize: number, newSize: number, blockSize: number): Buffer {
  const n = blockCount(newSize, blockSize);
  if (oldSize === newSize && blocks.length === n * HASH_BYTES) return blocks;
  // From Node's shared pool (small sizes), as the active's hashes are: an ArrayBuffer of its own
  // per entry cost ~200 bytes of bookkeeping for an 8-byte hash, on the passive's manifest and
  // on the synchronisation's shadow of it. Every byte is written below.
  const out = Buffer.allocUnsafe(n * HASH_BYTES);
  const keep = Math.min(Math.floor(Math.min(oldSize, newSize) / blockSize), n, blocks.length / HASH_BYTES);
  blocks.copy(out, 0, 0, keep * HASH_BYTES);
  for (let i = keep; i < n; i++) {
    const start = i * blockSize;
    const len = Math.min(blockSize, newSize - start);
    if (start >= oldSize) zeroBlockHash(len).copy(out, i * HASH_BYTES);
    else UNKNOWN_BLOCK.copy(out, i * HASH_BYTES);
  }
  return out;
}
