// The channel's key exchange, read back from the negotiated TLS sessions at both ends and in
// both directions (each node dials the other): TLS 1.3 with an ephemeral X25519 exchange mixed
// into the PSK, never the 1024-bit finite-field group TLS 1.2's DHE-PSK suites got from OpenSSL.
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { derivePsk } from '../../../agent/channel/tls-psk.ts';
import { captureLog } from './log-capture.ts';
import { KEY, PAIR, clientTarget, dialOnce, serverOptions, startServer } from './fixtures.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('the channel key exchange', () => {
  it.each([
    ['alpha', 'beta'],
    ['beta', 'alpha'],
  ])('negotiates TLS 1.3 with an ephemeral X25519 exchange when %s listens and %s dials, as both ends report', async (listener, dialer) => {
    const slog = captureLog();
    const s = await startServer(serverOptions(slog.log, 'tls-psk', { self: listener, peer: dialer }));
    cleanups.push(() => s.server.close());
    const clog = captureLog();
    const r = await dialOnce(clientTarget(clog.log, 'tls-psk', s.port, { self: dialer, peer: listener }), clog.log);
    if (!r.ok) throw new Error(`dial failed: ${r.failure.reason}`);
    cleanups.push(() => r.rec.conn.close('normal', 'test over'));
    const accepted = await slog.waitFor((l) => l.msg === 'channel: connected');

    const client = r.rec.conn.tlsSession();
    const server = s.accepted[0]!.conn.tlsSession();
    expect(client).toEqual({ protocol: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256', keyExchange: 'ECDH X25519 (253 bits)' });
    // Node reports the ephemeral key on the client side only; the server's protocol and suite
    // say the same session.
    expect(server).toEqual({ protocol: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256', keyExchange: undefined });
    // The listener logs what it negotiated, so an operator sees it too.
    expect(accepted.tls).toEqual({ protocol: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' });
  });

  it('refuses a client that offers only the DHE-PSK suites (OpenSSL gave them a 1024-bit group), inside the handshake', async () => {
    const slog = captureLog();
    const s = await startServer(serverOptions(slog.log, 'tls-psk'));
    cleanups.push(() => s.server.close());
    const psk = derivePsk(KEY, PAIR);
    const outcome = await new Promise<{ ok: boolean; error?: string }>((resolve) => {
      const socket = tls.connect({
        socket: net.connect({ host: '127.0.0.1', port: s.port }),
        minVersion: 'TLSv1.2',
        maxVersion: 'TLSv1.2',
        ciphers: 'DHE-PSK-AES128-GCM-SHA256:DHE-PSK-AES256-GCM-SHA384',
        checkServerIdentity: () => undefined,
        pskCallback: () => ({ psk, identity: 'beta' }),
      });
      socket.once('secureConnect', () => {
        socket.destroy();
        resolve({ ok: true });
      });
      socket.once('error', (err) => resolve({ ok: false, error: (err as NodeJS.ErrnoException).code ?? err.message }));
    });
    expect(outcome.ok).toBe(false);
    expect(outcome.error).toMatch(/^ERR_SSL_|^EPROTO|ECONNRESET/);
    expect(s.accepted).toHaveLength(0);
    const refused = await slog.waitFor((l) => l.code === 'TANDEM_ERR_AUTH_FAILED');
    expect(refused.err?.message).toContain('offers neither TLS 1.3 nor ECDHE-PSK');
  });
});
