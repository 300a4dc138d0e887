// The agent: wires the components of one node together and nothing more. Every decision lives
// in a component (the failover decision, the role controller, the sessions); this file only
// builds them in order, connects their ends, and takes them down in reverse order on
// SIGTERM/SIGINT.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { systemClock, type Clock } from '../shared/clock.ts';
import { checkConfigFiles, loadConfig, type TandemConfig } from '../shared/config/index.ts';
import { PRIVATE_DIR_MODE, PRIVATE_UMASK } from '../shared/constants.ts';
import { TandemError } from '../shared/errors.ts';
import { initHash } from '../shared/hash.ts';
import { createLogger, type Logger } from '../shared/log.ts';
import { readPairKey } from '../shared/pair-key.ts';
import { TANDEM_VERSION, ownProtocol } from '../shared/version.ts';
import { PeerChannel, channelOptionsFromConfig } from './channel/index.ts';
import { ControlAuth, ControlServer, PeerRelay, StatusHistory, buildStatus, builtInDashboard, type AgentStatus } from './control/index.ts';
import { AlertHooks, EVENTS_FILE, EventHistory, MeteredScripts, StateTracker, renderTandemMetrics, type EventDraft } from './events/index.ts';
import { FailoverRunner } from './failover/index.ts';
import { tuneHeap } from './heap-tuning.ts';
import { DrainMeter, OperatorActions, OperatorSettingsStore, switchoverReadiness } from './operator/index.ts';
import { ioCounters } from '../shared/io-counters.ts';
import { PresenceProber, PresenceServer, PublicChecker } from './links/index.ts';
import { ManifestStore } from './manifest/index.ts';
import { RoleController } from './roles/index.ts';
import { planRoots, refuseUnsupported } from './points/index.ts';
import { AppMonitor, ScriptRunner } from './scripts/index.ts';
import type { Verifier } from './verify/index.ts';
import { NodeStateStore, acquireStateLock, tightenPrivateState } from './state/index.ts';
import { UserDb, useAclNames } from './tree/index.ts';

export interface RunningAgent {
  config: TandemConfig;
  log: Logger;
  /** The status document, through the state tracker (every change it shows is an event). */
  status(): AgentStatus;
  /** Stops everything in order; resolves when the state is closed cleanly. */
  stop(reason: string): Promise<void>;
}

/** The umask this process was started with, before the agent made its own private. */
let inheritedUmask: number | undefined;

/** Starts the agent described by `configPath`; resolves once it serves its control API. */
export async function startAgent(configPath: string, clock: Clock = systemClock): Promise<RunningAgent> {
  const config = loadConfig(configPath);
  checkConfigFiles(config);
  // Everything the agent creates from here on is its user's alone (state, journal, log); its
  // scripts get the mask it was started with (ScriptRunner's umask).
  inheritedUmask ??= process.umask(PRIVATE_UMASK);
  const log = createLogger({ level: config.log.level, file: config.log.file, base: { node: config.self.name, pair: config.pair } });
  try {
    return await build(config, log, clock, inheritedUmask);
  } catch (err) {
    const e = TandemError.wrap(err, { code: 'TANDEM_ERR_INTERNAL', op: 'start agent' });
    log.fatal({ err: e, code: e.code }, `agent: cannot start: ${e.message}`);
    throw e;
  }
}

