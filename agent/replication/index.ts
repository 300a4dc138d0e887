// Replication sessions over the channel: the active's sender (journal → passive) and the
// passive's receiver (channel → receive log → applier → ack). A session must never send what is
// not durable, never acknowledge what is not applied and durable, and never skip a record.
export { Sender } from './sender.ts';
export type { SenderJournal, SenderBatch, SenderOptions, SenderStatus, SplitBrainState } from './sender.ts';
export { Receiver } from './receiver.ts';
export type { ReceiverLog, ReceiverApplier, ReceiverOptions, ReceiverStatus, Alarm, StoredBatchLike, Discarded } from './receiver.ts';
export { decideStart } from './start-decision.ts';
export type { StartDecision, ActiveView, PassiveView } from './start-decision.ts';
export { relate, forkHistory, autoKeep, MAX_HISTORY, SPLIT_BRAIN_POLICIES } from './lineage.ts';
export type { LineageEntry, Position, Relation, SplitBrainPolicy, SplitBrainFacts } from './lineage.ts';
export { listenTo } from './peer-link.ts';
export type { PeerLink, LinkCloseInfo } from './peer-link.ts';
