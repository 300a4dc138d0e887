// Capture: watch the protected roots and turn every change into ordered records of only the
// blocks that changed. It must never trust a watcher event as the whole truth, never follow a
// symlink, and never let the manifest claim more than the journal durably holds.
export { Capture } from './capture.ts';
export type { CaptureOptions, CaptureStatus, CaptureTaskContext, CapturePoints, RootConsistency } from './capture.ts';
export type { JournalSink } from './journal-sink.ts';
export { compileExcludes } from './exclude.ts';
export { readBlocks } from './block-reader.ts';
export { scanRoot } from './tree-scanner.ts';
export { replayJournalIntoManifest } from './manifest-recovery.ts';
