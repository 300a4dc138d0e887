// From protocol 3 a passive applies a batch without a consistency point straight from memory:
// its bytes are not written to the receive log first. What keeps that safe: the active keeps the
// batch in its journal until it is applied (the hello's durableSeq, the acks), a crash of the
// passive loses nothing, and a point's batch, which must go to the receive log, is never stored
// after a batch that is neither stored nor applied (a redo from the log would skip it).
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initHash } from '../../../shared/hash.ts';
import type { HelloMessage } from '../../../shared/protocol/index.ts';
import { removeTempDirs } from '../journal/helpers.ts';
import { PER, replicationPair } from './helpers.ts';

beforeAll(initHash);

type Pair = Awaited<ReturnType<typeof replicationPair>>;
let pair: Pair | undefined;

afterEach(async () => {
  await pair?.close();
  pair = undefined;
  await removeTempDirs();
});

const seqs = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('a passive at protocol 3 applies batches without a point from memory', () => {
  it('writes no record of them to its receive log, only applied marks, and applies and acknowledges every record once', async () => {
    const p = (pair = await replicationPair(4, 3));
    p.connect();
    await p.journalBatches(6, PER);
    await p.until(() => p.sender.status().ackedSeq === 6 * PER, 'all acknowledged');
    expect(p.applier.applied).toEqual(seqs(1, 6 * PER));
    expect(p.loggedRecords()).toBe(0);
    expect(p.marks().at(-1)).toBe(6 * PER);
  });

  it('at protocol 2 still writes every batch to the receive log before applying it', async () => {
    const p = (pair = await replicationPair(4, 2));
    p.connect();
    await p.journalBatches(2, PER);
    await p.until(() => p.sender.status().ackedSeq === 2 * PER, 'all acknowledged');
    expect(p.loggedRecords()).toBe(2 * PER);
  });

  it('says in its hello what it holds in memory (headSeq) apart from what it holds durably (durableSeq)', async () => {
    const p = (pair = await replicationPair(4, 3));
    p.applier.hold();
    p.connect();
    await p.journalBatches(2, PER);
    await p.until(() => p.receiver.status().receivedSeq === 2 * PER && p.applier.entered > 0, 'both received, applying held');
    const fields: Partial<HelloMessage> = p.receiver.helloFields(3);
    expect(fields).toMatchObject({ headSeq: 2 * PER, durableSeq: 0, held: { batches: 2 } });
    // A node offering protocol 2 at most says nothing of it: a protocol-2 active would not read it.
    expect(p.receiver.helloFields(2)).not.toHaveProperty('durableSeq');
  });

  it('loses nothing when it dies after acknowledging part of what it held in memory and reconnecting: the active kept the rest and sends it again', async () => {
    // A journal segment per batch or so: a trim shows at once in the journal's first sequence.
    const p = (pair = await replicationPair(4, 3, { journalSegmentBytes: 2048 }));
    p.applier.hold();
    p.connect();
    await p.journalBatches(3, PER);
    await p.until(() => p.receiver.status().receivedSeq === 3 * PER && p.applier.entered > 0, 'all received, applying held');
    // The link drops and comes back while everything is held in memory: the hello says 9 held,
    // none durably.
    p.connect();
    await p.until(() => p.sender.status().connected && p.receiver.status().connected, 'reconnected');
    // The first batch is applied and acknowledged; the next fails (a full disk) and waits.
    p.applier.durableAt.add(PER);
    p.applier.failAt = PER + 1;
    p.applier.release();
    await p.until(() => p.sender.status().ackedSeq === PER, 'the first batch acknowledged');
    // The journal still holds what the passive holds in memory only, whatever its hello said.
    expect(p.journal.firstSeq).toBeLessThanOrEqual(PER + 1);

    const { applier, receiver } = await p.restartPassive();
    expect(receiver.helloFields(3)).toMatchObject({ headSeq: PER, durableSeq: PER });
    p.connect();
    await p.until(() => p.sender.status().ackedSeq === 3 * PER, 'everything acknowledged after the restart');
    expect(applier.applied).toEqual(seqs(PER + 1, 3 * PER));
    // Resumed from the journal, not synchronised.
    expect(p.sender.status().sync).toBeUndefined();
  });

  it('does not apply a batch held in memory whose predecessor failed to persist: both come again, in order', async () => {
    const p = (pair = await replicationPair(4, 3));
    // The point's batch is stored first; its append hangs, then fails (a disk error).
    const append = p.receiveLog.appendBatch.bind(p.receiveLog);
    let fail: ((err: Error) => void) | undefined;
    p.receiveLog.appendBatch = () => new Promise<void>((_, reject) => (fail = reject));
    p.connect();
    const point = await p.batch({ point: { at: p.clock.now(), end: true } });
    const last = await p.batch();
    await p.until(() => p.receiver.status().receivedSeq === last && fail !== undefined, 'both received, the first being stored');
    fail!(new Error('EIO: i/o error'));
    await p.until(() => !p.receiver.status().connected, 'the connection refused');
    for (let i = 0; i < 20; i++) await p.clock.advanceAsync(5, () => new Promise((r) => setTimeout(r, 1)));
    expect(p.applier.applied).toEqual([]);
    expect(p.receiver.status().receivedSeq).toBe(point - PER);
    // The disk is back: the active sends both again and they are applied in order.
    p.receiveLog.appendBatch = append;
    p.connect();
    await p.until(() => p.sender.status().ackedSeq === last, 'both acknowledged');
    expect(p.applier.applied).toEqual(seqs(1, last));
  });

  it("stores a point's batch only once the batches held in memory before it are applied", async () => {
    const p = (pair = await replicationPair(4, 3));
    p.applier.hold();
    p.connect();
    await p.batch();
    await p.until(() => p.receiver.status().receivedSeq === PER && p.applier.entered > 0, 'the first batch received, applying held');
    const last = await p.batch({ point: { at: p.clock.now(), end: true } });
    await p.until(() => p.receiver.status().receivedSeq === last, 'the point received');
    // Give its append every chance to run: it must wait.
    for (let i = 0; i < 20; i++) await p.clock.advanceAsync(5, () => new Promise((r) => setTimeout(r, 1)));
    expect(p.loggedRecords()).toBe(0);
    p.applier.release();
    await p.until(() => p.sender.status().ackedSeq === last, 'both acknowledged');
    expect(p.applier.applied).toEqual(seqs(1, last));
    expect(p.loggedRecords()).toBe(PER);
    // A restart redoes nothing before the point: the log holds it after a mark that covers the first.
    const { applier, receiver } = await p.restartPassive();
    expect(receiver.applied).toBe(last);
    expect(applier.applied).toEqual([]);
  });
});
