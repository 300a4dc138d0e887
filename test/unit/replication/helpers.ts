// The sender and the receiver joined by an in-memory link, each behind its session, on a fake
// clock: the journal, the receive log and the node state are real (files in a temporary
// directory), the applier is a recorder (the seam: ReceiverApplier), capture is absent (nothing
// is captured: the tests journal records themselves). No sockets, and no timer runs on real time.
import { ReceiveLog } from '../../../agent/apply/receive-log.ts';
import type { Capture } from '../../../agent/capture/index.ts';
import { Journal } from '../../../agent/journal/index.ts';
import { Manifest } from '../../../agent/manifest/index.ts';
import { Receiver, Sender, type ReceiverApplier } from '../../../agent/replication/index.ts';
import { MemoryLink, Session } from '../../../agent/session/index.ts';
import { NodeStateStore } from '../../../agent/state/index.ts';
import { FakeClock } from '../../../shared/clock.ts';
import { TandemError } from '../../../shared/errors.ts';
import { silentLogger } from '../../../shared/log.ts';
import { parseFrames, type CommitPoint, type DataRecord, type HelloMessage } from '../../../shared/protocol/index.ts';
import { readSegment, segmentFiles, tempDir, writeRecord } from '../journal/helpers.ts';

export const log = silentLogger();
export const ROOTS = [{ name: 'data', path: '/nonexistent/data', exclude: [] }];
/** Records per batch of `batch()`. */
export const PER = 3;

/**
 * Applies nothing: keeps what it was given, in order. `hold` makes it wait (a slow disk);
 * `durableAt` are sequences after which it reports a durable point inside a call (as a rename
 * does); `failAt` makes it throw on reaching that sequence (a full disk) until `failAt` is unset.
 * With `behind`, a call asked to overlap returns with its last point running behind (as the
 * applier does for many files): `holdPoints` holds those points, `pointFails` fails them.
 */
export class RecordingApplier implements ReceiverApplier {
  readonly applied: number[] = [];
  entered = 0;
  durableAt = new Set<number>();
  failAt: number | undefined;
  behind = false;
  pointFails: TandemError | undefined;
  /** Points that ran behind and reported (or failed), in order. */
  readonly points: { seq: number; ok: boolean }[] = [];
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  private pointGate: Promise<void> | undefined;
  private openPoints: (() => void) | undefined;
  hold(): void {
    this.gate = new Promise((r) => (this.open = r));
  }
  release(): void {
    this.open?.();
    this.gate = undefined;
  }
  holdPoints(): void {
    this.pointGate = new Promise((r) => (this.openPoints = r));
  }
  releasePoints(): void {
    this.openPoints?.();
    this.pointGate = undefined;
  }
  async apply(
    records: DataRecord[],
    durable: (seq: number) => Promise<void>,
    opts: { overlap?: boolean; after?: Promise<void> | undefined; applied?: () => void } = {},
  ): Promise<{ done: Promise<void> } | undefined> {
    this.entered++;
    if (this.gate !== undefined) await this.gate;
    for (const r of records) {
      if (r.seq === this.failAt) throw new TandemError({ code: 'TANDEM_ERR_APPLY_FAILED', op: `apply record ${r.seq}`, reason: 'ENOSPC: no space left on device' });
      this.applied.push(r.seq);
      if (this.durableAt.has(r.seq) && r !== records[records.length - 1]) {
        await opts.after;
        await durable(r.seq);
      }
    }
    // As the applier: the point before this call's is waited for (its failure fails this call).
    await opts.after;
    const last = records[records.length - 1]!.seq;
    if (opts.overlap !== true || !this.behind) {
      await durable(last);
      return undefined;
    }
    opts.applied?.();
    const gate = this.pointGate;
    const done = (async () => {
      await gate;
      const fails = this.pointFails;
      this.points.push({ seq: last, ok: fails === undefined });
      if (fails !== undefined) throw fails;
      await durable(last);
    })();
    done.catch(() => undefined);
    return { done };
  }
}

/**
 * `protocol`: the highest both sessions offer (the session runs at it). From 3 the passive applies
 * batches without a point from memory; the tests written before it run at 2.
 */
