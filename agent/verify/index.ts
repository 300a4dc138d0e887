// Verification (`tandem verify`): compares the passive's tree with the active's, block by
// block, with only hashes on the wire, and repairs what differs through the journal. It must
// never report replication in flight as a difference, and never write to the passive other
// than through ordinary journaled records.
export { Verifier } from './verifier.ts';
export type { VerifierOptions, VerifyPeer, VerifySummary } from './verifier.ts';
export { VerifyResponder } from './verify-responder.ts';
export type { VerifyResponderOptions } from './verify-responder.ts';
export { comparePaths, isDone, mustDescend, joinRel, type Cursor } from './path-order.ts';
export { judge, unsettledReason, differenceKind, type DifferenceKind, type DiskView, type Verdict } from './difference.ts';
export { loadRecord, saveRecord, newRecord, VERIFY_FILE, type VerifyRecord, type VerifyDifference, type VerifyPhase } from './verify-record.ts';
