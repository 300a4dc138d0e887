// Real sockets on the loopback interface: who gets a connection and who does not, in both
// encryption modes, judged by what each side logged.
import crypto from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import type { ChannelEncryption } from '../../../agent/channel/index.ts';
import { derivePsk, tlsPskServerOptions } from '../../../agent/channel/tls-psk.ts';
import { encode } from '../../../shared/protocol/codec.ts';
import { captureLog, waitFor } from './log-capture.ts';
import {
  AUTH_HEADERS,
  CLIENT_NODE,
  KEY,
  PAIR,
  SERVER_NODE,
  clientTarget,
  dialOnce,
  hello,
  makeClientClaim,
  rawClient,
  serverOptions,
  startServer,
  type Recorded,
} from './fixtures.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(encryption: ChannelEncryption) {
  const slog = captureLog();
  const s = await startServer(serverOptions(slog.log, encryption));
  cleanups.push(() => s.server.close());
  return { ...s, slog };
}

const closeAll = (recs: Recorded[]) => () => recs.forEach((r) => r.conn.close('normal', 'test done'));

describe.each(['tls-psk', 'none'] as ChannelEncryption[])('channel authentication with encryption %s', (encryption) => {
  it('connects a client with the right key, and both sides exchange hello and ack', async () => {
    const { port, accepted, slog } = await serve(encryption);
    const clog = captureLog();
    const dialed = await dialOnce(clientTarget(clog.log, encryption, port), clog.log);
    expect(dialed.ok).toBe(true);
    if (!dialed.ok) return;
    const client = dialed.rec;
    cleanups.push(closeAll([client]));
    const server = await waitFor(() => accepted[0]);
    expect(server.conn.peer).toBe(CLIENT_NODE);
    expect(server.conn.direction).toBe('inbound');
    expect(client.conn.peer).toBe(SERVER_NODE);
    expect(client.conn.direction).toBe('outbound');

    server.conn.send(hello(SERVER_NODE, 'active'));
    client.conn.send(hello(CLIENT_NODE, 'passive'));
    client.conn.send({ t: 'ack', seq: 7 });
    const written = await new Promise<Error | undefined>((resolve) => server.conn.send({ t: 'ack', seq: 10 }, resolve));
    expect(written).toBeUndefined();

    await waitFor(() => (server.messages.length === 2 && client.messages.length === 2 ? true : undefined));
    expect(server.messages).toEqual([hello(CLIENT_NODE, 'passive'), { t: 'ack', seq: 7 }]);
    expect(client.messages).toEqual([hello(SERVER_NODE, 'active'), { t: 'ack', seq: 10 }]);

    for (const side of [server, client]) {
      const st = side.conn.stats();
      expect(st.messagesIn).toBe(2);
      expect(st.messagesOut).toBe(2);
      expect(st.bytesIn).toBeGreaterThan(0);
      expect(st.bytesOut).toBeGreaterThan(0);
      expect(st.connectedAt).toBeGreaterThan(0);
    }
    if (encryption === 'tls-psk') {
      // Wire bytes include the TLS handshake (the 2048-bit DH parameters alone are ~0.5 KiB).
      expect(server.conn.stats().bytesOut).toBeGreaterThan(1_000);
    }
    expect(slog.lines().some((l) => l.msg === 'channel: connected' && l.component === 'channel' && l.peer === CLIENT_NODE)).toBe(true);
    // The key never reaches a log line, in any encoding.
    for (const text of [slog.text(), clog.text()]) {
      expect(text).not.toContain(KEY.toString('hex'));
      expect(text).not.toContain(KEY.toString('base64'));
    }
  });

  it('refuses a client with a wrong key before any message is delivered', async () => {
    const { port, accepted, slog } = await serve(encryption);
    const clog = captureLog();
    const dialed = await dialOnce(clientTarget(clog.log, encryption, port, { key: crypto.randomBytes(32) }), clog.log);
    expect(dialed.ok).toBe(false);
    if (dialed.ok) return;
    expect(dialed.failure.code).toBe('TANDEM_ERR_AUTH_FAILED');
    const line = await slog.waitFor((l) => l.code === 'TANDEM_ERR_AUTH_FAILED');
    expect(line.level).toBe('warn');
    expect(line.remote).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(line.err?.hint).toContain('pair key');
    expect(accepted).toHaveLength(0);
  });

  it('refuses an impostor that holds the key but claims another node name', async () => {
    const { port, accepted, slog } = await serve(encryption);
    const clog = captureLog();
    const dialed = await dialOnce(clientTarget(clog.log, encryption, port, { self: 'gamma' }), clog.log);
    expect(dialed.ok).toBe(false);
    if (dialed.ok) return;
    expect(dialed.failure.code).toBe('TANDEM_ERR_PEER_UNEXPECTED');
    const line = await slog.waitFor((l) => l.code === 'TANDEM_ERR_PEER_UNEXPECTED');
    expect(line.level).toBe('warn');
    expect(line.remote).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(line.err?.message).toContain('"gamma"');
    expect(accepted).toHaveLength(0);
  });

  it('refuses a client that wants to reach another node', async () => {
    const { port, accepted, slog } = await serve(encryption);
    const clog = captureLog();
    const dialed = await dialOnce(clientTarget(clog.log, encryption, port, { peer: 'delta' }), clog.log);
    expect(dialed.ok).toBe(false);
    if (dialed.ok) return;
    expect(dialed.failure.code).toBe('TANDEM_ERR_PEER_UNEXPECTED');
    await slog.waitFor((l) => l.code === 'TANDEM_ERR_PEER_UNEXPECTED');
    expect(accepted).toHaveLength(0);
  });

  it('refuses a replayed upgrade that reuses a nonce', async () => {
    const { port, accepted, slog } = await serve(encryption);
    const claim = makeClientClaim(PAIR, CLIENT_NODE, SERVER_NODE, Date.now());
    const first = await rawClient({ port, encryption, claim });
    expect(first.ws).toBeDefined();
    first.ws?.close();
    const replay = await rawClient({ port, encryption, claim });
    expect(replay.ws).toBeUndefined();
    expect(replay.status).toBe(401);
    const line = await slog.waitFor((l) => l.code === 'TANDEM_ERR_AUTH_FAILED');
    expect(line.err?.message).toContain('replayed');
    expect(accepted).toHaveLength(1);
  });

  it('refuses a client whose timestamp is more than five minutes off', async () => {
    const { port, slog } = await serve(encryption);
    const claim = makeClientClaim(PAIR, CLIENT_NODE, SERVER_NODE, Date.now() - 6 * 60_000);
    const r = await rawClient({ port, encryption, claim });
    expect(r.status).toBe(401);
    const line = await slog.waitFor((l) => l.code === 'TANDEM_ERR_AUTH_FAILED');
    expect(line.err?.message).toContain('clock');
  });

  it('refuses a client that sends no proof at all', async () => {
    const { port, accepted, slog } = await serve(encryption);
    const r = await rawClient({ port, encryption, headers: { [AUTH_HEADERS.proof]: undefined } });
    expect(r.status).toBe(401);
    await slog.waitFor((l) => l.code === 'TANDEM_ERR_AUTH_FAILED');
    expect(accepted).toHaveLength(0);
  });

  it('refuses a server that cannot prove itself, before the connection counts as open', async () => {
    // A ws server that accepts anything and never sends the server proof. Under TLS it does
    // hold the PSK, so only the missing proof can catch it.
    const clog = captureLog();
    const plain =
      encryption === 'tls-psk'
        ? https.createServer(tlsPskServerOptions(derivePsk(KEY, PAIR), SERVER_NODE, 3_000, () => {}))
        : http.createServer();
    const wss = new WebSocketServer({ server: plain, perMessageDeflate: false });
    wss.on('connection', (ws) => {
      ws.on('error', () => {});
      ws.send(encode({ t: 'ack', seq: 1 }));
    });
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          for (const c of wss.clients) c.terminate();
          wss.close();
          plain.close(() => r());
        }),
    );
    const port = (plain.address() as AddressInfo).port;
    const dialed = await dialOnce(clientTarget(clog.log, encryption, port), clog.log);
    expect(dialed.ok).toBe(false);
    if (dialed.ok) return;
    expect(dialed.failure.code).toBe('TANDEM_ERR_AUTH_FAILED');
    expect(dialed.failure.reason).toContain('no proof');
  });
});

