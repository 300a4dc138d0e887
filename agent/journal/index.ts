// The journal: the active's durable, segmented, checksummed write log, and the segment store
// the passive's receive log shares. It must never let anything be sent or acknowledged before
// it is durable (fdatasync), and never use a sequence number twice, across restarts too.
export { Journal, batchProblem, DEFAULT_JOURNAL_CACHE_BYTES, REF_LOST } from './journal.ts';
export { ProtectedFiles } from './ref-source.ts';
export type { RefSource, RefSession } from './ref-source.ts';
export type { JournalOptions, JournalScan } from './journal.ts';
export { BatchIndex } from './batch-index.ts';
export { Waiters } from './waiters.ts';
export type { BatchInfo } from './batch-index.ts';
export { SegmentLog, BatchGrammar, segmentName, seqOf, SEGMENT_SUFFIX, WRITE_THROUGH_BYTES } from './segment-log.ts';
export type { SegmentLogOptions, SegmentInfo, FramePosition, ScanSummary, TornTail, Corruption } from './segment-log.ts';
