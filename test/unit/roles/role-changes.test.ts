// A planned switchover and a failover carried out by the real role controllers and failover
// runners of two nodes joined by an in-memory channel, on one fake clock: the operator's
// request, the drain, the handover, the promotion and the demotion; the active falling silent
// and the passive taking over after the threshold. Roles, scripts and steps are asserted on
// the way. The engines are real (journal, capture, receive log, applier on files in a temporary
// directory); the channel (sockets), the scripts (processes) and the presence probe are the
// seams replaced here.
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FailoverRunner, type PresenceViewSource, type RunnerStep } from '../../../agent/failover/failover-runner.ts';
import { ManifestStore } from '../../../agent/manifest/index.ts';
import type { PeerLink } from '../../../agent/replication/index.ts';
import { RoleController, type RoleChannel, type ScriptName } from '../../../agent/roles/index.ts';
import { MemoryLink } from '../../../agent/session/index.ts';
import type { Message } from '../../../shared/protocol/index.ts';
import { NodeStateStore } from '../../../agent/state/index.ts';
import { FakeClock } from '../../../shared/clock.ts';
import { parseConfig } from '../../../shared/config/index.ts';
import { initHash } from '../../../shared/hash.ts';
import { silentLogger } from '../../../shared/log.ts';

beforeAll(initHash);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** One node's end of the in-memory channel: what RoleController uses of PeerChannel. */
class MemoryChannel extends EventEmitter<{ connection: [conn: PeerLink] }> implements RoleChannel {
  current: MemoryLink | undefined;
  /** A test's hand on what this node sends: true drops the connection instead, with what was in flight. */
  cutBefore: ((m: Message) => boolean) | undefined;
  constructor(private readonly onLost: () => void) {
    super();
  }
  get connection(): PeerLink | undefined {
    return this.current?.open === true ? this.current : undefined;
  }
  reconnect(reason: string): void {
    this.current?.close('normal', reason);
  }
  offer(link: MemoryLink): void {
    this.current = link;
    const send = link.send.bind(link);
    link.send = (m, onWritten) => (this.cutBefore?.(m) === true ? link.cut('cut by the test before a ' + m.t) : send(m, onWritten));
    link.once('close', () => {
      if (this.current === link) this.current = undefined;
      this.onLost();
    });
    this.emit('connection', link);
  }
}

/** Both nodes' channels: a dropped connection is dialed again 200 ms later, as the dialer would. */
class MemoryNetwork {
  readonly alpha = new MemoryChannel(() => this.lost());
  readonly beta = new MemoryChannel(() => this.lost());
  private redial: { cancel(): void } | undefined;
  connections = 0;
  /** No connection can be made (the peer's host is gone). */
  down = false;
  constructor(private readonly clock: FakeClock) {}
  connect(): { atAlpha: MemoryLink; atBeta: MemoryLink } {
    const [atAlpha, atBeta] = MemoryLink.pair(this.clock, 'alpha', 'beta', { delayMs: 1 });
    this.connections += 1;
    this.alpha.offer(atAlpha);
    this.beta.offer(atBeta);
    return { atAlpha, atBeta };
  }
  private lost(): void {
    if (this.down) return;
    this.redial ??= this.clock.setTimeout(() => {
      this.redial = undefined;
      this.connect();
    }, 200);
  }
  stop(): void {
    this.down = true;
    this.redial?.cancel();
    this.alpha.current?.cut();
  }
}

/** The scripts of both nodes: what ran, in order, and who serves (start ran, no stop since). */
class Scripts {
  readonly runs: string[] = [];
  readonly serving = { alpha: false, beta: false };
  bothServed = false;
  for(node: 'alpha' | 'beta') {
    return {
      run: async (name: ScriptName) => {
        this.runs.push(`${node} ${name}`);
        if (name === 'start') this.serving[node] = true;
        if (name === 'stop') this.serving[node] = false;
        if (this.serving.alpha && this.serving.beta) this.bothServed = true;
        return { ok: true, exitCode: 0, timedOut: false };
      },
    };
  }
}

