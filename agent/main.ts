// The agent: wires the components of one node together and nothing more. Every decision lives
// in a component; this file only builds them in order, connects their ends, and takes them down
// in reverse order on SIGTERM/SIGINT.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { systemClock, type Clock } from '../shared/clock.ts';
import { loadConfig, type TandemConfig } from '../shared/config/index.ts';
import { TandemError } from '../shared/errors.ts';
import { initHash } from '../shared/hash.ts';
import { createLogger, type Logger } from '../shared/log.ts';
import { readPairKey } from '../shared/pair-key.ts';
import { Applier } from './apply/applier.ts';
import { ReceiveLog } from './apply/receive-log.ts';
import { Capture, replayJournalIntoManifest } from './capture/index.ts';
import { ChannelDialer, ChannelServer, channelOptionsFromConfig, type PeerConnection } from './channel/index.ts';
import { ControlServer, buildStatus, type AgentStatus } from './control/index.ts';
import { Journal } from './journal/index.ts';
import { ManifestStore } from './manifest/index.ts';
import { Receiver, Sender } from './replication/index.ts';
import { NodeStateStore, acquireStateLock } from './state/index.ts';

export interface RunningAgent {
  config: TandemConfig;
  log: Logger;
  status(): AgentStatus;
  /** Stops everything in order; resolves when the state is closed cleanly. */
  stop(reason: string): Promise<void>;
}

/** Starts the agent described by `configPath`; resolves once it serves its control API. */
export async function startAgent(configPath: string, clock: Clock = systemClock): Promise<RunningAgent> {
  const config = loadConfig(configPath);
  const log = createLogger({ level: config.log.level, file: config.log.file, base: { node: config.self.name, pair: config.pair } });
  try {
    return await build(config, log, clock);
  } catch (err) {
    const e = TandemError.wrap(err, { code: 'TANDEM_ERR_INTERNAL', op: 'start agent' });
    log.fatal({ err: e, code: e.code }, `agent: cannot start: ${e.message}`);
    throw e;
  }
}

