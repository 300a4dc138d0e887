import http from 'node:http';
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ClientLoop, format, type ClientLoopReport } from '../../helpers/client-loop.ts';
import { TcpProxy } from '../../helpers/tcp-proxy.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  // Each cleanup gets a bounded time, so one that hangs is named instead of timing out the hook.
  for (const c of cleanups.splice(0).reverse()) {
    let timer: NodeJS.Timeout | undefined;
    const hung = await Promise.race([
      Promise.resolve(c()).then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), 10_000))),
    ]);
    clearTimeout(timer);
    if (hung) console.warn(`a cleanup did not finish in 10 s: ${c.toString().slice(0, 80)}`);
  }
});

interface App {
  port: number;
  connections: number;
  stop(): Promise<void>;
}

/** A tiny service that says who serves it, like the demo application. */
async function serve(node: string, port = 0, respond = true): Promise<App> {
  const server = http.createServer((_req, res) => {
    if (!respond) return;
    res.writeHead(200, { 'content-type': 'text/plain', 'x-served-by': node });
    res.end(`served by ${node}\n`);
  });
  const app: App = {
    port,
    connections: 0,
    stop: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
  server.on('connection', () => app.connections++);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  app.port = (server.address() as net.AddressInfo).port;
  cleanups.push(() => (server.listening ? app.stop() : undefined));
  return app;
}

function loop(opts: ConstructorParameters<typeof ClientLoop>[0]): ClientLoop {
  const l = new ClientLoop(opts);
  cleanups.push(() => l.stop().catch(() => undefined));
  return l;
}

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const servedBy = (r: ClientLoopReport) => r.servedBy.map((s) => s.node);

describe('ClientLoop', () => {
  it('sees a service that stops for 1.5 s and comes back on another node', async () => {
    const one = await serve('one');
    const client = loop({ url: `http://127.0.0.1:${one.port}/`, ratePerSecond: 20, timeoutMs: 1_000 });
    client.start();
    await until('five answers from one', () => client.report().ok >= 5);
    await one.stop();
    // The outage itself: the service is gone for 1.5 s (the stimulus, not a wait for a result).
    await sleep(1_500);
    await serve('two', one.port);
    await until('ten answers from two', () => (client.report().servedBy.at(-1)?.node === 'two' ? client.report().servedBy.at(-1)!.count >= 10 : false));
    const report = await client.stop();
    console.log(format(report));

    expect(report.failed).toBeGreaterThan(10);
    expect(report.errors.ECONNREFUSED).toBeGreaterThan(10);
    expect(report.longestGapMs).toBeGreaterThan(1_000);
    expect(report.longestGapMs).toBeLessThan(8_000);
    // One outage is one long gap. Shorter ones (a timer late by more than two intervals on a
    // busy machine) are the loop being honest about what it saw, not a second outage.
    expect(report.gaps.filter((g) => g.durationMs >= 1_000)).toHaveLength(1);
    expect(servedBy(report)).toEqual(['one', 'two']);
    expect(report.firstFailureAt).toBeDefined();
    expect(report.recoveredAt).toBeGreaterThan(report.firstFailureAt!);
    // About 20 requests a second (fewer if timers run late on a busy machine: the loop skips
    // missed slots rather than bursting), and every one accounted for.
    const seconds = (report.stoppedAt - report.startedAt) / 1_000;
    expect(report.requests).toBeGreaterThan(seconds * 20 * 0.5);
    expect(report.requests).toBeLessThan(seconds * 20 * 1.1 + 2);
    expect(report.ok + report.failed).toBe(report.requests);
  });

  it('counts a silent network as timeouts, through a blackholed proxy', async () => {
    const app = await serve('one');
    const proxy = await TcpProxy.start({ targetPort: app.port });
    cleanups.push(() => proxy.close());
    const client = loop({ url: `http://127.0.0.1:${proxy.port}/`, ratePerSecond: 20, timeoutMs: 400 });
    client.start();
    await until('five answers through the proxy', () => client.report().ok >= 5);
    await proxy.blackhole();
    await sleep(1_500); // the stimulus: 1.5 s of silence
    await proxy.pass();
    const okBefore = client.report().ok;
    await until('five answers after the network returned', () => client.report().ok >= okBefore + 5);
    const report = await client.stop();
    console.log(format(report));

    expect(report.errors.timeout).toBeGreaterThan(10);
    expect(report.longestGapMs).toBeGreaterThan(1_000);
    expect(report.longestGapMs).toBeLessThan(8_000);
    expect(servedBy(report)).toEqual(['one']);
    expect(report.recoveredAt).toBeDefined();
    for (const r of report.records.filter((x) => x.error === 'timeout')) expect(r.latencyMs).toBeGreaterThanOrEqual(395);
  });

  it('opens a connection per request by default, and reuses them with keepAlive', async () => {
    const fresh = await serve('one');
    const a = loop({ url: `http://127.0.0.1:${fresh.port}/`, ratePerSecond: 50 });
    a.start();
    await until('ten answers', () => a.report().ok >= 10);
    const ra = await a.stop();
    expect(ra.failed).toBe(0);
    expect(fresh.connections).toBe(ra.requests);

    const reused = await serve('one');
    const b = loop({ url: `http://127.0.0.1:${reused.port}/`, ratePerSecond: 50, keepAlive: true });
    b.start();
    await until('twenty answers', () => b.report().ok >= 20);
    const rb = await b.stop();
    expect(rb.failed).toBe(0);
    expect(rb.requests).toBeGreaterThan(10);
    expect(reused.connections).toBeLessThan(rb.requests / 2);
  });

  it('fails requests that get no answer in time, and says nothing succeeded', async () => {
    const mute = await serve('one', 0, false);
    const client = loop({ url: `http://127.0.0.1:${mute.port}/`, ratePerSecond: 20, timeoutMs: 200 });
    client.start();
    await until('five requests timed out', () => (client.report().errors.timeout ?? 0) >= 5);
    const report = await client.stop();
    expect(report.ok).toBe(0);
    expect(report.failed).toBe(report.requests);
    expect(report.errors).toEqual({ timeout: report.requests });
    expect(format(report)).toMatch(/no successful response$/);
  });

  it('refuses bad options at construction', () => {
    expect(() => new ClientLoop({ url: 'ftp://x/' })).toThrow(/http/);
    expect(() => new ClientLoop({ url: 'http://x/', ratePerSecond: 0 })).toThrow(/ratePerSecond/);
    expect(() => new ClientLoop({ url: 'http://x/', timeoutMs: -1 })).toThrow(/timeoutMs/);
  });
});
