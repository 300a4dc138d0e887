// What runs on the passive node: the receive log, the applier and the receiver. Built when the
// node becomes passive; it must never run next to an active engine.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Applier } from '../apply/applier.ts';
import { ReceiveLog } from '../apply/receive-log.ts';
import { Receiver } from '../replication/index.ts';
import { VerifyResponder } from '../verify/index.ts';
import type { EngineDeps } from './engine-deps.ts';

export class PassiveEngine {
  private constructor(
    readonly receiveLog: ReceiveLog,
    readonly applier: Applier,
    readonly receiver: Receiver,
  ) {}

  /**
   * `fresh`: the node was active until now (a demotion): a receive log on disk is from an older
   * time as passive and must not be redone over the current tree; it is discarded.
   */
  static async start(deps: EngineDeps, opts: { fresh?: boolean; continueAfter?: number } = {}): Promise<PassiveEngine> {
    const { config, log, clock, manifestStore, nodeState } = deps;
    const dir = path.join(config.stateDir, 'receive');
    if (opts.fresh === true) await fsp.rm(dir, { recursive: true, force: true });
    const receiveLog = await ReceiveLog.open({ dir, segmentBytes: config.journal.segmentBytes, log });
    // `continueAfter` (with `fresh`): the tree is the state this node journaled up to there as
    // active; the passive holds that much of its own generation, which a new active forked from.
    if (opts.fresh === true && opts.continueAfter !== undefined) await receiveLog.startAfter(opts.continueAfter);
    const applier = new Applier({ roots: config.protect, manifest: manifestStore.manifest, blockSize: config.blockSize, log, clock, owners: config.replication.owners });
    try {
      await applier.init();
      // The responder asks the receiver how far it applied; the receiver is made just below.
      let receiverRef: Receiver | undefined;
      const verify = new VerifyResponder({
        roots: config.protect,
        blockSize: config.blockSize,
        whenApplied: (seq, ms) => receiverRef?.whenApplied(seq, ms) ?? Promise.resolve(false),
        appliedSeq: () => receiverRef?.applied ?? 0,
        owners: config.replication.owners,
        log,
      });
      const receiver = new Receiver({
        pair: config.pair,
        self: config.self.name,
        blockSize: config.blockSize,
        roots: config.protect,
        receiveLog,
        applier,
        manifest: manifestStore.manifest,
        flushManifest: () => manifestStore.flush(),
        nodeState,
        retryMinMs: config.apply.retryMin,
        retryMaxMs: config.apply.retryMax,
        verify,
        owners: config.replication.owners,
        log,
        clock,
      });
      receiverRef = receiver;
      await receiver.recover();
      return new PassiveEngine(receiveLog, applier, receiver);
    } catch (err) {
      await applier.close().catch(() => {});
      await receiveLog.close().catch(() => {});
      throw err;
    }
  }

  /** `keepLink`: see Receiver.close. */
  async stop(opts: { keepLink?: boolean } = {}): Promise<void> {
    await this.receiver.close(opts);
    await this.applier.close();
    await this.receiveLog.close();
  }
}
