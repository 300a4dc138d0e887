// After a restart, brings the active's manifest up to what its journal durably holds. The
// manifest is flushed after each commit, so a crash in between leaves records in the journal
// that the manifest does not reflect; a file created there and deleted while the agent was down
// would otherwise never have its removal journaled. Replayed entries carry no inode or read time,
// so the start-up scan reads those files again (their stat cannot prove them unchanged).
import { parseFrames, type DataRecord } from '../../shared/protocol/index.ts';
import { applyRecordToManifest, type Manifest } from '../manifest/index.ts';

export interface ReplayableJournal<B extends { first: number; last: number }> {
  oldestBatchAfter(seq: number): B | undefined;
  batchAfter(b: B): B | undefined;
  readBatch(b: B): Promise<Buffer>;
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
    const { frames, stop } = parseFrames(await journal.readBatch(b));
    if (stop.kind !== 'end') throw new Error(`journal batch ${b.first}-${b.last} does not parse (${stop.kind})`);
    for (const f of frames) {
      const e = f.entry;
      if (e.op === 'commit' || e.op === 'applied' || e.seq <= throughSeq) continue;
      applyRecordToManifest(manifest, e as DataRecord, blockSize);
      records++;
    }
    batches++;
  }
  return { records, batches };
}
