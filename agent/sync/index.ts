// Initial synchronisation: when the passive is empty or behind beyond the journal, compare
// block manifests and send only what differs, through the ordered journal. It must never send
// a block that the active manifest does not describe, nor file data the passive already has.
export { SyncRunner, entryFromWire, journalAction, journalFileBlocks, linkView } from './sync-runner.ts';
export type { SyncProgress, SyncRunnerOptions } from './sync-runner.ts';
export { diffEntry, actionBytes, sameMtime, sameOwner, sameMode } from './entry-diff.ts';
export type { SyncAction, LinkView } from './entry-diff.ts';
export { refreshManifest, manifestChunks, wireMetaOf } from './manifest-export.ts';
