// What runs on the active node: the journal, capture (watching the protected roots) and the
// sender that streams batches to the passive. Built when the node becomes active, stopped when
// it stops being so; it must never run on a passive node.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Capture, replayJournalIntoManifest, type CapturePoints } from '../capture/index.ts';
import { Journal, ProtectedFiles } from '../journal/index.ts';
import { Btrfs, PointLedger, PointMarker, SnapshotStore, findBtrfs, planRoots, refuseUnsupported } from '../points/index.ts';
import { Sender } from '../replication/index.ts';
import { RootProtection } from '../standby/index.ts';
import { Verifier } from '../verify/index.ts';
import type { Clock } from '../../shared/clock.ts';
import type { EngineDeps } from './engine-deps.ts';

export class ActiveEngine {
  private constructor(
    readonly journal: Journal,
    readonly capture: Capture,
    readonly sender: Sender,
    readonly verifier: Verifier,
    private readonly clock: Clock,
    private readonly marker: PointMarker | undefined,
  ) {}

  /**
   * `freshAfterSeq`: the node was passive until now (a promotion): any journal on disk is from an
   * older time as active and is discarded; the new journal continues after that sequence.
   */
  static async start(deps: EngineDeps, opts: { freshAfterSeq?: number } = {}): Promise<ActiveEngine> {
    const { config, log, clock, manifestStore, nodeState } = deps;
    // A node that serves must never keep a root read-only that a killed passive agent left so.
    await RootProtection.releaseLeftovers(config.stateDir, log);
    const dir = path.join(config.stateDir, 'journal');
    if (opts.freshAfterSeq !== undefined) await fsp.rm(dir, { recursive: true, force: true });
    // A large file's blocks may be journaled as references to its bytes, read back from the file
    // when their batch is no longer in memory (docs/journal.md, "Referenced blocks").
    const journal = await Journal.open({ dir, segmentBytes: config.journal.segmentBytes, maxBytes: config.journal.maxBytes, generation: nodeState.get().generation, log, clock, refs: new ProtectedFiles(config.protect) });
    try {
      if (opts.freshAfterSeq !== undefined && journal.headSeq < opts.freshAfterSeq) await journal.skipTo(opts.freshAfterSeq);
      const manifestWasEmpty = manifestStore.manifest.count() === 0;
      const replayed = await replayJournalIntoManifest(journal, manifestStore.manifest, manifestStore.throughSeq, config.blockSize);
      if (replayed.records > 0) {
        log.info({ ...replayed, fromSeq: manifestStore.throughSeq + 1, headSeq: journal.headSeq }, 'capture: manifest brought up to the journal after an unclean stop');
      }
      await manifestStore.flush(journal.headSeq);
      let sender: Sender | undefined;
      const points = pointsFor(deps);
      const capture = new Capture({
        roots: config.protect,
        manifest: manifestStore.manifest,
        journal,
        blockSize: config.blockSize,
        batchBytes: config.journal.batchBytes,
        batchDelayMs: config.journal.batchDelay,
        compressionLevel: config.channel.compression,
        settleMs: config.capture.settle,
        scanIntervalMs: config.capture.scanInterval,
        renameWindowMs: config.capture.renameWindow,
        baseline: manifestWasEmpty && journal.headSeq === 0,
        afterCommit: async () => {
          await manifestStore.flush(journal.headSeq);
          sender?.retrim();
        },
        log,
        clock,
        ...(points.capture === undefined ? {} : { points: { ...points.capture, onPoint: () => sender?.notePoint() } }),
        fileReasons: points.fileReasons,
        senderWaiting: () => sender?.hasSendable() === true,
      });
      sender = new Sender({
        pair: config.pair,
        self: config.self.name,
        generation: nodeState.get().generation,
        history: nodeState.get().history,
        activeEpoch: nodeState.get().activeEpoch,
        splitBrainPolicies: config.failover.afterSplitBrain,
        onKeepPeer: deps.onKeepPeer,
        blockSize: config.blockSize,
        roots: config.protect,
        journal,
        capture,
        manifest: manifestStore.manifest,
        windowBatches: config.channel.windowBatches,
        windowBytes: config.channel.windowBytes,
        bandwidthLimit: config.channel.bandwidthLimit,
        batchBytes: config.journal.batchBytes,
        // The journal is the manifest's write-ahead log: never trim past what the manifest holds.
        trimLimit: () => manifestStore.throughSeq,
        points: points.capture?.ledger,
        log,
        clock,
      });
      if (deps.replicationPaused?.() === true) sender.setPaused(true);
      await capture.start();
      const verifier = new Verifier({
        roots: config.protect,
        blockSize: config.blockSize,
        rateBytesPerSec: config.verify.rate,
        stateDir: config.stateDir,
        generation: nodeState.get().generation,
        capture,
        manifest: manifestStore.manifest,
        headSeq: () => journal.headSeq,
        peer: sender.verifyPeer(),
        log,
        clock,
      });
      // An interrupted verification goes on where it stopped (its cursor is in the state dir).
      await verifier.resumeInterrupted();
      return new ActiveEngine(journal, capture, sender, verifier, clock, points.capture?.marker);
    } catch (err) {
      await journal.close().catch(() => {});
      throw err;
    }
  }

  /**
   * Journals everything capture has seen and waits until capture is idle: after the
   * applications were stopped, this is the last state the passive must have before it takes over.
   */
  async drain(timeoutMs: number): Promise<number> {
    const deadline = this.clock.monotonic() + timeoutMs;
    // The watcher's events are late hints and can be lost (an inotify overflow): a stat scan
    // that begins after the applications stopped finds every change they made.
    await this.capture.scanAll('drain');
    for (;;) {
      await this.capture.whenIdle();
      if (this.capture.status().pendingPaths === 0) break;
      if (this.clock.monotonic() > deadline) throw new Error(`capture still had ${this.capture.status().pendingPaths} paths pending after ${timeoutMs} ms`);
      await this.clock.sleep(20);
    }
    return this.journal.headSeq;
  }

  async stop(): Promise<void> {
    await this.verifier.stop();
    await this.capture.stop();
    this.marker?.close();
    await this.sender.close();
    await this.journal.close();
  }
}

/**
 * Consistency points for the roots that can have them (docs/replication.md): a snapshot store
 * each, the marker and the ledger. Undefined when every root is captured file by file.
 */
function pointsFor(deps: EngineDeps): { capture: Omit<CapturePoints, 'onPoint'> | undefined; fileReasons: Map<string, string> } {
  const { config, log, clock } = deps;
  const plans = planRoots(config.protect);
  refuseUnsupported(plans);
  const bin = findBtrfs();
  const stores = new Map<string, SnapshotStore>();
  const fileReasons = new Map<string, string>();
  for (const p of plans) {
    log.info({ root: p.name, consistency: p.verdict.mode, reason: p.verdict.reason }, p.verdict.mode === 'snapshot' ? 'capture: consistency points for this root' : 'capture: file-level consistency only for this root');
    if (p.verdict.mode !== 'snapshot' || bin === undefined) {
      fileReasons.set(p.name, p.verdict.reason);
      continue;
    }
    stores.set(p.name, new SnapshotStore({ root: p.real, dir: p.pointsDir, btrfs: new Btrfs({ bin, clock }), clock, log }));
  }
  if (stores.size === 0) return { capture: undefined, fileReasons };
  const marker = PointMarker.open(path.join(config.stateDir, 'points', 'marker'), clock, log);
  return { capture: { stores, intervalMs: config.capture.pointInterval, marker, ledger: new PointLedger() }, fileReasons };
}
