// Group commit on the passive: batches queued and releasable are applied together, and one
// durable point, one applied mark and one acknowledgement cover them. The sender and the receiver
// are joined by the in-memory link on a fake clock; the journal, the receive log and the node
// state are real files in a temporary directory; the applier is a recorder that reports durable
// what it is told to (the seam: ReceiverApplier). What is observed: the acknowledgements on the
// link, the applied marks in the receive log's files, the node state on disk.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReceiveLog } from '../../../agent/apply/receive-log.ts';
import type { Capture } from '../../../agent/capture/index.ts';
import { Journal } from '../../../agent/journal/index.ts';
import { Manifest } from '../../../agent/manifest/index.ts';
import { Receiver, Sender, type ReceiverApplier } from '../../../agent/replication/index.ts';
import { MemoryLink, Session } from '../../../agent/session/index.ts';
import { NodeStateStore } from '../../../agent/state/index.ts';
import { FakeClock } from '../../../shared/clock.ts';
import { TandemError } from '../../../shared/errors.ts';
import { initHash } from '../../../shared/hash.ts';
import { silentLogger } from '../../../shared/log.ts';
import { parseFrames, type CommitPoint, type DataRecord, type HelloMessage } from '../../../shared/protocol/index.ts';
import { readSegment, removeTempDirs, segmentFiles, tempDir, writeRecord } from '../journal/helpers.ts';

beforeAll(initHash);
afterEach(removeTempDirs);

const log = silentLogger();
const ROOTS = [{ name: 'data', path: '/nonexistent/data', exclude: [] }];
const PER = 3;

/**
 * Applies nothing: keeps what it was given, in order. `hold` makes it wait (a slow disk);
 * `durableAt` are sequences after which it reports a durable point inside a call (as a rename
 * does); `failAt` makes it throw on reaching that sequence (a full disk) until `failAt` is unset.
 */
class RecordingApplier implements ReceiverApplier {
  readonly applied: number[] = [];
  entered = 0;
  durableAt = new Set<number>();
  failAt: number | undefined;
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
    this.entered++;
    if (this.gate !== undefined) await this.gate;
    for (const r of records) {
      if (r.seq === this.failAt) throw new TandemError({ code: 'TANDEM_ERR_APPLY_FAILED', op: `apply record ${r.seq}`, reason: 'ENOSPC: no space left on device' });
      this.applied.push(r.seq);
      if (this.durableAt.has(r.seq) && r !== records[records.length - 1]) await durable(r.seq);
    }
    await durable(records[records.length - 1]!.seq);
  }
}

