// The long-lived side: the dialer keeps one connection open across server restarts with
// backoff, a newer connection from the same peer replaces the old one, and handshakes that
// stall are cut off on both sides.
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { ChannelDialer, type ChannelEncryption, type PeerConnection } from '../../../agent/channel/index.ts';
import { captureLog, waitFor } from './log-capture.ts';
import { derivePsk, tlsPskClientOptions } from '../../../agent/channel/tls-psk.ts';
import { CLIENT_NODE, KEY, PAIR, clientTarget, dialOnce, record, serverOptions, startServer, type Recorded } from './fixtures.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe.each(['tls-psk', 'none'] as ChannelEncryption[])('the channel dialer with encryption %s', (encryption) => {
  it('reconnects with backoff after the server is closed and started again on the same port', async () => {
    const slog = captureLog();
    const first = await startServer(serverOptions(slog.log, encryption));
    let second: Awaited<ReturnType<typeof startServer>> | undefined;
    cleanups.push(async () => {
      await first.server.close();
      await second?.server.close();
    });
    const clog = captureLog();
    const dialer = new ChannelDialer({ ...clientTarget(clog.log, encryption, first.port), reconnectMinMs: 40, reconnectMaxMs: 320 });
    const connections: Recorded[] = [];
    dialer.on('connection', (conn) => connections.push(record(conn)));
    dialer.start();
    cleanups.push(() => dialer.stop());

    await waitFor(() => connections[0]);
    await waitFor(() => first.accepted[0]);
    expect(dialer.connection).toBe(connections[0]?.conn);

    await first.server.close();
    await waitFor(() => (connections[0]?.closes.length === 1 ? true : undefined));
    expect(connections[0]?.closes[0]).toMatchObject({ code: 'normal', byPeer: true });
    // Let a few attempts fail so the delays can double: 40 (the redial), 80, 160, 320 ms (±20 %).
    // One line per delay level, then the cap repeats silently.
    await waitFor(() => (clog.lines().filter((l) => l.msg === 'channel: cannot connect to the peer').length >= 3 ? true : undefined), 5_000);
    await new Promise((r) => setTimeout(r, 700));
    second = await startServer(serverOptions(slog.log, encryption, { port: first.port }));
    await waitFor(() => connections[1], 5_000);
    await waitFor(() => second?.accepted[0]);

    const failures = clog.lines().filter((l) => l.msg === 'channel: cannot connect to the peer');
    expect(failures.map((l) => l.retryInMs as number)).toEqual([
      expect.toSatisfy((d: number) => d >= 64 && d <= 96),
      expect.toSatisfy((d: number) => d >= 128 && d <= 192),
      expect.toSatisfy((d: number) => d >= 256 && d <= 320),
    ]);
    expect(failures[0]?.level).toBe('warn');
    expect(failures[0]?.err?.code).toBe('ECONNREFUSED');
    expect(failures[0]?.remote).toBe(`127.0.0.1:${first.port}`);

    const connected = clog.lines().filter((l) => l.msg === 'channel: connected');
    expect(connected).toHaveLength(2);
    expect(connected[0]?.failedAttempts).toBe(0);
    expect(connected[1]?.failedAttempts as number).toBeGreaterThanOrEqual(5);
    expect(connected[1]?.downMs as number).toBeGreaterThan(0);
    expect(dialer.connection).toBe(connections[1]?.conn);
  });

  it('stops dialing and closes its connection on stop', async () => {
    const slog = captureLog();
    const s = await startServer(serverOptions(slog.log, encryption));
    cleanups.push(() => s.server.close());
    const clog = captureLog();
    const dialer = new ChannelDialer({ ...clientTarget(clog.log, encryption, s.port), reconnectMinMs: 20, reconnectMaxMs: 40 });
    const connections: PeerConnection[] = [];
    dialer.on('connection', (conn) => connections.push(conn));
    dialer.start();
    await waitFor(() => connections[0]);
    const server = await waitFor(() => s.accepted[0]);
    await dialer.stop();
    expect(connections[0]?.open).toBe(false);
    await waitFor(() => (server.closes.length === 1 ? true : undefined));
    expect(server.closes[0]).toMatchObject({ code: 'normal', byPeer: true });
    await new Promise((r) => setTimeout(r, 150));
    expect(connections).toHaveLength(1);
    expect(s.accepted).toHaveLength(1);
  });

  it('lets a second authenticated connection from the same peer replace the first', async () => {
    const slog = captureLog();
    const s = await startServer(serverOptions(slog.log, encryption));
    cleanups.push(() => s.server.close());
    const clog = captureLog();
    const one = await dialOnce(clientTarget(clog.log, encryption, s.port), clog.log);
    if (!one.ok) throw new Error(one.failure.reason);
    const serverOne = await waitFor(() => s.accepted[0]);
    const two = await dialOnce(clientTarget(clog.log, encryption, s.port), clog.log);
    if (!two.ok) throw new Error(two.failure.reason);
    cleanups.push(() => two.rec.conn.close('normal', 'test done'));
    const serverTwo = await waitFor(() => s.accepted[1]);

    expect(serverOne.closes).toEqual([{ code: 'normal', reason: 'replaced', byPeer: false }]);
    await waitFor(() => (one.rec.closes.length === 1 ? true : undefined));
    expect(one.rec.closes).toEqual([{ code: 'normal', reason: 'replaced', byPeer: true }]);
    expect(s.server.connection).toBe(serverTwo.conn);
    expect(serverTwo.conn.open).toBe(true);
    two.rec.conn.send({ t: 'ack', seq: 3 });
    await waitFor(() => (serverTwo.messages.length === 1 ? true : undefined));
    expect(slog.lines().some((l) => l.msg === 'channel: a new connection from the peer replaces the open one' && l.peer === CLIENT_NODE)).toBe(true);
  });

  it('gives up a handshake the server never answers', async () => {
    // A listener that accepts TCP and then says nothing: neither TLS nor HTTP ever completes.
    const mute = net.createServer((socket) => socket.on('error', () => {}));
    const sockets = new Set<net.Socket>();
    mute.on('connection', (s) => sockets.add(s));
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      mute.close(() => r());
    }));
    const port = (mute.address() as net.AddressInfo).port;
    const clog = captureLog();
    const started = Date.now();
    const r = await dialOnce(clientTarget(clog.log, encryption, port, { handshakeTimeoutMs: 300 }), clog.log);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.failure.kind).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('drops a client that connects and never completes the handshake', async () => {
    const slog = captureLog();
    const s = await startServer(serverOptions(slog.log, encryption, { handshakeTimeoutMs: 300 }));
    cleanups.push(() => s.server.close());
    const socket = net.connect({ host: '127.0.0.1', port: s.port });
    socket.on('error', () => {});
    // Read, or the server's FIN would never surface as 'close' on a paused socket.
    socket.resume();
    cleanups.push(() => {
      socket.destroy();
    });
    const started = Date.now();
    await new Promise<void>((r) => socket.once('close', () => r()));
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(s.accepted).toHaveLength(0);
  });
});

describe('the channel server under TLS-PSK', () => {
  it('drops a client that completes TLS and then never sends its upgrade', async () => {
    const slog = captureLog();
    const s = await startServer(serverOptions(slog.log, 'tls-psk', { handshakeTimeoutMs: 300 }));
    cleanups.push(() => s.server.close());
    const socket = tls.connect({ host: '127.0.0.1', port: s.port, ...tlsPskClientOptions(derivePsk(KEY, PAIR), CLIENT_NODE) });
    socket.on('error', () => {});
    socket.resume();
    cleanups.push(() => {
      socket.destroy();
    });
    await new Promise<void>((r) => socket.once('secureConnect', () => r()));
    const started = Date.now();
    await new Promise<void>((r) => socket.once('close', () => r()));
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(s.accepted).toHaveLength(0);
  });
});
