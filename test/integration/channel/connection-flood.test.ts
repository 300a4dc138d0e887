// A flood of idle connections on the channel port: the server holds at most its cap of
// connections that have not authenticated, drops each within its handshake bound, keeps the
// peer's open connection, and still accepts the peer when it dials during the flood.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CHANNEL_MAX_PENDING_CONNECTIONS } from '../../../agent/channel/channel-server.ts';
import type { ChannelEncryption } from '../../../agent/channel/index.ts';
import { captureLog, waitFor } from './log-capture.ts';
import { clientTarget, dialOnce, serverOptions, startServer } from './fixtures.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe.each(['tls-psk', 'none'] as ChannelEncryption[])('the channel server with encryption %s', (encryption) => {
  it('holds at most its cap of unauthenticated connections under a flood of 200, drops each in time, and keeps and accepts the peer', async () => {
    const slog = captureLog();
    const handshakeTimeoutMs = 1_000;
    const s = await startServer(serverOptions(slog.log, encryption, { handshakeTimeoutMs }));
    cleanups.push(() => s.server.close());
    const clog = captureLog();
    const first = await dialOnce(clientTarget(clog.log, encryption, s.port, { handshakeTimeoutMs }), clog.log);
    if (!first.ok) throw new Error(first.failure.reason);
    cleanups.push(() => first.rec.conn.close('normal', 'test over'));

    const flood: { socket: net.Socket; at: number; closedAt?: number }[] = [];
    for (let i = 0; i < 200; i++) {
      const socket = net.connect({ host: '127.0.0.1', port: s.port });
      const entry: { socket: net.Socket; at: number; closedAt?: number } = { socket, at: Date.now() };
      socket.on('error', () => {});
      // Reads (and drops) what the server says, so its close is seen after a 408 too.
      socket.resume();
      socket.on('close', () => (entry.closedAt = Date.now()));
      flood.push(entry);
      cleanups.push(() => void socket.destroy());
    }
    let peak = 0;
    const sample = setInterval(() => (peak = Math.max(peak, s.server.pendingConnections)), 5);
    cleanups.push(() => clearInterval(sample));
    // The peer dials again in the middle of the flood: the newest connection is never the one evicted.
    const second = await dialOnce(clientTarget(clog.log, encryption, s.port, { handshakeTimeoutMs }), clog.log);
    if (!second.ok) throw new Error(second.failure.reason);
    cleanups.push(() => second.rec.conn.close('normal', 'test over'));
    await waitFor(() => (flood.every((f) => f.closedAt !== undefined) ? true : undefined), 2 * handshakeTimeoutMs + 3_000);
    clearInterval(sample);
    expect(peak).toBeLessThanOrEqual(CHANNEL_MAX_PENDING_CONNECTIONS);
    expect(Math.max(...flood.map((f) => f.closedAt! - f.at))).toBeLessThan(2 * handshakeTimeoutMs + 1_500);
    expect(s.accepted).toHaveLength(2);
    expect(second.rec.conn.open).toBe(true);
    expect(slog.lines().filter((l) => l.msg.startsWith('channel: too many connections not authenticated yet'))).toHaveLength(1);
  });
});
