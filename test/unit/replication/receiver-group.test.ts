// Group commit on the passive: batches queued and releasable are applied together, and one
// durable point, one applied mark and one acknowledgement cover them. The sender and the receiver
// are joined by the in-memory link on a fake clock (./helpers.ts); the applier is a recorder that
// reports durable what it is told to. What is observed: the acknowledgements on the link, the
// applied marks in the receive log's files, the node state on disk.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReceiveLog } from '../../../agent/apply/receive-log.ts';
import { Manifest } from '../../../agent/manifest/index.ts';
import { Receiver } from '../../../agent/replication/index.ts';
import { NodeStateStore } from '../../../agent/state/index.ts';
import { initHash } from '../../../shared/hash.ts';
import { removeTempDirs } from '../journal/helpers.ts';
import { PER, ROOTS, RecordingApplier, log, replicationPair } from './helpers.ts';

beforeAll(initHash);
afterEach(removeTempDirs);

const pair = (windowBatches = 8) => replicationPair(windowBatches);

/** A pair whose first batch is being applied, held there (a busy disk) until `applier.release()`. */
async function busyWithFirst(windowBatches?: number) {
  const p = await pair(windowBatches);
  p.applier.hold();
  await p.batch();
  p.connect();
  await p.until(() => p.applier.entered === 1, 'the first batch is being applied');
  return p;
}

