// What must be sent so that the passive's entry for a path becomes the active's: a pure
// comparison of two manifest entries. The synchronisation runner turns it into records.
import { HASH_BYTES } from '../../shared/hash.ts';
import type { Entry, FileEntry } from '../manifest/index.ts';

export type SyncAction =
  | { kind: 'remove'; dir: boolean }
  | { kind: 'mkdir'; mode: number }
  | { kind: 'symlink'; target: string }
  | {
      kind: 'file';
      /** The passive's file is missing, of another kind, or of another size. */
      setSize: boolean;
      /** Indexes of the blocks whose content differs. */
      blocks: number[];
      /** Mode or mtime differ (always true when anything else is sent). */
      meta: boolean;
    };

/**
 * utimes takes seconds as a double, so an mtime set on the passive reads back a fraction of a
 * microsecond off; anything closer than 10 µs is the same time.
 */
export function sameMtime(a: number, b: number): boolean {
  return Math.abs(a - b) < 0.01;
}

/** Length of block `i` of a file of `size` bytes. */
function blockLen(size: number, i: number, bs: number): number {
  return Math.max(0, Math.min(bs, size - i * bs));
}

export function diffEntry(active: Entry | undefined, passive: Entry | undefined, blockSize: number): SyncAction | undefined {
  if (active === undefined) return passive === undefined ? undefined : { kind: 'remove', dir: passive.kind === 'dir' };
  switch (active.kind) {
    case 'dir':
      return passive?.kind === 'dir' && passive.mode === active.mode ? undefined : { kind: 'mkdir', mode: active.mode };
    case 'symlink':
      return passive?.kind === 'symlink' && passive.target === active.target ? undefined : { kind: 'symlink', target: active.target };
    case 'file':
      return diffFile(active, passive?.kind === 'file' ? passive : undefined, blockSize);
  }
}

function diffFile(a: FileEntry, p: FileEntry | undefined, bs: number): SyncAction | undefined {
  const n = a.blocks.length / HASH_BYTES;
  const pn = p === undefined ? 0 : p.blocks.length / HASH_BYTES;
  const blocks: number[] = [];
  for (let i = 0; i < n; i++) {
    const same =
      p !== undefined &&
      i < pn &&
      blockLen(a.size, i, bs) === blockLen(p.size, i, bs) &&
      a.blocks.compare(p.blocks, i * HASH_BYTES, (i + 1) * HASH_BYTES, i * HASH_BYTES, (i + 1) * HASH_BYTES) === 0;
    if (!same) blocks.push(i);
  }
  const setSize = p === undefined || p.size !== a.size;
  const meta = setSize || blocks.length > 0 || p.mode !== a.mode || !sameMtime(p.mtimeMs, a.mtimeMs);
  if (!setSize && blocks.length === 0 && !meta) return undefined;
  return { kind: 'file', setSize, blocks, meta };
}

/** Bytes of block data an action sends. */
export function actionBytes(action: SyncAction, entry: Entry | undefined, blockSize: number): number {
  if (action.kind !== 'file' || entry?.kind !== 'file') return 0;
  let n = 0;
  for (const i of action.blocks) n += blockLen(entry.size, i, blockSize);
  return n;
}
