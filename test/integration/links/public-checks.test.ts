// The public checks against real listeners on the loopback: what each kind of probe reports,
// and the checker's verdict when its only target goes away and comes back.
import fs from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { PublicTarget } from '../../../shared/config/load.ts';
import { probeTarget, PublicChecker, type PublicLinkView } from '../../../agent/links/index.ts';
import { captureLog, waitFor } from '../channel/log-capture.ts';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const never = new AbortController().signal;

async function listenTcp(port = 0): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.resume();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  cleanups.push(() => (server.listening ? close() : undefined));
  return { port: (server.address() as AddressInfo).port, close };
}

async function closedPort(): Promise<number> {
  const l = await listenTcp();
  await l.close();
  return l.port;
}

async function listenHttp(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(
    () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(r);
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`;
}

const target = (url: string, timeoutMs = 300): PublicTarget => ({ url, kind: url.startsWith('tcp:') ? 'tcp' : url.startsWith('ping:') ? 'ping' : 'http', timeoutMs });

describe('public check probes', () => {
  it('tcp: a listening port answers', async () => {
    const { port } = await listenTcp();
    const o = await probeTarget(target(`tcp://127.0.0.1:${port}`), never);
    expect(o).toMatchObject({ result: 'ok', latencyMs: expect.any(Number) });
  });

  it('tcp: a listening port answers even when the checker was too busy to look before its timeout', async () => {
    const { port } = await listenTcp();
    for (let i = 0; i < 3; i++) {
      const probe = probeTarget(target(`tcp://127.0.0.1:${port}`, 50), never);
      // This thread blocked 300 ms right after the connect began: the kernel completes it meanwhile.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
      expect(await probe).toMatchObject({ result: 'ok' });
    }
  });

  it('tcp: a closed port fails with the connection refused', async () => {
    const o = await probeTarget(target(`tcp://127.0.0.1:${await closedPort()}`), never);
    expect(o).toMatchObject({ result: 'failed', error: expect.stringContaining('ECONNREFUSED') });
  });

  it('http: 200 (and a redirect) answer, 500 fails with its status', async () => {
    const url = await listenHttp((req, res) => {
      if (req.url === '/health') res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      else if (req.url === '/moved') res.writeHead(302, { location: '/health' }).end();
      else res.writeHead(500).end('broken');
    });
    expect(await probeTarget(target(url), never)).toMatchObject({ result: 'ok' });
    expect(await probeTarget(target(url.replace('/health', '/moved')), never)).toMatchObject({ result: 'ok' });
    expect(await probeTarget(target(url.replace('/health', '/boom')), never)).toEqual({ result: 'failed', latencyMs: expect.any(Number), error: 'HTTP 500' });
  });

  it('http: a server that never answers fails at the timeout', async () => {
    const url = await listenHttp(() => {});
    const t0 = performance.now();
    const o = await probeTarget(target(url, 200), never);
    const tookMs = performance.now() - t0;
    expect(o).toMatchObject({ result: 'failed', error: 'timed out after 200 ms' });
    expect(tookMs).toBeGreaterThanOrEqual(190);
    expect(tookMs).toBeLessThan(1000);
  });

  it('http: an endless body does not hold the check past the first bytes', async () => {
    const url = await listenHttp((_req, res) => {
      res.writeHead(200);
      const chunk = Buffer.alloc(16 * 1024, 'x');
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    });
    expect(await probeTarget(target(url, 2000), never)).toMatchObject({ result: 'ok' });
  });

  it('ping: 127.0.0.1 answers where ping is available', async (ctx) => {
    const o = await probeTarget(target('ping://127.0.0.1', 1000), never);
    if (o.result === 'unavailable') ctx.skip(`ping cannot run on this machine (${o.error})`);
    expect(o).toMatchObject({ result: 'ok' });
  });

  it('ping: a missing ping program makes the target unavailable, not failed', async () => {
    const o = await probeTarget(target('ping://127.0.0.1', 1000), never, { pingCommand: 'tandem-no-such-ping' });
    expect(o).toEqual({ result: 'unavailable', error: expect.stringContaining('ENOENT') });
  });

  it('ping: a ping that may not open its socket makes the target unavailable', async () => {
    // What iputils prints without cap_net_raw, from a stand-in so the test runs as any user.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-ping-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const fake = path.join(dir, 'ping');
    fs.writeFileSync(fake, '#!/bin/sh\necho "ping: socktype: SOCK_RAW" >&2\necho "ping: socket: Operation not permitted" >&2\nexit 2\n', { mode: 0o755 });
    const o = await probeTarget(target('ping://127.0.0.1', 1000), never, { pingCommand: fake });
    expect(o).toEqual({ result: 'unavailable', error: `${fake} is not permitted here: ping: socket: Operation not permitted` });
  });

  it('ping: an unknown host fails with ping\'s own words', async (ctx) => {
    const o = await probeTarget(target('ping://no-such-host.invalid', 1000), never);
    if (o.result === 'unavailable') ctx.skip(`ping cannot run on this machine (${o.error})`);
    expect(o).toMatchObject({ result: 'failed', error: expect.stringMatching(/no-such-host\.invalid/) });
  });

  it('ends a probe in progress when stopped', async () => {
    const url = await listenHttp(() => {});
    const ac = new AbortController();
    const pending = probeTarget(target(url, 5000), ac.signal);
    setTimeout(() => ac.abort(), 50);
    expect(await pending).toMatchObject({ result: 'failed', error: 'stopped' });
  });
});

describe('public checker on real sockets', () => {
  it('reports failing after threshold rounds when its only target closes, and ok again when it comes back', async () => {
    const listener = await listenTcp();
    const logs = captureLog();
    const checker = new PublicChecker({ targets: [target(`tcp://127.0.0.1:${listener.port}`, 200)], intervalMs: 50, threshold: 3, log: logs.log });
    const seen: PublicLinkView[] = [];
    checker.onChange((v) => seen.push(v));
    checker.start();
    cleanups.push(() => checker.stop());
    await waitFor(() => (checker.view().state === 'ok' ? true : undefined));

    await listener.close();
    const closedAt = Date.now();
    await waitFor(() => (checker.view().state === 'failing' ? true : undefined));
    const failing = checker.view();
    expect(failing.consecutiveFailures).toBe(3);
    // Three failed rounds 50 ms apart: not before the third.
    expect(failing.since - closedAt).toBeGreaterThanOrEqual(90);
    expect(failing.targets[0]).toMatchObject({ ok: false, error: expect.stringContaining('ECONNREFUSED') });

    await listenTcp(listener.port);
    await waitFor(() => (checker.view().state === 'ok' ? true : undefined));
    expect(seen.map((v) => v.state)).toEqual(['ok', 'failing', 'ok']);
    expect(logs.lines().map((l) => [l.level, l.msg, l.to])).toEqual([
      ['info', 'public checks: link ok', 'ok'],
      ['warn', 'public checks: link failing', 'failing'],
      ['info', 'public checks: link ok', 'ok'],
    ]);
    expect(logs.lines()[1]).toMatchObject({ targets: [{ url: `tcp://127.0.0.1:${listener.port}`, error: expect.stringContaining('ECONNREFUSED') }] });
  });
});