async function startNode(dir: string, name: 'alpha' | 'beta', channel: MemoryChannel, clock: FakeClock, scripts: Scripts, steps: string[], presence?: PresenceViewSource) {
  const base = path.join(dir, name);
  const root = path.join(base, 'data');
  await fsp.mkdir(root, { recursive: true });
  const config = parseConfig(
    {
      pair: 'p1',
      node: name,
      role: name === 'alpha' ? 'active' : 'passive',
      nodes: { alpha: { channel: '127.0.0.1:7001', control: '127.0.0.1:7101' }, beta: { channel: '127.0.0.1:7002', control: '127.0.0.1:7102' } },
      protect: [{ name: 'data', path: root }],
      stateDir: path.join(base, 'state'),
    },
    path.join(base, 'tandem.yaml'),
  );
  const log = silentLogger();
  await fsp.mkdir(config.stateDir, { recursive: true });
  const { store: nodeState } = await NodeStateStore.open(config.stateDir, config.role);
  const manifestStore = await ManifestStore.open({ dir: path.join(config.stateDir, 'manifest'), roots: ['data'], blockSize: config.blockSize, log });
  let runner: FailoverRunner | undefined;
  const controller = new RoleController({
    config, log, clock, manifestStore, nodeState, channel, scripts: scripts.for(name),
    serving: () => runner?.serving ?? false,
    publicState: () => 'ok',
    onTakeover: (epoch) => runner?.input({ kind: 'takeover', now: clock.now(), epoch }),
  });
  await controller.start();
  runner = new FailoverRunner({ config, log, clock, controller, nodeState, publicLink: { view: () => ({ state: 'ok', since: 0, checked: true }) }, presence });
  runner.onStep((s: RunnerStep) => {
    for (const e of s.effects) steps.push(`${name} ${e.kind}`);
  });
  runner.start();
  cleanups.push(async () => {
    await runner.stop();
    await controller.stop();
    await manifestStore.close();
  });
  return { name, root, controller, runner: runner, nodeState };
}

/**
 * Two nodes (alpha active, beta passive) on one fake clock, connected. `presence`: what beta's
 * probe of alpha says. `until` moves fake time in 10 ms steps, a real millisecond for the files
 * between them, until `cond`.
 */
async function startPair(prefix: string, presence?: PresenceViewSource) {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `tandem-${prefix}-${process.pid}-`));
  cleanups.push(() => fsp.rm(dir, { recursive: true, force: true }));
  // Capture compares file times with the clock's wall time: it starts at the real one.
  const clock = new FakeClock(Date.now());
  const net = new MemoryNetwork(clock);
  const scripts = new Scripts();
  const steps: string[] = [];
  const alpha = await startNode(dir, 'alpha', net.alpha, clock, scripts, steps);
  const beta = await startNode(dir, 'beta', net.beta, clock, scripts, steps, presence);
  cleanups.push(async () => net.stop());
  net.connect();
  const until = async (cond: () => boolean, what: string, maxMs = 120_000) => {
    for (let t = 0; t < maxMs && !cond(); t += 10) await clock.advanceAsync(10, () => new Promise((r) => setTimeout(r, 1)));
    if (!cond()) throw new Error(`not within ${maxMs} ms of fake time: ${what} (alpha: ${JSON.stringify(alpha.runner.status())}; beta: ${JSON.stringify(beta.runner.status())}; steps: ${steps.join(', ')}; scripts: ${scripts.runs.join(', ')})`);
  };
  return { clock, net, scripts, steps, alpha, beta, until };
}

