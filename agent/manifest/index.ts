// The manifest: per path, kind, stat data and block hashes of the protected trees. It is what
// capture diffs against and what synchronisation compares; it must never claim more than the
// disk (or the journal) durably holds.
export { Manifest, blockCount } from './manifest.ts';
export type { Entry, FileEntry, DirEntry, LinkEntry, EntryOwner, EntryAttrs } from './manifest.ts';
export { ManifestStore, fsyncDir } from './manifest-store.ts';
export { applyRecordToManifest, newFileEntry, resizeBlocks, ownerOf, UNKNOWN_BLOCK } from './record-effects.ts';