export async function replicationPair(windowBatches = 4, protocol = 2, opts: { journalSegmentBytes?: number; roots?: typeof ROOTS; windowBytes?: number } = {}) {
  const windowBytes = opts.windowBytes ?? 1 << 20;
  const roots = opts.roots ?? ROOTS;
  const clock = new FakeClock();
  const journal = await Journal.open({ dir: await tempDir(), segmentBytes: opts.journalSegmentBytes ?? 1 << 20, maxBytes: 64 << 20, generation: 'g1', log, clock });
  const stateDir = await tempDir();
  const { store: nodeState } = await NodeStateStore.open(stateDir, 'passive');
  await nodeState.update({ generation: 'g1' });
  const receiveLogDir = await tempDir();
  let receiveLog = await ReceiveLog.open({ dir: receiveLogDir, segmentBytes: 1 << 20, log });
  let applier = new RecordingApplier();
  const capture = { status: () => ({ pendingPaths: 0, waitingForSpace: false }) } as unknown as Capture;
  const sender = new Sender({
    pair: 'p1', self: 'alpha', generation: 'g1', history: [], activeEpoch: 1, splitBrainPolicies: [], blockSize: 65536, roots,
    journal, capture, manifest: new Manifest(['data']), windowBatches, windowBytes, batchBytes: 64 << 10, log, clock,
  });
  const newReceiver = () =>
    new Receiver({
      pair: 'p1', self: 'beta', blockSize: 65536, roots, receiveLog, applier, manifest: new Manifest(['data']), flushManifest: async () => {},
      takeManifestDeltas: () => Buffer.alloc(0),
      nodeState, retryMinMs: 100, retryMaxMs: 1000, window: { batches: windowBatches, bytes: windowBytes }, log, clock,
    });
  let receiver = newReceiver();
  await receiver.recover();
  /** Receive logs of passives that died: their files stay open until close(). */
  const abandoned: ReceiveLog[] = [];
  /**
   * The passive's process dies and starts again: whatever it held in memory is gone; a new
   * receive log (on the same files), applier and receiver. The old ones are abandoned as they are
   * (a held applier stays held). Connect again afterwards.
   */
  const restartPassive = async () => {
    const link = current;
    current = undefined;
    link?.close('normal', 'the passive died');
    abandoned.push(receiveLog);
    receiveLog = await ReceiveLog.open({ dir: receiveLogDir, segmentBytes: 1 << 20, log });
    applier = new RecordingApplier();
    receiver = newReceiver();
    await receiver.recover();
    return { receiver, applier, receiveLog };
  };
  const hello = (node: string, role: 'active' | 'passive', fields: Partial<HelloMessage>): HelloMessage => ({
    t: 'hello', proto: 2, protoMax: protocol, pair: 'p1', node, role, epoch: 1, serving: role === 'active', blockSize: 65536, generation: '', headSeq: 0, firstSeq: 0, appliedSeq: 0, syncId: '', ...fields,
  });
  let link: MemoryLink | undefined;
  let current: MemoryLink | undefined;
  /** The passive's end of the last connection: a test sends from it what a passive would. */
  let passiveEnd: MemoryLink | undefined;
  /** A new connection: both sessions exchange hellos and hand the connection to sender and receiver. */
  const connect = (delayMs = 1) => {
    const [atAlpha, atBeta] = MemoryLink.pair(clock, 'alpha', 'beta', { delayMs });
    const opts = { pair: 'p1', blockSize: 65536, helloTimeoutMs: 5000, protocol: { min: 2, max: protocol }, clock, log };
    const sa: Session = new Session(atAlpha, { ...opts, onPeerHello: (h) => sender.attach(sa.port('to-active'), h) });
    const sb: Session = new Session(atBeta, { ...opts, onPeerHello: (h, v) => receiver.attach(sb.port('to-passive'), h, v) });
    sa.start(hello('alpha', 'active', sender.helloFields()));
    sb.start(hello('beta', 'passive', receiver.helloFields(protocol)));
    link = atAlpha;
    current = atAlpha;
    passiveEnd = atBeta;
    return atAlpha;
  };
  /** Journals `n` batches of `per` records each. */
  const journalBatches = async (n: number, per: number) => {
    for (let b = 0; b < n; b++) {
      for (let i = 0; i < per; i++) journal.append(writeRecord(`f${b}`, 1000, 0x61 + i, i * 1000));
      await journal.commit(true);
    }
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
    for (const l of abandoned.splice(0)) await l.close();
  };
  /** Record frames (not marks) in the receive log's files. */
  const loggedRecords = () => {
    let n = 0;
    for (const s of segmentFiles(receiveLogDir)) {
      for (const f of parseFrames(readSegment(receiveLogDir, s.name)).frames) if (f.entry.op !== 'applied' && f.entry.op !== 'commit') n++;
    }
    return n;
  };
  return { clock, journal, sender, receiver, receiveLog, receiveLogDir, applier, stateDir, connect, journalBatches, batch, until, acks, marks, close, restartPassive, loggedRecords, passiveEnd: () => passiveEnd! };
}
