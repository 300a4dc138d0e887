// The receiver applies a batch from the records it decoded to check it, instead of decoding them
// again, while the queue keeps few: a record costs heap whatever its frame holds, so an active
// that sends batches of tiny records (a bug, an attack, or a chmod -R) must not make the passive
// keep a decoded object per record for everything it holds. Past the bound a batch is decoded
// again when applied, and both kinds apply the same.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DECODED_KEEP_RECORDS } from '../../../agent/replication/receiver.ts';
import { initHash } from '../../../shared/hash.ts';
import { removeTempDirs } from '../journal/helpers.ts';
import { replicationPair } from './helpers.ts';

beforeAll(initHash);
afterEach(removeTempDirs);

const BATCHES = 12;
const PER_BATCH = 10_000;

describe('receiver: records decoded once', () => {
  it('keeps decoded records for at most DECODED_KEEP_RECORDS of what it holds, and applies every batch the same either way', async () => {
    // Protocol 3: batches are applied from memory, so all of them wait in the queue; a window as
    // the product's (64 MiB) holds them all.
    const p = await replicationPair(64, 3, { windowBytes: 64 << 20 });
    const kept = () => (p.receiver as unknown as { keptRecords: number }).keptRecords;
    p.applier.hold();
    p.connect();
    let last = 0;
    for (let b = 0; b < BATCHES; b++) {
      // The smallest records there are: a few dozen bytes of frame each.
      for (let i = 0; i < PER_BATCH; i++) last = p.journal.append({ op: 'unlink', root: 'data', path: `d${b}/f${i}` });
      await p.journal.commit(true);
    }
    let most = 0;
    await p.until(() => {
      most = Math.max(most, kept());
      return p.receiver.status().receivedSeq === last;
    }, 'every batch received while the applier is held');
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(DECODED_KEEP_RECORDS);
    expect(BATCHES * PER_BATCH).toBeGreaterThan(DECODED_KEEP_RECORDS);

    p.applier.release();
    await p.until(() => p.applier.applied.length === last, 'everything applied');
    expect(p.applier.applied).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    expect(kept()).toBe(0);
    await p.close();
  });
});
