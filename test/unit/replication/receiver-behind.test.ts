// The passive's durable point running behind the next group (ApplyOptions.overlap): a group
// applied leaves the window at once (the ack's `released`), so the active sends the next while
// the point runs; it is acknowledged, and its applied mark written, only once the point reported;
// a point that fails is applied again with everything after it. The sender and the receiver are
// joined by the in-memory link on a fake clock (./helpers.ts); the applier is a recorder whose
// points run behind and are held until the test lets them go.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TandemError } from '../../../shared/errors.ts';
import { initHash } from '../../../shared/hash.ts';
import type { AckMessage } from '../../../shared/protocol/index.ts';
import { removeTempDirs } from '../journal/helpers.ts';
import { PER, replicationPair } from './helpers.ts';

beforeAll(initHash);
afterEach(removeTempDirs);

/** A pair at protocol 3 (batches applied from memory) whose points run behind and are held. */
async function pairWithPointsHeld(windowBatches: number, batches: number) {
  const p = await replicationPair(windowBatches, 3);
  p.applier.behind = true;
  p.applier.holdPoints();
  for (let i = 0; i < batches; i++) await p.batch();
  const link = p.connect();
  const ackMessages = () => link.received.filter((m): m is AckMessage => m.t === 'ack');
  return { ...p, ackMessages };
}

const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe('receiver: a durable point behind the next group', () => {
  it('releases a group from the window once applied; acknowledges and marks it only once its point reported', async () => {
    // Window 4: without the release the active would stop after 4 batches.
    const p = await pairWithPointsHeld(4, 8);
    // The first group applied, its point held; the next applied, waiting for it. The active
    // sent a window's worth past the first group: more than 4 batches.
    await p.until(() => p.receiver.status().receivedSeq >= 5 * PER, 'more than a window received while no point reported');
    expect(p.sender.acked).toBe(0);
    expect(p.marks()).toEqual([]);
    const released = Math.max(...p.ackMessages().map((m) => m.released ?? 0));
    expect(released).toBeGreaterThanOrEqual(PER);
    expect(p.applier.applied.length).toBeGreaterThan(released);
    // Released is not durable: no ack says applied or received.
    expect(p.ackMessages().every((m) => m.seq === 0 && (m.received ?? 0) === 0)).toBe(true);

    p.applier.releasePoints();
    await p.until(() => p.sender.acked === 8 * PER, 'acked up to the head');
    expect(p.applier.applied).toEqual(upTo(8 * PER));
    const points = p.applier.points.map((x) => x.seq);
    expect(points.at(-1)).toBe(8 * PER);
    await p.close();
    // One applied mark per point, in order, each written once its point reported.
    expect(p.marks()).toEqual(points);
  });

  it('a point that fails: nothing of it is acknowledged, and its group is applied again with the one after it', async () => {
    const p = await pairWithPointsHeld(4, 4);
    await p.until(() => p.receiver.status().receivedSeq === 4 * PER && p.applier.entered >= 2, 'two groups applied, the first point held');
    p.applier.pointFails = new TandemError({ code: 'TANDEM_ERR_APPLY_FAILED', op: 'apply sync /data', reason: 'EIO: i/o error, syncfs' });
    p.applier.releasePoints();
    await p.until(() => p.receiver.status().paused, 'applying paused');
    expect(p.applier.points).toHaveLength(1);
    expect(p.applier.points[0]!.ok).toBe(false);
    expect(p.receiver.applied).toBe(0);
    expect(p.sender.acked).toBe(0);
    expect(p.marks()).toEqual([]);
    const before = p.applier.applied.length;
    // The disk recovers: applied again from the last durable point (one batch at a time while
    // paused, each made durable in the call), then in groups again.
    p.applier.pointFails = undefined;
    await p.until(() => p.sender.acked === 4 * PER, 'acked up to the head');
    expect(p.receiver.status().paused).toBe(false);
    expect(p.applier.applied.slice(before, before + PER)).toEqual(upTo(PER));
    expect(new Set(p.applier.applied)).toEqual(new Set(upTo(4 * PER)));
    await p.close();
    const marks = p.marks();
    expect(marks).toEqual([...marks].sort((a, b) => a - b));
    expect(marks.at(-1)).toBe(4 * PER);
  });

  it('applies a batch that arrives while the loop waits for its point, without waiting for that point', async () => {
    const p = await pairWithPointsHeld(8, 1);
    await p.until(() => p.applier.entered === 1 && p.ackMessages().some((m) => (m.released ?? 0) === PER), 'the first batch applied, its point held');
    await p.batch();
    await p.until(() => p.applier.applied.length === 2 * PER, 'the second batch applied while the first point is held');
    expect(p.sender.acked).toBe(0);
    p.applier.releasePoints();
    await p.until(() => p.sender.acked === 2 * PER, 'both acknowledged');
    await p.close();
    expect(p.marks()).toEqual([PER, 2 * PER]);
  });

  it('an ack whose released is past everything sent trims nothing, acknowledges nothing, and leaves later batches in the window', async () => {
    const p = await pairWithPointsHeld(4, 0);
    await p.until(() => p.sender.status().connected && p.ackMessages().length > 0, 'connected');
    // From the passive's end, as a faulty or hostile passive would say it, before anything was sent.
    p.passiveEnd().send({ t: 'ack', seq: 0, received: 0, released: 1_000_000 });
    await p.until(() => p.ackMessages().some((m) => m.released === 1_000_000), 'the ack delivered to the active');
    for (let i = 0; i < 8; i++) await p.batch();
    // The batches sent after it still count against the window: the passive, whose own count is
    // right, never has to refuse one (a refusal closes the link, and nothing more is acknowledged).
    await p.until(() => p.receiver.status().receivedSeq >= 5 * PER, 'more than a window received, the points held');
    expect(p.sender.acked).toBe(0);
    expect(p.journal.batchStartingAt(1)).toBeDefined();
    p.applier.releasePoints();
    await p.until(() => p.sender.acked === 8 * PER, 'acked up to the head');
    expect(p.applier.applied).toEqual(upTo(8 * PER));
    await p.close();
  });
});
