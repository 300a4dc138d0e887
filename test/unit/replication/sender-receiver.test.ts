// The sender and the receiver joined by an in-memory link, each behind its session, on a fake
// clock: the journal and the receive log are real (files in a temporary directory), the applier
// is a recorder (the seam: ReceiverApplier), capture is absent (nothing is captured: the test
// journals records itself). No sockets, and no timer runs on real time.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReceiveLog } from '../../../agent/apply/receive-log.ts';
import type { Capture } from '../../../agent/capture/index.ts';
import { Journal } from '../../../agent/journal/index.ts';
import { Manifest } from '../../../agent/manifest/index.ts';
import { Receiver, Sender, type ReceiverApplier } from '../../../agent/replication/index.ts';
import { MemoryLink, Session } from '../../../agent/session/index.ts';
import { NodeStateStore } from '../../../agent/state/index.ts';
import { FakeClock } from '../../../shared/clock.ts';
import { initHash } from '../../../shared/hash.ts';
import { silentLogger } from '../../../shared/log.ts';
import type { DataRecord, HelloMessage } from '../../../shared/protocol/index.ts';
import { removeTempDirs, tempDir, writeRecord } from '../journal/helpers.ts';

beforeAll(initHash);
afterEach(removeTempDirs);

const log = silentLogger();
const ROOTS = [{ name: 'data', path: '/nonexistent/data', exclude: [] }];

/** Applies nothing: keeps what it was given, in order; `hold` makes it wait (a slow disk). */
class RecordingApplier implements ReceiverApplier {
  readonly applied: number[] = [];
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  hold(): void {
    this.gate = new Promise((r) => (this.open = r));
  }
  release(): void {
    this.open?.();
    this.gate = undefined;
  }
  async apply(records: DataRecord[], durable: (seq: number) => Promise<void>): Promise<void> {
    if (this.gate !== undefined) await this.gate;
    for (const r of records) this.applied.push(r.seq);
    await durable(records[records.length - 1]!.seq);
  }
}

async function pair() {
  const clock = new FakeClock();
  const journal = await Journal.open({ dir: await tempDir(), segmentBytes: 1 << 20, maxBytes: 64 << 20, generation: 'g1', log, clock });
  const stateDir = await tempDir();
  const { store: nodeState } = await NodeStateStore.open(stateDir, 'passive');
  // The passive already holds generation g1 up to 0: it resumes, no initial synchronisation.
  await nodeState.update({ generation: 'g1' });
  const receiveLog = await ReceiveLog.open({ dir: await tempDir(), segmentBytes: 1 << 20, log });
  const applier = new RecordingApplier();
  const capture = { status: () => ({ pendingPaths: 0, waitingForSpace: false }) } as unknown as Capture;
  const sender = new Sender({
    pair: 'p1', self: 'alpha', generation: 'g1', history: [], activeEpoch: 1, splitBrainPolicies: [], blockSize: 65536, roots: ROOTS,
    journal, capture, manifest: new Manifest(['data']), windowBatches: 4, windowBytes: 1 << 20, batchBytes: 64 << 10, log, clock,
  });
  const receiver = new Receiver({
    pair: 'p1', self: 'beta', blockSize: 65536, roots: ROOTS, receiveLog, applier, manifest: new Manifest(['data']), flushManifest: async () => {},
    nodeState, retryMinMs: 100, retryMaxMs: 1000, window: { batches: 4, bytes: 1 << 20 }, log, clock,
  });
  await receiver.recover();
  const hello = (node: string, role: 'active' | 'passive', fields: Partial<HelloMessage>): HelloMessage => ({
    t: 'hello', proto: 2, protoMax: 2, pair: 'p1', node, role, epoch: 1, serving: role === 'active', blockSize: 65536, generation: '', headSeq: 0, firstSeq: 0, appliedSeq: 0, syncId: '', ...fields,
  });
  /** A new connection: both sessions exchange hellos and hand the connection to sender and receiver. */
  const connect = (delayMs = 1) => {
    const [atAlpha, atBeta] = MemoryLink.pair(clock, 'alpha', 'beta', { delayMs });
    const opts = { pair: 'p1', blockSize: 65536, helloTimeoutMs: 5000, protocol: { min: 1, max: 2 }, clock, log };
    const sa: Session = new Session(atAlpha, { ...opts, onPeerHello: (h) => sender.attach(sa.port('to-active'), h) });
    const sb: Session = new Session(atBeta, { ...opts, onPeerHello: (h) => receiver.attach(sb.port('to-passive'), h) });
    sa.start(hello('alpha', 'active', sender.helloFields()));
    sb.start(hello('beta', 'passive', receiver.helloFields()));
    return atAlpha;
  };
  /** Journals `n` batches of `per` records each. */
  const journalBatches = async (n: number, per: number) => {
    for (let b = 0; b < n; b++) {
      for (let i = 0; i < per; i++) journal.append(writeRecord(`f${b}`, 1000, 0x61 + i, i * 1000));
      await journal.commit(true);
    }
  };
  /**
   * Moves the fake clock in 5 ms steps until `cond`, letting real I/O (the journal's and the
   * receive log's files) finish between steps: a real millisecond per fake step.
   */
  const until = async (cond: () => boolean, what: string, maxMs = 30_000) => {
    for (let t = 0; t < maxMs && !cond(); t += 5) await clock.advanceAsync(5, () => new Promise((r) => setTimeout(r, 1)));
    if (!cond()) throw new Error(`not within ${maxMs} ms of fake time: ${what} (${JSON.stringify({ sender: sender.status(), received: receiver.status().receivedSeq, applied: receiver.applied })})`);
  };
  const close = async () => {
    applier.release();
    await sender.close();
    await receiver.close();
    await journal.close();
    await receiveLog.close();
  };
  return { clock, journal, sender, receiver, applier, connect, journalBatches, until, close };
}

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