async function build(config: TandemConfig, log: Logger, clock: Clock): Promise<RunningAgent> {
  const key = readPairKey(config.keyFile);
  await initHash();
  await fsp.mkdir(config.stateDir, { recursive: true });
  const releaseLock = acquireStateLock(config.stateDir);
  const cleanups: (() => Promise<void> | void)[] = [releaseLock];
  const startedAt = clock.now();
  try {
    const { store: nodeState, created } = await NodeStateStore.open(config.stateDir, config.role);
    const role = nodeState.get().role;
    log.info({ role, generation: nodeState.get().generation, firstStart: created, config: config.file }, 'agent: starting');

    const manifestStore = await ManifestStore.open({
      dir: path.join(config.stateDir, 'manifest'),
      roots: config.protect.map((r) => r.name),
      blockSize: config.blockSize,
      log,
    });
    cleanups.push(() => manifestStore.close());
    const manifestWasEmpty = manifestStore.manifest.count() === 0;

    const channelOpts = channelOptionsFromConfig(config, key, log, clock);
    const server = new ChannelServer(channelOpts.server);
    let dialer: ChannelDialer | undefined;
    let sender: Sender | undefined;
    let receiver: Receiver | undefined;
    let capture: Capture | undefined;
    const wire = { bytesIn: 0, bytesOut: 0 };
    const countConnection = (conn: PeerConnection) => {
      conn.once('close', () => {
        const s = conn.stats();
        wire.bytesIn += s.bytesIn;
        wire.bytesOut += s.bytesOut;
      });
    };
    const liveStats = () => {
      const conn = server.connection ?? dialer?.connection;
      const s = conn?.stats();
      return { bytesIn: wire.bytesIn + (s?.bytesIn ?? 0), bytesOut: wire.bytesOut + (s?.bytesOut ?? 0) };
    };

    if (role === 'active') {
      const journal = await Journal.open({
        dir: path.join(config.stateDir, 'journal'),
        segmentBytes: config.journal.segmentBytes,
        maxBytes: config.journal.maxBytes,
        generation: nodeState.get().generation,
        log,
        clock,
      });
      cleanups.push(() => journal.close());
      const replayed = await replayJournalIntoManifest(journal, manifestStore.manifest, manifestStore.throughSeq, config.blockSize);
      if (replayed.records > 0) {
        log.info({ ...replayed, fromSeq: manifestStore.throughSeq + 1, headSeq: journal.headSeq }, 'capture: manifest brought up to the journal after an unclean stop');
      }
      await manifestStore.flush(journal.headSeq);
      capture = new Capture({
        roots: config.protect,
        manifest: manifestStore.manifest,
        journal,
        blockSize: config.blockSize,
        batchBytes: config.journal.batchBytes,
        batchDelayMs: config.journal.batchDelay,
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
      });
      const cap = capture;
      cleanups.push(() => cap.stop());
      sender = new Sender({
        pair: config.pair,
        self: config.self.name,
        generation: nodeState.get().generation,
        blockSize: config.blockSize,
        roots: config.protect,
        journal,
        capture,
        manifest: manifestStore.manifest,
        windowBatches: config.channel.windowBatches,
        windowBytes: config.channel.windowBytes,
        batchBytes: config.journal.batchBytes,
        helloTimeoutMs: config.channel.handshakeTimeout,
        // The journal is the manifest's write-ahead log: never trim past what the manifest holds.
        trimLimit: () => manifestStore.throughSeq,
        log,
        clock,
      });
      const snd = sender;
      cleanups.push(() => snd.close());
      server.on('connection', (conn) => {
        countConnection(conn);
        snd.attach(conn);
      });
      // Capture first: a synchronisation is journaled through capture's loop, which must have
      // finished its baseline (where nothing is journaled) before any passive can ask for one.
      await capture.start();
      await server.listen();
      cleanups.push(() => server.close());
    } else {
      const receiveLog = await ReceiveLog.open({ dir: path.join(config.stateDir, 'receive'), segmentBytes: config.journal.segmentBytes, log });
      cleanups.push(() => receiveLog.close());
      const applier = new Applier({ roots: config.protect, manifest: manifestStore.manifest, blockSize: config.blockSize, log, clock });
      await applier.init();
      cleanups.push(() => applier.close());
      receiver = new Receiver({
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
        helloTimeoutMs: config.channel.handshakeTimeout,
        log,
        clock,
      });
      const rcv = receiver;
      cleanups.push(() => rcv.close());
      await receiver.recover();
      // The passive listens too (roles change later) but dials the active: bulk data then flows
      // server to client, which WebSocket does not mask.
      await server.listen();
      cleanups.push(() => server.close());
      dialer = new ChannelDialer(channelOpts.dialer);
      dialer.on('connection', (conn) => {
        countConnection(conn);
        rcv.attach(conn);
      });
      const dl = dialer;
      cleanups.push(() => dl.stop());
      dialer.start();
    }

    const status = (): AgentStatus =>
      buildStatus({
        node: config.self.name,
        pair: config.pair,
        peerName: config.peer.name,
        role,
        generation: nodeState.get().generation,
        sender: sender?.status(),
        receiver: receiver?.status(),
        capture: capture?.status(),
        channel: liveStats(),
        startedAt,
        now: clock.now(),
      });
    const control = new ControlServer({ host: config.self.control.host, port: config.self.control.port, status, log });
    await control.listen();
    cleanups.push(() => control.close());
    log.info({ role, channel: config.self.channel, control: config.self.control }, 'agent: running');

    let stopping: Promise<void> | undefined;
    return {
      config,
      log,
      status,
      stop(reason) {
        stopping ??= (async () => {
          log.info({ reason }, 'agent: stopping');
          await runCleanups(cleanups, log);
          log.info({}, 'agent: stopped');
        })();
        return stopping;
      },
    };
  } catch (err) {
    await runCleanups(cleanups, log);
    throw err;
  }
}

async function runCleanups(cleanups: (() => Promise<void> | void)[], log: Logger): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) {
    try {
      await c();
    } catch (err) {
      log.warn({ err }, 'agent: error while stopping a component');
    }
  }
}

/** `tandem agent -c CONFIG`: runs in the foreground until SIGTERM or SIGINT. */
export async function runAgentForeground(configPath: string): Promise<number> {
  const agent = await startAgent(configPath);
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      void agent.stop(signal).then(() => resolve(0));
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
}
