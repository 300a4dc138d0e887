// How the passive applies a batch of compressed blocks: in runs that each inflate to at most
// APPLY_INFLATED_BYTES (plus the block that reaches it), raw records untouched, order kept.
import zlib from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { APPLY_INFLATED_BYTES, inflatedRuns } from '../../../agent/replication/receiver.ts';
import { hash64, initHash } from '../../../shared/hash.ts';
import type { DataRecord, WriteRecord } from '../../../shared/protocol/index.ts';

beforeAll(async () => {
  await initHash();
});

const BLOCK = 64 * 1024;

function zeroBlock(seq: number): WriteRecord {
  const raw = Buffer.alloc(BLOCK);
  return { op: 'write', seq, root: 'data', path: 'z', offset: (seq - 2) * BLOCK, data: zlib.deflateRawSync(raw), hash: hash64(raw), encoding: 'deflate-raw', rawLength: BLOCK };
}

/** Every run `inflatedRuns` yields, in order. */
async function runsOf(records: DataRecord[]): Promise<DataRecord[][]> {
  const runs: DataRecord[][] = [];
  for await (const run of inflatedRuns(records)) runs.push(run);
  return runs;
}

describe('inflated runs', () => {
  it('cuts a batch of compressed blocks into runs of at most 16 MiB inflated, in order, each block inflated', async () => {
    const records: DataRecord[] = [{ op: 'file', seq: 1, root: 'data', path: 'z', size: 1000 * BLOCK }];
    for (let i = 0; i < 1000; i++) records.push(zeroBlock(i + 2));
    const runs = await runsOf(records);
    const perRun = APPLY_INFLATED_BYTES / BLOCK;
    expect(runs.map((r) => r.length)).toEqual([perRun + 1, perRun, perRun, 1000 - 3 * perRun]);
    for (const run of runs) {
      const inflated = run.reduce((n, r) => n + (r.op === 'write' ? r.data.length : 0), 0);
      expect(inflated).toBeLessThanOrEqual(APPLY_INFLATED_BYTES);
      for (const r of run) if (r.op === 'write') expect(r.encoding).toBeUndefined();
    }
    expect(runs.flat().map((r) => r.seq)).toEqual(records.map((r) => r.seq));
  });

  it('leaves raw records in one run however large, and refuses a block that does not inflate', async () => {
    const raw = Buffer.alloc(BLOCK, 1);
    const records: DataRecord[] = Array.from({ length: 600 }, (_, i) => ({ op: 'write', seq: i + 1, root: 'data', path: 'r', offset: i * BLOCK, data: raw, hash: hash64(raw) }));
    expect(await runsOf(records)).toHaveLength(1);
    const bad = { ...zeroBlock(2), data: Buffer.from('not deflate') };
    await expect(runsOf([bad])).rejects.toMatchObject({ code: 'TANDEM_ERR_BLOCK_UNDECODABLE' });
  });
});