/** 1..n */
const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe('receiver: group commit', () => {
  it('applies the batches queued meanwhile together: one applied mark and one acknowledgement cover them all', async () => {
    const p = await busyWithFirst();
    // Four more arrive and are held durably while the disk is busy with the first.
    for (let i = 0; i < 4; i++) await p.batch();
    await p.until(() => p.receiveLog.receivedSeq === 5 * PER, 'all five batches in the receive log');
    p.applier.release();
    await p.until(() => p.sender.acked === 5 * PER, 'acked up to the head');
    expect(p.applier.applied).toEqual(upTo(5 * PER));
    // One durable point for the first batch, one for the four that waited: nothing in between.
    expect(p.acks()).toEqual([PER, 5 * PER]);
    await p.close();
    expect(p.marks()).toEqual([PER, 5 * PER]);
  });

  it('takes at most half the receive window in one group, so the active keeps sending while it is applied', async () => {
    const p = await busyWithFirst(4);
    for (let i = 0; i < 3; i++) await p.batch();
    await p.until(() => p.receiveLog.receivedSeq === 4 * PER, 'the window is full');
    p.applier.release();
    await p.until(() => p.sender.acked === 4 * PER, 'acked up to the head');
    // Window 4: groups of at most 2 batches.
    expect(p.acks()).toEqual([PER, 3 * PER, 4 * PER]);
    await p.close();
  });

  it('persists a synchronisation begun in the second batch of a group before the applied mark passes it', async () => {
    const p = await busyWithFirst();
    await p.batch();
    const syncLast = await p.batch({ first: { op: 'sync-begin', id: 'sync-7', baseSeq: 0, bytesTotal: 123456 } });
    await p.until(() => p.receiveLog.receivedSeq === syncLast, 'three batches in the receive log');
    p.applier.release();
    await p.until(() => p.sender.acked === syncLast, 'acked up to the head');
    expect(p.acks()).toEqual([PER, syncLast]);
    expect(p.receiver.status().sync).toMatchObject({ id: 'sync-7', bytesTotal: 123456, bytesDone: 2000 });
    await p.close();
    expect(p.marks()).toEqual([PER, syncLast]);
    // On disk: a restart knows the tree is mid-synchronisation, of the active's generation.
    const { store } = await NodeStateStore.open(p.stateDir, 'passive');
    expect(store.get()).toMatchObject({ syncId: 'sync-7', syncBytesTotal: 123456, generation: 'g1' });
  });

  it('ends a group at a batch that waits for its consistency point: nothing of it is applied before the point closes', async () => {
    const p = await busyWithFirst();
    await p.batch();
    await p.batch({ point: { at: 1000, end: false } });
    await p.batch({ point: { at: 1000, end: false } });
    await p.until(() => p.receiveLog.receivedSeq === 4 * PER, 'four batches in the receive log');
    p.applier.release();
    await p.until(() => p.receiver.applied === 2 * PER, 'the batch before the point is applied');
    await p.clock.advanceAsync(1000, () => new Promise((r) => setTimeout(r, 1)));
    expect(p.applier.applied).toEqual(upTo(2 * PER));
    expect(p.receiver.status().staged).toMatchObject({ batches: 2, records: 2 * PER });
    // The point closes: its three batches go as one group.
    await p.batch({ point: { at: 1000, end: true } });
    await p.until(() => p.sender.acked === 5 * PER, 'acked up to the head');
    expect(p.applier.applied).toEqual(upTo(5 * PER));
    expect(p.acks()).toEqual([PER, 2 * PER, 5 * PER]);
    await p.close();
    expect(p.marks()).toEqual([PER, 2 * PER, 5 * PER]);
  });

  it('when the third batch of a group fails, acknowledges only what was durable, then goes one batch at a time until it applies', async () => {
    const p = await busyWithFirst();
    for (let i = 0; i < 4; i++) await p.batch();
    await p.until(() => p.receiveLog.receivedSeq === 5 * PER, 'five batches in the receive log');
    // Batch 2 ends with a durable point (as a rename makes one); batch 4 cannot be written.
    p.applier.durableAt.add(2 * PER);
    p.applier.failAt = 3 * PER + 2;
    p.applier.release();
    await p.until(() => p.receiver.status().paused, 'applying paused');
    // Batch 3 was applied but not durable: not acknowledged.
    expect(p.receiver.applied).toBe(2 * PER);
    expect(p.marks()).toEqual([PER, 2 * PER]);
    await p.until(() => p.sender.acked === 2 * PER, 'the durable part acknowledged');
    // The retry takes the batches one at a time: batch 3 is applied and acknowledged alone, batch 4 still fails.
    await p.until(() => p.sender.acked === 3 * PER, 'the batch before the failing one acknowledged');
    await p.until(() => p.applier.entered >= 5, 'the failing batch tried again');
    expect(p.receiver.status().paused).toBe(true);
    expect(p.sender.acked).toBe(3 * PER);
    // Space again: the rest is applied, and the pause ends.
    p.applier.failAt = undefined;
    await p.until(() => p.sender.acked === 5 * PER, 'acked up to the head');
    expect(p.receiver.status().paused).toBe(false);
    // Nothing acknowledged was applied again; what was not durable was.
    expect(p.applier.applied.filter((s) => s <= 2 * PER)).toEqual(upTo(2 * PER));
    expect(new Set(p.applier.applied)).toEqual(new Set(upTo(5 * PER)));
    await p.close();
    expect(p.acks()).toEqual([PER, 2 * PER, 3 * PER, 4 * PER, 5 * PER]);
    expect(p.marks()).toEqual([PER, 2 * PER, 3 * PER, 4 * PER, 5 * PER]);
  });

  it('after a crash in the middle of a group, redoes the whole group and nothing acknowledged before it', async () => {
    const p = await pair();
    await p.batch();
    p.connect();
    await p.until(() => p.sender.acked === PER, 'the first batch acknowledged');
    p.applier.hold();
    for (let i = 0; i < 4; i++) await p.batch();
    await p.until(() => p.receiveLog.receivedSeq === 5 * PER && p.applier.entered === 2, 'four batches held, their group being applied');
    // The agent dies here (its applier never returns): what is on disk is all a restart has.
    const receiveLog = await ReceiveLog.open({ dir: p.receiveLogDir, segmentBytes: 1 << 20, log });
    const { store: nodeState } = await NodeStateStore.open(p.stateDir, 'passive');
    const applier = new RecordingApplier();
    const receiver = new Receiver({
      pair: 'p1', self: 'beta', blockSize: 65536, roots: ROOTS, receiveLog, applier, manifest: new Manifest(['data']), flushManifest: async () => {},
      nodeState, retryMinMs: 100, retryMaxMs: 1000, window: { batches: 8, bytes: 1 << 20 }, log, clock: p.clock,
    });
    await receiver.recover();
    await p.until(() => receiver.applied === 5 * PER, 'the restarted receiver applied what it held');
    expect(applier.applied).toEqual(upTo(5 * PER).slice(PER));
    await receiver.close();
    await receiveLog.close();
    expect(p.marks()).toEqual([PER, 5 * PER]);
    await p.close();
  });
});