async function pair(windowBatches = 8) {
  const clock = new FakeClock();
  const journal = await Journal.open({ dir: await tempDir(), segmentBytes: 1 << 20, maxBytes: 64 << 20, generation: 'g1', log, clock });
  const stateDir = await tempDir();
  const { store: nodeState } = await NodeStateStore.open(stateDir, 'passive');
  await nodeState.update({ generation: 'g1' });
  const receiveLogDir = await tempDir();
  const receiveLog = await ReceiveLog.open({ dir: receiveLogDir, segmentBytes: 1 << 20, log });
  const applier = new RecordingApplier();
  const capture = { status: () => ({ pendingPaths: 0, waitingForSpace: false }) } as unknown as Capture;
  const sender = new Sender({
    pair: 'p1', self: 'alpha', generation: 'g1', history: [], activeEpoch: 1, splitBrainPolicies: [], blockSize: 65536, roots: ROOTS,
    journal, capture, manifest: new Manifest(['data']), windowBatches, windowBytes: 1 << 20, batchBytes: 64 << 10, log, clock,
  });
  const receiver = new Receiver({
    pair: 'p1', self: 'beta', blockSize: 65536, roots: ROOTS, receiveLog, applier, manifest: new Manifest(['data']), flushManifest: async () => {},
    nodeState, retryMinMs: 100, retryMaxMs: 1000, window: { batches: windowBatches, bytes: 1 << 20 }, log, clock,
  });
  await receiver.recover();
  const hello = (node: string, role: 'active' | 'passive', fields: Partial<HelloMessage>): HelloMessage => ({
    t: 'hello', proto: 2, protoMax: 2, pair: 'p1', node, role, epoch: 1, serving: role === 'active', blockSize: 65536, generation: '', headSeq: 0, firstSeq: 0, appliedSeq: 0, syncId: '', ...fields,
  });
  let link: MemoryLink | undefined;
  const connect = () => {
    const [atAlpha, atBeta] = MemoryLink.pair(clock, 'alpha', 'beta', { delayMs: 1 });
    const opts = { pair: 'p1', blockSize: 65536, helloTimeoutMs: 5000, protocol: { min: 1, max: 2 }, clock, log };
    const sa: Session = new Session(atAlpha, { ...opts, onPeerHello: (h) => sender.attach(sa.port('to-active'), h) });
    const sb: Session = new Session(atBeta, { ...opts, onPeerHello: (h) => receiver.attach(sb.port('to-passive'), h) });
    sa.start(hello('alpha', 'active', sender.helloFields()));
    sb.start(hello('beta', 'passive', receiver.helloFields()));
    link = atAlpha;
  };
  /** Journals one batch of PER writes (the first record `first` instead, when given); returns its last sequence. */
  const batch = async (opts: { point?: CommitPoint; first?: Parameters<Journal['append']>[0] } = {}) => {
    let last = 0;
    for (let i = 0; i < PER; i++) last = journal.append(i === 0 && opts.first !== undefined ? opts.first : writeRecord(`f${last}`, 1000, 0x61 + i, i * 1000));
    await journal.commit(true, opts.point);
    return last;
  };
  /** Moves the fake clock in 5 ms steps until `cond`, letting real I/O finish between steps. */
  const until = async (cond: () => boolean, what: string, maxMs = 30_000) => {
    for (let t = 0; t < maxMs && !cond(); t += 5) await clock.advanceAsync(5, () => new Promise((r) => setTimeout(r, 1)));
    if (!cond()) throw new Error(`not within ${maxMs} ms of fake time: ${what} (${JSON.stringify({ sender: sender.status(), received: receiver.status().receivedSeq, applied: receiver.applied })})`);
  };
  /** The sequences acknowledged as applied, in the order the acks arrived, each once. */
  const acks = () => {
    const seqs: number[] = [];
    for (const m of link?.received ?? []) if (m.t === 'ack' && m.seq > 0 && m.seq !== seqs[seqs.length - 1]) seqs.push(m.seq);
    return seqs;
  };
  /** The applied marks written to the receive log, in order (read from its files). */
  const marks = () => {
    const seqs: number[] = [];
    for (const s of segmentFiles(receiveLogDir)) {
      for (const f of parseFrames(readSegment(receiveLogDir, s.name)).frames) if (f.entry.op === 'applied') seqs.push(f.entry.seq);
    }
    return seqs;
  };
  const close = async () => {
    applier.release();
    await sender.close();
    await receiver.close();
    await journal.close();
    await receiveLog.close();
  };
  return { clock, journal, sender, receiver, receiveLog, receiveLogDir, applier, stateDir, connect, batch, until, acks, marks, close };
}

/** 1..n */
const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe('receiver: group commit', () => {
  it('applies the batches queued meanwhile together: one applied mark and one acknowledgement cover them all', async () => {
    const p = await pair();
    p.applier.hold();
    await p.batch();
    p.connect();
    await p.until(() => p.applier.entered === 1, 'the first batch is being applied');
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
    const p = await pair(4);
    p.applier.hold();
    await p.batch();
    p.connect();
    await p.until(() => p.applier.entered === 1, 'the first batch is being applied');
    for (let i = 0; i < 3; i++) await p.batch();
    await p.until(() => p.receiveLog.receivedSeq === 4 * PER, 'the window is full');
    p.applier.release();
    await p.until(() => p.sender.acked === 4 * PER, 'acked up to the head');
    // Window 4: groups of at most 2 batches.
    expect(p.acks()).toEqual([PER, 3 * PER, 4 * PER]);
    await p.close();
  });

  it('persists a synchronisation begun in the second batch of a group before the applied mark passes it', async () => {
    const p = await pair();
    p.applier.hold();
    await p.batch();
    p.connect();
    await p.until(() => p.applier.entered === 1, 'the first batch is being applied');
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
    const p = await pair();
    p.applier.hold();
    await p.batch();
    p.connect();
    await p.until(() => p.applier.entered === 1, 'the first batch is being applied');
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
    const p = await pair();
    p.applier.hold();
    await p.batch();
    p.connect();
    await p.until(() => p.applier.entered === 1, 'the first batch is being applied');
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
