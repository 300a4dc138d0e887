// Presence over real sockets on the loopback: a real server and prober, a process that is
// stopped and killed, listeners that accept and never answer, and answers that do not prove
// themselves. Judged by the prober's states and by what it logged.
import { type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { PresenceProber, PresenceServer, probePresence, type PresenceAnswer, type PresenceProberOptions, type PresenceServerOptions, type PresenceState } from '../../../agent/links/index.ts';
import { exited, spawnTracked, TEST_MARKER } from '../../helpers/processes.ts';
import { systemClock } from '../../../shared/clock.ts';
import { captureLog, waitFor, type LogCapture } from '../channel/log-capture.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'presence-child.ts');
const PAIR = 'web';
const SELF = 'alpha';
const PEER = 'beta';
const KEY = crypto.randomBytes(32);
const INTERVAL_MS = 100;
const TIMEOUT_MS = 300;

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function answerOf(node: string): PresenceAnswer {
  return { node, role: 'active', epoch: 7, serving: true, publicState: 'ok', at: Date.now() };
}

async function startServer(over: Partial<PresenceServerOptions> = {}) {
  const logs = captureLog();
  const self = over.self ?? PEER;
  const server = new PresenceServer({ host: '127.0.0.1', port: 0, pair: PAIR, self, key: KEY, describe: () => answerOf(self), log: logs.log, ...over });
  const { port } = await server.listen();
  cleanups.push(() => server.close());
  return { server, port, logs };
}

interface Probed {
  prober: PresenceProber;
  logs: LogCapture;
  /** Every state the prober went through, in order. */
  states: PresenceState[];
  until(state: PresenceState, timeoutMs?: number): Promise<void>;
}

function startProber(port: number | undefined, over: Partial<PresenceProberOptions> = {}): Probed {
  const logs = captureLog();
  const prober = new PresenceProber({ host: '127.0.0.1', port, pair: PAIR, peer: PEER, self: SELF, key: KEY, intervalMs: INTERVAL_MS, timeoutMs: TIMEOUT_MS, log: logs.log, ...over });
  const states: PresenceState[] = [];
  prober.onChange((v) => states.push(v.state));
  prober.start();
  cleanups.push(() => prober.stop());
  const until = async (state: PresenceState, timeoutMs = 5_000) => {
    await waitFor(() => (prober.view().state === state ? true : undefined), timeoutMs, `presence state ${state} (now ${prober.view().state})`);
  };
  return { prober, logs, states, until };
}

/** A port on which nothing listens: bound, read back, closed. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

/** A presence server in a child process, to be stopped and killed; killed with SIGKILL after the test. */
async function startChild(backlog?: number): Promise<{ child: ChildProcess; port: number }> {
  const child = spawnTracked(process.execPath, [`--title=${TEST_MARKER}`, '--import', 'tsx', CHILD, PAIR, PEER, ...(backlog === undefined ? [] : [String(backlog)])], {
    cwd: REPO,
    env: { ...process.env, TANDEM_TEST_PAIR_KEY: KEY.toString('hex') },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // SIGKILL, not SIGTERM: a stopped process does not act on SIGTERM until it is continued.
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited(child);
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    child.once('exit', (code) => reject(new Error(`the presence child exited with ${code} before listening`)));
  });
  return { child, port };
}

/** A listener that accepts and never answers; it reads (so it sees each close) and counts open connections. */
async function startSilent(): Promise<{ port: number; accepted: () => number; open: () => number }> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const silent = net.createServer((s) => {
    accepted += 1;
    sockets.add(s);
    s.resume();
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
  cleanups.push(
    () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        silent.close(r);
      }),
  );
  return { port: (silent.address() as AddressInfo).port, accepted: () => accepted, open: () => sockets.size };
}

