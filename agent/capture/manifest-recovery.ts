// After a restart, brings the active's manifest up to what its journal durably holds. The
// manifest is flushed after each commit, so a crash in between leaves records in the journal
// that the manifest does not reflect; a file created there and deleted while the agent was down
// would otherwise never have its removal journaled. Replayed entries carry no inode or read time,
// so the start-up scan reads those files again (their stat cannot prove them unchanged).
import type { DataRecord } from '../../shared/protocol/index.ts';
import { applyRecordToManifest, type Manifest } from '../manifest/index.ts';

export interface ReplayableJournal<B extends { first: number; last: number }> {
  oldestBatchAfter(seq: number): B | undefined;
  batchAfter(b: B): B | undefined;
  /** The batch's records as stored: a referenced block comes back by its length and hash, its file unread. */
  readRecords(b: B): Promise<DataRecord[]>;
}

export async function replayJournalIntoManifest<B extends { first: number; last: number }>(
  journal: ReplayableJournal<B>,
  manifest: Manifest,
  throughSeq: number,
  blockSize: number,
): Promise<{ records: number; batches: number }> {
  let records = 0;
  let batches = 0;
  for (let b = journal.oldestBatchAfter(throughSeq); b !== undefined; b = journal.batchAfter(b)) {
    for (const e of await journal.readRecords(b)) {
      if (e.seq <= throughSeq) continue;
      applyRecordToManifest(manifest, e, blockSize);
      records++;
    }
    batches++;
  }
  return { records, batches };
}
