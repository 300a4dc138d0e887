// What runs on the passive node: the receive log, the applier, the receiver, and standby
// protection (the watch over its own copy, and the read-only roots when asked for). Built when
// the node becomes passive; it must never run next to an active engine.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Applier } from '../apply/applier.ts';
import { ReceiveLog } from '../apply/receive-log.ts';
import { Receiver, type Alarm } from '../replication/index.ts';
import { RootProtection, StandbyWatch } from '../standby/index.ts';
import { VerifyResponder } from '../verify/index.ts';
import type { EngineDeps } from './engine-deps.ts';

export class PassiveEngine {
  private constructor(
    readonly receiveLog: ReceiveLog,
    readonly applier: Applier,
    readonly receiver: Receiver,
    readonly standby: StandbyWatch,
    private readonly protection: RootProtection | undefined,
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
    // A killed agent may have left its roots read-only; with protection asked for, they are
    // made so again, and the applier writes through its private read-write paths.
    await RootProtection.releaseLeftovers(config.stateDir, log);
    const protection = config.replication.protectPassive ? new RootProtection({ stateDir: config.stateDir, roots: config.protect, log, clock }) : undefined;
    const applyRoots = protection === undefined ? config.protect : await protection.protect();
    const applier = new Applier({ roots: applyRoots, manifest: manifestStore.manifest, blockSize: config.blockSize, log, clock, owners: config.replication.owners });
    let standby: StandbyWatch | undefined;
    // The watch and the responder report to the receiver, which is made after them.
    let receiverRef: Receiver | undefined;
    try {
      await applier.init();
      standby = await StandbyWatch.open({
        roots: config.protect,
        manifest: manifestStore.manifest,
        blockSize: config.blockSize,
        stateDir: config.stateDir,
        scanIntervalMs: config.capture.scanInterval,
        rateBytesPerSec: config.verify.rate,
        holdsReplica: () => nodeState.get().generation !== '' && nodeState.get().syncId === '',
        onChange: () => receiverRef?.standbyChanged(),
        log,
        clock,
      });
      const watch = standby;
      // The responder asks the receiver how far it applied; the receiver is made just below.
      const verify = new VerifyResponder({
        roots: config.protect,
        blockSize: config.blockSize,
        whenApplied: (seq, ms) => receiverRef?.whenApplied(seq, ms) ?? Promise.resolve(false),
        appliedSeq: () => receiverRef?.applied ?? 0,
        owners: config.replication.owners,
        modified: (root, rel) => watch.isFlagged(root, rel),
        log,
        clock,
      });
      const receiver = new Receiver({
        pair: config.pair,
        self: config.self.name,
        blockSize: config.blockSize,
        roots: config.protect,
        receiveLog,
        applier: watch.wrap(applier),
        manifest: manifestStore.manifest,
        flushManifest: (deltas) => (deltas === undefined ? manifestStore.flush() : manifestStore.writeDeltas(deltas)),
        takeManifestDeltas: () => manifestStore.takeDeltas(),
        compactManifest: () => manifestStore.compact(),
        nodeState,
        retryMinMs: config.apply.retryMin,
        retryMaxMs: config.apply.retryMax,
        window: { batches: config.channel.windowBatches, bytes: config.channel.windowBytes },
        verify,
        standby: {
          alarms: () => [watch.alarm(), protection?.alarm()].filter((a): a is Alarm => a !== undefined),
          modified: () => watch.isModified,
        },
        owners: config.replication.owners,
        log,
        clock,
      });
      receiverRef = receiver;
      // Batches held at start-up are applied again first: until then the disk may be ahead of
      // the manifest, and the watch would take the applier's own writes for someone else's.
      const heldUpTo = receiveLog.receivedSeq;
      await receiver.recover();
      watch.start(untilApplied(receiver, heldUpTo));
      return new PassiveEngine(receiveLog, applier, receiver, watch, protection);
    } catch (err) {
      await standby?.stop().catch(() => {});
      await applier.close().catch(() => {});
      await receiveLog.close().catch(() => {});
      await protection?.release().catch(() => {});
      throw err;
    }
  }

  /**
   * `keepLink`: see Receiver.close. `promoting`: this node takes over, and its copy (changed
   * paths and all) becomes the active's data; the roots are writable again when this returns.
   */
  async stop(opts: { keepLink?: boolean; promoting?: boolean } = {}): Promise<void> {
    await this.receiver.close(opts);
    await this.applier.close();
    await this.receiveLog.close();
    await this.standby.stop({ promoting: opts.promoting === true });
    // Logged where it fails; a promotion goes on (its start script then says what it cannot do).
    await this.protection?.release().catch(() => undefined);
  }
}

/** Resolves once the receiver applied up to `seq` (or is closed). */
async function untilApplied(receiver: Receiver, seq: number): Promise<void> {
  while (!receiver.isClosed && !(await receiver.whenApplied(seq, 5000)));
}