describe('presence', () => {
  it('finds a live peer alive and keeps its signed answer', async () => {
    const { port } = await startServer();
    const p = startProber(port);
    await p.until('alive');
    const v = p.prober.view();
    expect(v.lastAnswer).toMatchObject({ node: PEER, role: 'active', epoch: 7, serving: true, publicState: 'ok', receivedAt: expect.any(Number) });
    await waitFor(() => (p.prober.view().consecutive >= 3 ? true : undefined));
    expect(p.states).toEqual(['alive']);
    const line = await p.logs.waitFor((l) => l.msg === 'presence: the peer agent answers');
    expect(line).toMatchObject({ level: 'info', component: 'links', peer: PEER, from: 'unknown', to: 'alive', role: 'active', epoch: 7 });
    expect(p.logs.lines()).toHaveLength(1);
  });

  it('finds a peer whose server closed dead: the connection is refused', async () => {
    const { server, port } = await startServer();
    const p = startProber(port);
    await p.until('alive');
    await server.close();
    await p.until('dead');
    expect(p.prober.view().error).toMatch(/connection refused/);
    expect(p.prober.view().lastAnswer?.node).toBe(PEER);
    expect(p.states).toEqual(['alive', 'dead']);
    expect(await p.logs.waitFor((l) => l.to === 'dead')).toMatchObject({ level: 'warn', msg: 'presence: the peer host is up but its agent is gone' });
  });

  it('finds a port where no agent listens dead from the first probe', async () => {
    const p = startProber(await closedPort());
    await p.until('dead');
    expect(p.prober.view().lastAnswer).toBeUndefined();
    expect(p.prober.view().error).toMatch(/^connection refused/);
    expect(p.states).toEqual(['dead']);
  });

  it('finds a listener that accepts and never answers stalled, never dead or unreachable', async () => {
    const silent = await startSilent();
    // Record when each probe opens and closes its socket, to see that probes never overlap
    // even though each takes longer (300 ms) than the interval (100 ms).
    const events: string[] = [];
    const p = startProber(silent.port, {
      connect: (to) => {
        const socket = net.connect(to);
        events.push('open');
        const destroy = socket.destroy.bind(socket);
        let closed = false;
        socket.destroy = (err?: Error) => {
          if (!closed) events.push('close');
          closed = true;
          return destroy(err);
        };
        return socket;
      },
    });
    await p.until('stalled');
    await waitFor(() => (p.prober.view().consecutive >= 3 ? true : undefined));
    await p.prober.stop();
    expect(p.states).toEqual(['stalled']);
    expect(p.prober.view().error).toMatch(/no answer within 300 ms/);
    expect(events.length).toBeGreaterThanOrEqual(6);
    expect(events).toEqual(events.map((_e, i) => (i % 2 === 0 ? 'open' : 'close')));
    // The last probe may have been stopped before the listener accepted it.
    expect(silent.accepted()).toBeGreaterThanOrEqual(events.length / 2 - 1);
  });

  it('finds a silent listener stalled even when the prober was too busy to look before its timeout', async () => {
    // A passive starved of CPU runs its late timer before the I/O that became ready meanwhile:
    // the connect completed long ago, but the timer said "no connection", unreachable, which
    // counts as gone (a stopped active was taken over once, on a loaded machine).
    const silent = await startSilent();
    for (let i = 0; i < 3; i++) {
      const probe = probePresence({ host: '127.0.0.1', port: silent.port, pair: PAIR, peer: PEER, self: SELF, presenceKey: KEY, timeoutMs: 50, clock: systemClock }, new AbortController().signal);
      // This thread blocked 300 ms right after the connect began: the kernel completes it meanwhile.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
      const r = await probe;
      expect(r.verdict, r.error).toBe('stalled');
    }
  });

  it('tells a stopped agent (stalled) from a killed one (dead), and sees a continued one alive again', async () => {
    const { child, port } = await startChild();
    const p = startProber(port);
    await p.until('alive');
    const pid = p.prober.view().lastAnswer?.pid;
    expect(pid).toBe(child.pid);

    child.kill('SIGSTOP');
    await p.until('stalled');
    await waitFor(() => (p.prober.view().consecutive >= 3 ? true : undefined));
    child.kill('SIGCONT');
    await p.until('alive');

    child.kill('SIGSTOP');
    await p.until('stalled');
    child.kill('SIGKILL');
    await p.until('dead');
    expect(p.states).toEqual(['alive', 'stalled', 'alive', 'stalled', 'dead']);
    expect(p.logs.lines().map((l) => l.to)).toEqual(['alive', 'stalled', 'alive', 'stalled', 'dead']);
  });

  it('sees a stopped agent as unreachable once its listen backlog is full: the limit of what TCP can tell', async () => {
    // With a backlog of 1 the kernel queues two connections; the probes after that get no
    // SYN-ACK. Agents listen with a backlog of 4096 so this takes over an hour, not 3 probes.
    const { child, port } = await startChild(1);
    const p = startProber(port);
    await p.until('alive');
    child.kill('SIGSTOP');
    await p.until('unreachable');
    expect(p.states).toEqual(['alive', 'stalled', 'unreachable']);
  });

  it('finds an address whose connect never completes unreachable', async () => {
    let opened = 0;
    const p = startProber(9, {
      connect: () => {
        opened += 1;
        // A socket that is never connected: what a blackholed SYN looks like from here.
        return new net.Socket();
      },
    });
    await p.until('unreachable');
    expect(p.prober.view().error).toMatch(/no connection within 300 ms/);
    expect(opened).toBeGreaterThanOrEqual(1);
    expect(p.logs.lines().map((l) => [l.level, l.msg])).toEqual([['warn', 'presence: the peer host cannot be reached']]);
  });

  it('finds a peer with another pair key invalid and logs TANDEM_ERR_AUTH_FAILED once', async () => {
    const { port } = await startServer({ key: crypto.randomBytes(32) });
    const p = startProber(port);
    await p.until('invalid');
    await waitFor(() => (p.prober.view().consecutive >= 4 ? true : undefined));
    const failed = p.logs.withCode('TANDEM_ERR_AUTH_FAILED');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ level: 'error', to: 'invalid', err: { code: 'TANDEM_ERR_AUTH_FAILED', hint: expect.stringContaining('same pair key') } });
    expect(p.prober.view().lastAnswer).toBeUndefined();
    expect(p.logs.text()).not.toContain(KEY.toString('hex'));
  });

  it('finds another node holding the key invalid (TANDEM_ERR_PEER_UNEXPECTED)', async () => {
    const { port } = await startServer({ self: 'gamma' });
    const p = startProber(port);
    await p.until('invalid');
    expect(p.logs.withCode('TANDEM_ERR_PEER_UNEXPECTED')).toHaveLength(1);
    expect(p.prober.view().error).toContain('"gamma"');
  });

  it('refuses an answer recorded for another nonce', async () => {
    const { port } = await startServer();
    const recorded = await (await fetch(`http://127.0.0.1:${port}/presence?nonce=${'ab'.repeat(16)}&from=${SELF}`)).text();
    const replayer = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(recorded) }).end(recorded));
    await new Promise<void>((r) => replayer.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise((r) => { replayer.closeAllConnections(); replayer.close(r); }));
    const p = startProber((replayer.address() as AddressInfo).port);
    await p.until('invalid');
    expect(p.logs.withCode('TANDEM_ERR_AUTH_FAILED')).toHaveLength(1);
  });

  it('finds some other HTTP service on the address invalid, not alive', async () => {
    const other = http.createServer((_req, res) => res.writeHead(200, { 'content-length': 18 }).end('<html>hello</html>'));
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise((r) => { other.closeAllConnections(); other.close(r); }));
    const p = startProber((other.address() as AddressInfo).port);
    await p.until('invalid');
    expect(p.logs.withCode('TANDEM_ERR_PROTOCOL')).toHaveLength(1);
    expect(p.prober.view().error).toBe('the answer is not JSON');
  });

  it('is unconfigured, probes nothing and says so once, when the peer has no public address', async () => {
    const p = startProber(undefined, { host: undefined });
    p.prober.start();
    await new Promise((r) => setTimeout(r, 3 * INTERVAL_MS));
    expect(p.prober.view()).toMatchObject({ state: 'unconfigured', consecutive: 0 });
    expect(p.logs.lines().map((l) => l.level)).toEqual(['warn']);
  });

  it('answers 404 to anything but GET /presence with a hex nonce and a node name', async () => {
    const { port } = await startServer();
    const base = `http://127.0.0.1:${port}`;
    const nonce = 'cd'.repeat(16);
    const status = async (p: string, init?: RequestInit) => (await fetch(`${base}${p}`, init)).status;
    expect(await status(`/presence?nonce=${nonce}&from=${SELF}`)).toBe(200);
    expect(await status('/')).toBe(404);
    expect(await status(`/presence?from=${SELF}`)).toBe(404);
    expect(await status(`/presence?nonce=${nonce}`)).toBe(404);
    expect(await status(`/presence?nonce=${'z'.repeat(32)}&from=${SELF}`)).toBe(404);
    expect(await status(`/presence?nonce=abc&from=${SELF}`)).toBe(404);
    expect(await status(`/presence?nonce=${'a'.repeat(66)}&from=${SELF}`)).toBe(404);
    expect(await status(`/presence?nonce=${nonce}&from=a%20b`)).toBe(404);
    expect(await status(`/presence?nonce=${nonce}&from=${SELF}`, { method: 'POST' })).toBe(404);
  });

  it('answers 404 to a request target that is not a URL, and keeps serving', async () => {
    const { port } = await startServer();
    const raw = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => s.write('GET http://[::1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      let text = '';
      s.on('data', (d: Buffer) => (text += d.toString()));
      s.on('end', () => resolve(text));
      s.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 (404|400) /);
    const p = startProber(port);
    await p.until('alive');
  });

  it('answers 500 while describe() throws, and logs that once', async () => {
    const { port, logs } = await startServer({
      describe: () => {
        throw new Error('status not ready');
      },
    });
    const p = startProber(port);
    await p.until('invalid');
    await waitFor(() => (p.prober.view().consecutive >= 3 ? true : undefined));
    expect(p.prober.view().error).toBe('not a presence answer: HTTP 500');
    expect(logs.withCode('TANDEM_ERR_INTERNAL')).toHaveLength(1);
  });

  it('stops without leaving a probe behind, even against a stalled peer', async () => {
    const silent = await startSilent();
    const p = startProber(silent.port, { timeoutMs: 5_000 });
    await waitFor(() => (silent.open() > 0 ? true : undefined));
    const before = p.prober.view();
    await p.prober.stop();
    expect(p.prober.view()).toBe(before);
    await waitFor(() => (silent.open() === 0 ? true : undefined), 1_000);
    expect(silent.accepted()).toBe(1);
  });

  it('under a flood of 200 idle connections holds at most 32 open, drops each within 5 s, and still answers the prober', async () => {
    const { server, port, logs } = await startServer();
    const p = startProber(port);
    await p.until('alive');
    const opened: { socket: net.Socket; at: number; closedAt?: number }[] = [];
    for (let i = 0; i < 200; i++) {
      const socket = net.connect({ host: '127.0.0.1', port });
      const entry: { socket: net.Socket; at: number; closedAt?: number } = { socket, at: 0 };
      socket.on('connect', () => (entry.at = Date.now()));
      socket.on('error', () => {});
      socket.resume();
      socket.on('close', () => (entry.closedAt = Date.now()));
      opened.push(entry);
      cleanups.push(() => void socket.destroy());
    }
    await waitFor(() => (opened.every((o) => o.at > 0 || o.closedAt !== undefined) ? true : undefined), 5_000, 'every flood connection accepted');
    // Never more than the cap at once, and the prober still gets its answers meanwhile.
    const peak = { n: 0 };
    const sample = setInterval(() => (peak.n = Math.max(peak.n, server.connections)), 10);
    cleanups.push(() => clearInterval(sample));
    await waitFor(() => (p.prober.view().consecutive >= 5 && p.prober.view().state === 'alive' ? true : undefined), 5_000, 'answers during the flood');
    await waitFor(() => (opened.every((o) => o.closedAt !== undefined) ? true : undefined), 9_000, 'every flood connection dropped');
    clearInterval(sample);
    expect(peak.n).toBeLessThanOrEqual(32);
    const lifetimes = opened.map((o) => (o.closedAt ?? 0) - (o.at || (o.closedAt ?? 0)));
    // The timeout is 5 s; the margin is for a busy machine's timers.
    expect(Math.max(...lifetimes)).toBeLessThan(5_000 + 2_000);
    // Never gone: with this test's 300 ms probe timeout a busy machine may see a probe stalled.
    expect(p.states.filter((st) => st === 'dead' || st === 'unreachable')).toEqual([]);
    await p.until('alive');
    expect(logs.lines().filter((l) => l.msg.startsWith('presence: too many open connections'))).toHaveLength(1);
  });
});