describe('switchover over the in-memory channel', () => {
  it('drains, hands over, promotes the passive and demotes the active, one serving at a time', async () => {
    const { clock, net, scripts, steps, alpha, beta, until } = await startPair('switchover');

    await until(() => alpha.runner.serving && alpha.controller.senderStatus()?.inSync === true, 'alpha serves and beta is in sync');
    expect(scripts.runs).toEqual(['alpha start']);
    expect(beta.controller.role).toBe('passive');
    fs.writeFileSync(path.join(alpha.root, 'before.txt'), 'written on alpha before the switchover');
    await until(() => fs.existsSync(path.join(beta.root, 'before.txt')), 'before.txt on beta');

    const refused = alpha.runner.input({ kind: 'operator-switchover', now: clock.now() });
    expect(refused).toBeUndefined();
    expect(alpha.runner.status()).toMatchObject({ phase: 'busy', trigger: 'operator' });
    await until(() => beta.controller.role === 'active' && beta.runner.serving && alpha.controller.role === 'passive' && alpha.runner.status().phase !== 'busy', 'beta active and serving, alpha passive');

    expect(steps).toEqual(['alpha serve', 'alpha switchover', 'beta promote']);
    // alpha's stop ran before beta's start; a promotion checks the application it started.
    expect(scripts.runs).toEqual(['alpha start', 'alpha stop', 'beta start', 'beta check']);
    expect(scripts.bothServed).toBe(false);
    expect({ alpha: alpha.nodeState.get().epoch, beta: beta.nodeState.get().epoch }).toEqual({ alpha: 1, beta: 2 });
    expect(beta.runner.status()).toMatchObject({ serving: true, epoch: 2, reason: 'planned switchover', trigger: 'planned' });
    expect(alpha.runner.status()).toMatchObject({ serving: false });

    // Replication now runs the other way, on a new connection.
    await until(() => beta.controller.senderStatus()?.inSync === true, 'alpha in sync with beta');
    fs.writeFileSync(path.join(beta.root, 'after.txt'), 'written on beta after the switchover');
    await until(() => fs.existsSync(path.join(alpha.root, 'after.txt')), 'after.txt on alpha');
    expect(fs.readFileSync(path.join(alpha.root, 'before.txt'), 'utf8')).toBe('written on alpha before the switchover');
    expect(net.connections).toBeGreaterThanOrEqual(2);
  }, 120_000);

  it('a connection made while the old engine stops is closed before any hello: the peer never sees a role its engine cannot back', async () => {
    const { clock, net, scripts, alpha, beta, until } = await startPair('mid-change');
    await until(() => alpha.runner.serving && alpha.controller.senderStatus()?.inSync === true, 'alpha serves and beta is in sync');
    // A dialer that connects just as alpha's step-down is on record and its active engine
    // still closing (the moment a split brain's handover once waited 30 s in).
    let injected: { atAlpha: MemoryLink; atBeta: MemoryLink } | undefined;
    const update = alpha.nodeState.update.bind(alpha.nodeState);
    alpha.nodeState.update = async (patch) => {
      await update(patch);
      if (patch.role === 'passive' && injected === undefined) injected = net.connect();
    };
    alpha.runner.input({ kind: 'operator-switchover', now: clock.now() });
    await until(() => beta.controller.role === 'active' && beta.runner.serving && alpha.controller.role === 'passive' && alpha.runner.status().phase !== 'busy', 'beta active and serving, alpha passive');
    expect(injected).toBeDefined();
    expect(injected!.atAlpha.closedWith).toMatchObject({ code: 'normal', reason: 'role change in progress', byPeer: false });
    expect(injected!.atBeta.received.map((m) => m.t)).toEqual([]);
    expect(scripts.bothServed).toBe(false);
    // And the pair goes on: replication runs the other way on the connection made afterwards.
    await until(() => beta.controller.senderStatus()?.inSync === true, 'alpha in sync with beta');
    fs.writeFileSync(path.join(beta.root, 'after.txt'), 'written on beta after the switchover');
    await until(() => fs.existsSync(path.join(alpha.root, 'after.txt')), 'after.txt on alpha');
  }, 120_000);

  it('a takeover lost with its connection is sent again on the next one: the handover completes at once, not after its 30 s wait', async () => {
    const { clock, net, scripts, steps, alpha, beta, until } = await startPair('lost-takeover');
    await until(() => alpha.runner.serving && alpha.controller.senderStatus()?.inSync === true, 'alpha serves and beta is in sync');
    let cuts = 0;
    net.alpha.cutBefore = (m) => m.t === 'takeover' && cuts++ === 0;
    alpha.runner.input({ kind: 'operator-switchover', now: clock.now() });
    const askedAt = clock.now();
    await until(() => beta.controller.role === 'active' && beta.runner.serving && alpha.controller.role === 'passive' && alpha.runner.status().phase !== 'busy', 'beta active and serving, alpha passive');
    expect(cuts).toBe(2);
    // Well within the handover's 30 s wait: the copy went out on the connection redialed 200 ms later.
    expect(clock.now() - askedAt).toBeLessThan(10_000);
    expect(steps).toEqual(['alpha serve', 'alpha switchover', 'beta promote']);
    expect(scripts.runs).toEqual(['alpha start', 'alpha stop', 'beta start', 'beta check']);
    expect(scripts.bothServed).toBe(false);
    expect(alpha.runner.status().alarms).toEqual([]);
    expect({ alpha: alpha.nodeState.get().epoch, beta: beta.nodeState.get().epoch }).toEqual({ alpha: 1, beta: 2 });

    // A copy that comes late, once beta took the role: answered as taken, nothing runs again.
    // One for a newer epoch than beta's is refused as before.
    await until(() => net.alpha.current !== undefined && beta.controller.senderStatus()?.inSync === true, 'alpha in sync with beta');
    const link = net.alpha.current!;
    const answers = () => link.received.filter((m) => m.t === 'takeover-result');
    link.send({ t: 'takeover', epoch: 2, headSeq: 0, reason: 'a late copy' });
    await until(() => answers().length === 1, 'the answer to the late copy');
    expect(answers()[0]).toMatchObject({ epoch: 2, ok: true });
    link.send({ t: 'takeover', epoch: 3, headSeq: 0, reason: 'a newer epoch' });
    await until(() => answers().length === 2, 'the answer to a newer epoch');
    expect(answers()[1]).toMatchObject({ epoch: 3, ok: false, error: 'this node is not passive' });
    expect(steps).toEqual(['alpha serve', 'alpha switchover', 'beta promote']);
    expect(beta.controller.role).toBe('active');
    expect(alpha.controller.role).toBe('passive');
  }, 120_000);

  it('promotes the passive once the active fell silent for heartbeat.interval × threshold and its presence says gone, not before', async () => {
    let presence: ReturnType<PresenceViewSource['view']> = { state: 'alive', since: Date.now(), lastAnswer: { role: 'active', epoch: 1, serving: true, receivedAt: Date.now() } };
    const { clock, net, scripts, steps, alpha, beta, until } = await startPair('failover', { view: () => presence });
    await until(() => alpha.runner.serving && alpha.controller.senderStatus()?.inSync === true && beta.controller.receiverStatus()?.inSync === true, 'alpha serves, beta in sync');

    // alpha's host dies: its agent and application with it, the channel drops, its presence refuses.
    await alpha.runner.stop();
    scripts.serving.alpha = false;
    const diedAt = clock.now();
    net.stop();
    presence = { state: 'dead', since: diedAt, lastAnswer: { role: 'active', epoch: 1, serving: true, receivedAt: diedAt } };
    // heartbeat.interval 1 s × threshold 5: nothing happens for 5 s after the last heartbeat.
    await until(() => clock.now() - diedAt >= 4500, '4.5 s');
    expect(beta.controller.heartbeat.observe().up).toBe(false);
    expect(beta.controller.role).toBe('passive');
    expect(steps).toEqual(['alpha serve']);
    await until(() => beta.controller.role === 'active' && beta.runner.serving, 'beta promoted and serving', 20_000);
    expect(clock.now() - diedAt).toBeGreaterThanOrEqual(5000);
    expect(clock.now() - diedAt).toBeLessThan(7000);
    expect(steps).toEqual(['alpha serve', 'beta promote']);
    expect(scripts.runs).toEqual(['alpha start', 'beta start', 'beta check']);
    expect(scripts.bothServed).toBe(false);
    expect(beta.runner.status()).toMatchObject({ serving: true, epoch: 2, trigger: 'automatic' });
    expect(beta.runner.status().reason).toMatch(/^failover: channel down and the active's agent refuses connections \(gone\)/);
  }, 120_000);
});