describe('channel authentication specific to TLS-PSK', () => {
  it('refuses a client of another pair id in the TLS handshake (its PSK differs)', async () => {
    const { port, accepted, slog } = await serve('tls-psk');
    const clog = captureLog();
    const dialed = await dialOnce(clientTarget(clog.log, 'tls-psk', port, { pair: 'other' }), clog.log);
    expect(dialed.ok).toBe(false);
    if (dialed.ok) return;
    expect(dialed.failure.code).toBe('TANDEM_ERR_AUTH_FAILED');
    await slog.waitFor((l) => l.code === 'TANDEM_ERR_AUTH_FAILED');
    expect(accepted).toHaveLength(0);
  });

  it('refuses a client whose TLS identity differs from the node it claims', async () => {
    const { port, accepted, slog } = await serve('tls-psk');
    const r = await rawClient({ port, encryption: 'tls-psk', tlsIdentity: 'gamma' });
    expect(r.status).toBe(403);
    const line = await slog.waitFor((l) => l.code === 'TANDEM_ERR_PEER_UNEXPECTED');
    expect(line.err?.message).toContain('TLS identity');
    expect(accepted).toHaveLength(0);
  });

  it('refuses a client that does not speak TLS and says the encryption modes differ', async () => {
    const { port, accepted, slog } = await serve('tls-psk');
    const clog = captureLog();
    const dialed = await dialOnce(clientTarget(clog.log, 'none', port), clog.log);
    expect(dialed.ok).toBe(false);
    const line = await slog.waitFor((l) => l.code === 'TANDEM_ERR_AUTH_FAILED');
    expect(line.err?.message).toContain('encryption');
    expect(accepted).toHaveLength(0);
  });

  it('makes a TLS client that reaches a plain server fail as an authentication problem', async () => {
    const { port, accepted } = await serve('none');
    const clog = captureLog();
    const dialed = await dialOnce(clientTarget(clog.log, 'tls-psk', port), clog.log);
    expect(dialed.ok).toBe(false);
    if (dialed.ok) return;
    expect(dialed.failure.code).toBe('TANDEM_ERR_AUTH_FAILED');
    expect(accepted).toHaveLength(0);
  });
});

describe('channel authentication without encryption', () => {
  it('refuses a client of another pair id that holds the key as an unexpected peer', async () => {
    const { port, accepted, slog } = await serve('none');
    const clog = captureLog();
    const dialed = await dialOnce(clientTarget(clog.log, 'none', port, { pair: 'other' }), clog.log);
    expect(dialed.ok).toBe(false);
    if (dialed.ok) return;
    expect(dialed.failure.code).toBe('TANDEM_ERR_PEER_UNEXPECTED');
    const line = await slog.waitFor((l) => l.code === 'TANDEM_ERR_PEER_UNEXPECTED');
    expect(line.err?.message).toContain('"other"');
    expect(accepted).toHaveLength(0);
  });
});
