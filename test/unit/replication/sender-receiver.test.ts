// The sender and the receiver joined by an in-memory link, each behind its session, on a fake
// clock (./helpers.ts): every record delivered once and in order, across lost links and a full
// window.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initHash } from '../../../shared/hash.ts';
import { removeTempDirs } from '../journal/helpers.ts';
import { replicationPair } from './helpers.ts';

beforeAll(initHash);
afterEach(removeTempDirs);

/** Window: 4 batches. */
const pair = () => replicationPair(4);

describe('sender → receiver over the in-memory link', () => {
  it('delivers every record in order, and the acknowledgements advance to the head', async () => {
    const p = await pair();
    await p.journalBatches(3, 5);
    p.connect();
    await p.until(() => p.sender.acked === 15, 'acked up to 15');
    expect(p.applier.applied).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    expect(p.receiver.applied).toBe(15);
    expect(p.sender.status()).toMatchObject({ connected: true, ackedSeq: 15, headSeq: 15, inSync: true });
    // What is journaled later streams on the same connection.
    await p.journalBatches(2, 3);
    await p.until(() => p.sender.acked === 21, 'acked up to 21');
    expect(p.applier.applied).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
    await p.close();
  });

  it('a connection that replaces another while a journal read is under way still gets the stream (nothing else would start it again)', async () => {
    const p = await pair();
    // The catch-up after an outage: everything is journaled before the passive connects, and
    // nothing more is (capture waits for journal space), so no append wakes the sender later.
    await p.journalBatches(3, 4);
    // The first read from the journal hangs until released (a cold disk).
    const readBatch = p.journal.readBatch.bind(p.journal);
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    let reads = 0;
    p.journal.readBatch = async (b) => {
      if (reads++ === 0) await gate;
      return readBatch(b);
    };
    let attached = 0;
    const attach = p.sender.attach.bind(p.sender);
    p.sender.attach = (link, hello) => {
      attached++;
      attach(link, hello);
    };
    p.connect();
    await p.until(() => reads === 1, 'the first read under way');
    // Both sides dialed when the link came back: the second connection replaces the first.
    p.connect();
    await p.until(() => attached === 2, 'the second connection taken over');
    release();
    await p.until(() => p.sender.acked === 12, 'acked up to 12 on the new connection');
    expect(p.applier.applied).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    await p.close();
  });

  it('after the link is lost mid-stream, resumes from what the passive holds: nothing lost, nothing applied twice', async () => {
    const p = await pair();
    await p.journalBatches(2, 4);
    const link = p.connect();
    await p.until(() => p.sender.acked === 8, 'acked up to 8');
    // The passive's disk stalls: batches arrive and are held, none is acknowledged.
    p.applier.hold();
    await p.journalBatches(6, 4);
    await p.until(() => p.receiver.status().receivedSeq >= 16, 'batches received but not applied');
    expect(p.sender.acked).toBe(8);
    link.cut('the network dropped');
    await p.until(() => !p.sender.status().connected, 'the sender noticed');
    expect(p.sender.status().ackedSeq).toBe(8);
    // More is journaled while the link is down; then the disk recovers and the link comes back.
    await p.journalBatches(2, 4);
    p.applier.release();
    p.connect();
    await p.until(() => p.sender.acked === 40, 'acked up to 40 after the reconnect');
    expect(p.applier.applied).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(p.sender.status()).toMatchObject({ connected: true, inSync: true });
    await p.close();
  });

  it('never holds more unacknowledged batches than the window, whatever is journaled', async () => {
    const p = await pair();
    p.applier.hold();
    await p.journalBatches(12, 2);
    p.connect();
    await p.until(() => p.receiver.status().receivedSeq >= 8, 'the window filled');
    // Ten more seconds of fake time: nothing beyond the window of 4 batches arrives.
    await p.clock.advanceAsync(10_000);
    expect(p.receiver.status().receivedSeq).toBe(8);
    p.applier.release();
    await p.until(() => p.sender.acked === 24, 'acked up to 24');
    expect(p.applier.applied).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    await p.close();
  });

  it('has batches to send only while it could send one now: connected, room in the window, journaled past what it sent', async () => {
    const p = await pair();
    p.applier.hold();
    await p.journalBatches(12, 2);
    // No passive: nothing can be sent (capture keeps its long slices).
    expect(p.sender.hasSendable()).toBe(false);
    p.connect();
    await p.until(() => p.receiver.status().receivedSeq >= 8, 'the window filled');
    // Eight batches still journaled, but the window is full: capture has nothing to give way to.
    expect(p.sender.hasSendable()).toBe(false);
    p.applier.release();
    await p.until(() => p.sender.acked === 24, 'acked up to 24');
    expect(p.sender.hasSendable()).toBe(false);
    // A batch journaled while its read from the journal is under way: it could go now.
    const readBatch = p.journal.readBatch.bind(p.journal);
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    let reading = false;
    p.journal.readBatch = async (b) => {
      reading = true;
      await gate;
      return readBatch(b);
    };
    await p.journalBatches(1, 2);
    await p.until(() => reading, 'the read under way');
    expect(p.sender.hasSendable()).toBe(true);
    p.sender.setPaused(true);
    expect(p.sender.hasSendable()).toBe(false);
    p.sender.setPaused(false);
    release();
    await p.until(() => p.sender.acked === 26, 'acked up to 26');
    expect(p.sender.hasSendable()).toBe(false);
    await p.close();
  });

  it('sends again what was in flight when the link dropped: the passive ends with every record once', async () => {
    const p = await pair();
    await p.journalBatches(10, 3);
    // 40 ms each way: when the link drops, batches are on the wire and acks on their way back.
    const link = p.connect(40);
    await p.until(() => p.receiver.status().receivedSeq >= 6, 'the first batches arrived');
    link.cut('the network dropped');
    const received = p.receiver.status().receivedSeq;
    expect(received).toBeLessThan(30);
    expect(p.sender.acked).toBeLessThan(30);
    p.connect(40);
    await p.until(() => p.sender.acked === 30, 'acked up to 30 after the reconnect');
    expect(p.applier.applied).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    await p.close();
  });
});