async function build(config: TandemConfig, log: Logger, clock: Clock, childUmask: number): Promise<RunningAgent> {
  const key = readPairKey(config.keyFile);
  // A root set to consistency: snapshot that cannot have points stops the agent here, whatever
  // its role: better now than at a takeover (docs/replication.md).
  refuseUnsupported(planRoots(config.protect));
  const protocol = ownProtocol();
  await initHash();
  await fsp.mkdir(config.stateDir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const releaseLock = acquireStateLock(config.stateDir);
  const cleanups: (() => Promise<void> | void)[] = [releaseLock];
  const startedAt = clock.now();
  try {
    const tightened = tightenPrivateState(config.stateDir, config.log.file);
    if (tightened.fixed.length > 0) {
      log.warn(
        { stateDir: config.stateDir, fixed: tightened.fixed.length, paths: tightened.fixed.slice(0, 20).map((f) => `${f.path} ${f.from.toString(8)}->${f.to.toString(8)}`) },
        'state: tightened modes left open by an earlier install (directories 0700, files 0600)',
      );
    }
    if (tightened.skipped.length > 0) log.warn({ stateDir: config.stateDir, skipped: tightened.skipped.slice(0, 20) }, 'state: left alone entries that are not plain files or directories');
    const { store: nodeState, created } = await NodeStateStore.open(config.stateDir, config.role);
    const s0 = nodeState.get();
    log.info({ role: s0.role, epoch: s0.epoch, generation: s0.generation, firstStart: created, config: config.file, version: TANDEM_VERSION, protocol: protocol.max }, 'agent: starting');
    const operator = await OperatorSettingsStore.open(config.stateDir);
    const history = EventHistory.open({ file: path.join(config.stateDir, EVENTS_FILE), keep: config.events.keep, clock, log });
    cleanups.push(() => history.close());
    // The tracker is made once everything it reads exists; events before that have no reader.
    let tracker: StateTracker | undefined;
    const emit = (d: EventDraft) => void tracker?.report(d);

    // With owners by name, ACLs are sent with the names of their ids and compared by name (tree/acl-names.ts).
    useAclNames(config.replication.owners === 'names' ? new UserDb(clock) : undefined);
    const manifestStore = await ManifestStore.open({
      dir: path.join(config.stateDir, 'manifest'),
      roots: config.protect.map((r) => r.name),
      blockSize: config.blockSize,
      log,
    });
    cleanups.push(() => manifestStore.close());

    const channel = new PeerChannel({ ...channelOptionsFromConfig(config, key, log, clock), log });
    const wire = { bytesIn: 0, bytesOut: 0 };
    channel.on('connection', (conn) => {
      conn.once('close', () => {
        const st = conn.stats();
        wire.bytesIn += st.bytesIn;
        wire.bytesOut += st.bytesOut;
      });
    });
    const liveStats = () => {
      const st = channel.connection?.stats();
      return { bytesIn: wire.bytesIn + (st?.bytesIn ?? 0), bytesOut: wire.bytesOut + (st?.bytesOut ?? 0) };
    };

    const publicChecker = new PublicChecker({ targets: config.links.public.targets, intervalMs: config.links.public.intervalMs, threshold: config.links.public.threshold, clock, log });
    const scripts = new MeteredScripts(
      new ScriptRunner({
        paths: { start: config.scripts.start, stop: config.scripts.stop, check: config.scripts.check, fence: config.scripts.fence },
        timeoutMs: config.scripts.timeoutMs,
        checkTimeoutMs: config.scripts.checkTimeoutMs,
        env: { node: config.self.name, peer: config.peer.name, pair: config.pair },
        umask: childUmask,
        log,
        clock,
      }),
      emit,
    );
    // The runner is made last (it reads everything else); the closures below ask it late.
    let runner: FailoverRunner | undefined;
    const serving = () => runner?.serving ?? false;
    const controller = new RoleController({
      config,
      log,
      clock,
      manifestStore,
      nodeState,
      channel,
      scripts,
      serving,
      publicState: () => publicChecker.view().state,
      onTakeover: (epoch) => runner?.input({ kind: 'takeover', now: clock.now(), epoch }),
      onKeepPeer: (reason) => runner?.input({ kind: 'keep-peer', now: clock.now(), reason, operator: false }),
      // A pause is the active's: kept on disk, applied to every active engine this node builds.
      replicationPaused: () => operator.get().paused.on,
      protocol,
    });
    await controller.start();
    cleanups.push(() => controller.stop());

    const presenceServer =
      config.self.public === undefined
        ? undefined
        : new PresenceServer({
            host: config.self.public.host,
            port: config.self.public.port,
            pair: config.pair,
            self: config.self.name,
            key,
            describe: () => ({ node: config.self.name, role: controller.role, epoch: controller.epoch, serving: serving(), publicState: publicChecker.view().state, at: clock.now() }),
            log,
          });
    const presenceProber =
      config.peer.public === undefined
        ? undefined
        : new PresenceProber({
            host: config.peer.public.host,
            port: config.peer.public.port,
            pair: config.pair,
            peer: config.peer.name,
            self: config.self.name,
            key,
            intervalMs: config.links.presence.intervalMs,
            timeoutMs: config.links.presence.timeoutMs,
            clock,
            log,
          });
    if (presenceProber === undefined) log.warn({ key: `nodes.${config.peer.name}.public` }, 'failover: the peer has no presence address: this node cannot tell whether it is gone and will not take over automatically');
    const monitor = new AppMonitor({
      runner: scripts,
      intervalMs: config.scripts.checkIntervalMs,
      maxRestarts: config.scripts.maxRestarts,
      restartWindowMs: config.scripts.restartWindowMs,
      context: () => ({ role: controller.role, reason: 'application check', generation: nodeState.get().generation }),
      onSwitchover: (reason) => runner?.input({ kind: 'app-failed', now: clock.now(), reason }),
      clock,
      log,
    });
    monitor.on('state', (c) => emit({ kind: 'application', from: c.from, to: c.to, reason: c.reason, trigger: 'automatic' }));
    const fence =
      config.scripts.fence === undefined
        ? undefined
        : async (reason: string) => {
            const r = await scripts.run('fence', { role: 'passive', reason, generation: nodeState.get().generation });
            return r.ok ? { ok: true } : { ok: false, error: r.error ?? (r.timedOut ? 'timed out' : `exit code ${r.exitCode ?? r.signal}`) };
          };
    runner = new FailoverRunner({ config, log, clock, controller, nodeState, publicLink: publicChecker, presence: presenceProber, monitor, maintenance: operator.get().maintenance.on, fence });

    await channel.start();
    cleanups.push(() => channel.close());
    publicChecker.start();
    cleanups.push(() => publicChecker.stop());
    if (presenceServer !== undefined) {
      await presenceServer.listen();
      cleanups.push(() => presenceServer.close());
    }
    presenceProber?.start();
    if (presenceProber !== undefined) cleanups.push(() => presenceProber.stop());
    const failover = runner;

    const build = (): AgentStatus => {
      const hb = controller.heartbeat.observe();
      return buildStatus({
        node: config.self.name,
        pair: config.pair,
        peerName: config.peer.name,
        role: controller.role,
        generation: nodeState.get().generation,
        sender: controller.senderStatus(),
        receiver: controller.receiverStatus(),
        capture: controller.active?.capture.status(),
        failover: failover.status(),
        peer: hb.peer,
        heartbeat: { lastHeardAt: hb.lastHeardAt, longestGapMs: hb.longestGapMs, rttMs: hb.rttMs, delayMs: hb.delayMs },
        channel: liveStats(),
        verify: controller.active?.verifier.summary(),
        inSyncBoundMs: config.failover.maxLagOnFailover,
        lagAtContactMs: controller.passive?.receiver.lagAtLastContact(hb.delayMs),
        consistency: controller.consistency(),
        discarded: controller.lastDiscard === undefined ? undefined : { ...controller.lastDiscard, pointAt: controller.lastDiscard.pointAt ?? null },
        version: { tandem: TANDEM_VERSION, protocol: protocol.max },
        peerVersion: controller.peerVersion,
        roots: config.protect.map((r) => ({ name: r.name, path: r.path, ...manifestStore.manifest.rootStats(r.name) })),
        startedAt,
        now: clock.now(),
      });
    };
    const states = new StateTracker({
      node: config.self.name,
      peer: config.peer.name,
      history,
      build,
      lagBoundMs: config.alerts.lagOverMs,
      operatorReason: () => {
        const o = operator.get();
        return { maintenance: o.maintenance.reason === '' ? undefined : o.maintenance.reason, paused: o.paused.reason === '' ? undefined : o.paused.reason };
      },
      clock,
      log,
    });
    tracker = states;
    const status = () => states.refresh();
    const drainMeter = new DrainMeter();
    failover.onStep((step) => {
      states.onStep(step);
      drainMeter.sample(clock.monotonic(), controller.senderStatus()?.ackedSeq ?? 0);
    });
    const alerts = new AlertHooks({ holdLinkDownMs: config.heartbeat.intervalMs * config.heartbeat.threshold, command: config.alerts.command, webhook: config.alerts.webhook, kinds: config.alerts.events, timeoutMs: config.alerts.timeoutMs, retries: config.alerts.retries, pair: config.pair, clock, log });
    cleanups.push(() => alerts.stop());
    const auth = new ControlAuth(key, operator.get().tokenSalt, clock);
    const actions = new OperatorActions({
      settings: operator,
      sender: () => controller.active?.sender,
      failover,
      role: () => controller.role,
      rotate: (salt) => auth.rotate(salt),
      emit: (d) => states.emit(d),
      refresh: () => void status(),
      clock,
    });
    states.subscribe((e) => {
      alerts.offer(e);
      actions.onEvent(e);
    });
    const first = status();
    states.emit({ kind: 'agent', from: 'stopped', to: 'running', reason: 'agent started', trigger: 'automatic', details: { pid: process.pid, role: first.role, state: first.state, maintenance: first.maintenance, paused: first.replication.paused, consistency: first.replication.consistency } });
    failover.start();
    cleanups.push(() => failover.stop());

    // The console: the last hour of figures, and the peer's API reached through this one.
    const figures = new StatusHistory({ status, clock });
    figures.start();
    cleanups.push(() => figures.stop());
    const peerRelay = new PeerRelay({ self: config.self.name, peer: config.peer.name, host: config.peer.control.host, port: config.peer.control.port, key, salt: () => auth.salt, clock, log });
    const readiness = (force: boolean) =>
      switchoverReadiness(status(), { force, boundMs: config.failover.maxLagOnFailover, recordsPerSecond: drainMeter.recordsPerSecond(), settleMs: config.capture.settle });
    const control: ControlServer = new ControlServer({
      host: config.self.control.host,
      port: config.self.control.port,
      allowHosts: config.control.allowHosts,
      status,
      auth,
      events: history,
      metrics: () =>
        renderTandemMetrics({
          status: status(),
          events: states.counts,
          roleChanges: states.roleChanges,
          actions: states.actions,
          recordsReplicated: states.recordsReplicated,
          scripts: scripts.stats,
          alerts: alerts.stats,
          controlRefusals: control.guard.refusals,
          fsyncs: ioCounters.fsyncs,
        }),
      switchover: async ({ force }) => {
        const plan = readiness(force);
        if (!plan.ready) return { ok: false, code: 'TANDEM_ERR_SWITCHOVER_REFUSED', message: plan.refusal ?? 'not ready', hint: plan.hint };
        const r = await requestSwitchover(failover, controller, clock);
        return r.ok ? r : { ...r, code: 'TANDEM_ERR_SWITCHOVER_FAILED' };
      },
      switchoverPlan: ({ force }) => readiness(force),
      resolve: (keep) => requestResolve(keep, config.self.name, config.peer.name, failover, controller, clock),
      failover: () => actions.forceFailover(),
      pause: (paused, reason) => actions.pause(paused, reason),
      maintenance: (on, reason) => actions.maintenance(on, reason),
      rotateToken: (salt) => actions.rotateToken(salt),
      dashboard: builtInDashboard(),
      history: figures,
      peer: peerRelay,
      verify: {
        start: (repair) => activeVerifier(controller, 'start verify').start(repair),
        report: () => {
          const v = activeVerifier(controller, 'report verify');
          const r = v.report();
          return r === undefined ? undefined : { ...r, summary: v.summary() };
        },
      },
      clock,
      log,
    });
    await control.listen();
    cleanups.push(() => control.close());
    log.info({ role: controller.role, channel: config.self.channel, control: config.self.control }, 'agent: running');

    let stopping: Promise<void> | undefined;
    return {
      config,
      log,
      status,
      stop(reason) {
        stopping ??= (async () => {
          log.info({ reason }, 'agent: stopping');
          states.emit({ kind: 'agent', from: 'running', to: 'stopped', reason: `agent stopping (${reason})`, trigger: 'automatic', details: { pid: process.pid } });
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

/**
 * An operator's switchover, on the active node: feeds it to the decision and waits until the
 * role moved (or the switchover was rolled back).
 */
async function requestSwitchover(failover: FailoverRunner, controller: RoleController, clock: Clock): Promise<{ ok: boolean; message: string }> {
  if (controller.role !== 'active') return { ok: false, message: 'this node is not active; ask the active node' };
  failover.input({ kind: 'operator-switchover', now: clock.now() });
  const r = await waitHandedOver(failover, controller, clock, ['TANDEM_ERR_SWITCHOVER_FAILED']);
  if (r.moved) return { ok: true, message: 'the peer is active now' };
  return { ok: false, message: r.timedOut === true ? 'the switchover did not finish within 120 s' : (r.alarm ?? 'the switchover did not happen') };
}

/**
 * After a handover was fed to the decision, waits until it ends: moved once this node is
 * passive; otherwise the first alarm of `codes` says why not (or it timed out after 120 s).
 */
async function waitHandedOver(failover: FailoverRunner, controller: RoleController, clock: Clock, codes: string[]): Promise<{ moved: boolean; timedOut?: boolean; alarm?: string | undefined }> {
  const deadline = clock.monotonic() + 120_000;
  while (clock.monotonic() < deadline) {
    await clock.sleep(50);
    const st = failover.status();
    if (st.phase === 'busy') continue;
    if ((controller.role as string) === 'passive') return { moved: true };
    return { moved: false, alarm: st.alarms.find((a) => codes.includes(a.code))?.message };
  }
  return { moved: false, timedOut: true };
}

/**
 * tandem resolve --keep NODE, on the active node while a split brain holds replication: keep
 * this node (the passive is synchronised over its changes) or the peer (hand the role over
 * undrained; this node then has its changes overwritten). Waits for the role change only.
 */
async function requestResolve(keep: string, self: string, peer: string, failover: FailoverRunner, controller: RoleController, clock: Clock): Promise<{ ok: boolean; message: string; code?: string }> {
  const refused = (message: string) => ({ ok: false, message, code: 'TANDEM_ERR_RESOLVE_REFUSED' });
  if (keep !== self && keep !== peer) return refused(`--keep ${keep}: the pair's nodes are ${self} and ${peer}`);
  const active = controller.active;
  if (active === undefined) return refused('this node is not active; ask the active node');
  const sb = active.sender.status().splitBrain;
  if (sb === undefined) return refused('no split brain holds replication on this node (status: replication.splitBrain)');
  if (keep === self) {
    if (!active.sender.resolveKeepSelf()) return refused('the passive disconnected; try again once the channel is back');
    return { ok: true, message: `keeping ${self}: ${peer}'s ${sb.passiveChanges} records since the split are being overwritten by a synchronisation` };
  }
  failover.input({ kind: 'keep-peer', now: clock.now(), reason: `keeping ${peer}`, operator: true });
  const r = await waitHandedOver(failover, controller, clock, ['TANDEM_ERR_SWITCHOVER_FAILED', 'TANDEM_ERR_FAILOVER_REFUSED']);
  if (r.moved) return { ok: true, message: `keeping ${peer}: it is active now, and this node's ${sb.activeChanges} records since the split are being overwritten` };
  return { ok: false, message: r.timedOut === true ? 'the handover did not finish within 120 s' : (r.alarm ?? `${peer} did not take over`), code: 'TANDEM_ERR_SWITCHOVER_FAILED' };
}

/** The verifier of the active engine; refused on a passive node (the CLI then asks the peer). */
function activeVerifier(controller: RoleController, op: string): Verifier {
  const v = controller.active?.verifier;
  if (v === undefined) {
    throw new TandemError({ code: 'TANDEM_ERR_VERIFY_REFUSED', op, reason: 'this node is not active; ask the active node', hint: 'tandem verify -c CONFIG asks the peer by itself' });
  }
  return v;
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
  // The agent's own process only: tests and the installer that start an agent in theirs keep
  // their heap settings.
  tuneHeap();
  const agent = await startAgent(configPath);
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      void agent.stop(signal).then(() => resolve(0));
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
}
