// One attempt to open the channel to the peer: TCP, TLS-PSK (unless 'none'), the upgrade with
// our proof, then the server's proof checked before the connection counts as open. The result
// is handed over synchronously from ws's 'open' event, so the caller attaches its listeners
// before the first frame is read (a peer's hello may ride in the same packet as the 101).
import type { ClientRequest, IncomingMessage } from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import WebSocket, { type ClientOptions } from 'ws';
import { systemClock } from '../../shared/clock.ts';
import { describeCause, errnoOf, type ErrorCode } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { clientAuthHeaders, makeClientClaim, serverAuthProblem } from './channel-auth.ts';
import type { ChannelOptions } from './channel-options.ts';
import { CLOSE_GRACE_MS, PeerConnection } from './peer-connection.ts';
import { derivePsk, tlsPskClientOptions } from './tls-psk.ts';

export interface DialFailure {
  /** Set when the failure has a Tandem code (authentication, identity, protocol). */
  code: ErrorCode | undefined;
  /** Groups failures for log rate limiting: the code, an errno ('ECONNREFUSED') or 'timeout'. */
  kind: string;
  reason: string;
  cause?: Error | undefined;
}

export type DialResult = { ok: true; conn: PeerConnection } | { ok: false; failure: DialFailure };

export interface DialTarget extends ChannelOptions {
  host: string;
  port: number;
}

const urlHost = (host: string): string => (net.isIPv6(host) ? `[${host}]` : host);

function classify(err: Error, encrypted: boolean): DialFailure {
  const errno = errnoOf(err);
  if (encrypted && errno !== undefined && (errno === 'EPROTO' || errno.startsWith('ERR_SSL'))) {
    return {
      code: 'TANDEM_ERR_AUTH_FAILED',
      kind: 'TANDEM_ERR_AUTH_FAILED',
      reason: `the TLS handshake failed (${errno}): the peer does not hold the same pair key, or has another pair id or channel.encryption`,
      cause: err,
    };
  }
  if (err.message === 'Opening handshake has timed out') return { code: undefined, kind: 'timeout', reason: 'the handshake timed out', cause: err };
  return { code: undefined, kind: errno ?? 'error', reason: describeCause(err), cause: err };
}

function failureForStatus(status: number | undefined): DialFailure {
  if (status === 401) {
    return { code: 'TANDEM_ERR_AUTH_FAILED', kind: 'TANDEM_ERR_AUTH_FAILED', reason: 'the peer refused our proof (HTTP 401): it does not hold the same pair key, or the clocks differ by over 5 minutes' };
  }
  if (status === 403) {
    return { code: 'TANDEM_ERR_PEER_UNEXPECTED', kind: 'TANDEM_ERR_PEER_UNEXPECTED', reason: 'the peer holds the pair key but does not expect this node (HTTP 403): pair id or node names differ' };
  }
  return { code: 'TANDEM_ERR_PROTOCOL', kind: 'TANDEM_ERR_PROTOCOL', reason: `the peer answered HTTP ${status ?? '?'} instead of a channel upgrade: not a Tandem channel` };
}

/**
 * Dials once. `done` is called exactly once: with the open connection (synchronously inside
 * ws's 'open'), or with the reason it failed. Aborting `signal` gives up the attempt.
 */
export function dialPeer(target: DialTarget, log: Logger, done: (r: DialResult) => void, signal?: AbortSignal): void {
  const clock = target.clock ?? systemClock;
  const encrypted = target.encryption === 'tls-psk';
  const remote = `${target.host}:${target.port}`;
  const claim = makeClientClaim(target.pair, target.self, target.peer, clock.now());
  let wire: net.Socket | undefined;
  let tlsSocket: tls.TLSSocket | undefined;
  let failure: DialFailure | undefined;
  let settled = false;

  // Our own TCP socket under TLS: the TLSSocket ws would make counts plaintext, the wire bytes
  // are counted on the socket it wraps.
  const createConnection = (): net.Socket => {
    const socket = net.connect({ host: target.host, port: target.port });
    wire = socket;
    socket.on('error', () => {
      // Reported through ws (the TLS socket or the request forwards it); this only keeps an
      // error after ws let go of the socket from becoming an uncaught exception.
    });
    if (!encrypted) return socket;
    tlsSocket = tls.connect({ ...tlsPskClientOptions(derivePsk(target.key, target.pair), target.self), socket });
    return tlsSocket;
  };

  const wsOpts: ClientOptions & { closeTimeout: number } = {
    perMessageDeflate: false,
    maxPayload: target.maxFrameBytes,
    skipUTF8Validation: true,
    handshakeTimeout: target.handshakeTimeoutMs,
    followRedirects: false,
    headers: clientAuthHeaders(target.key, claim),
    createConnection: createConnection as unknown as ClientOptions['createConnection'],
    closeTimeout: CLOSE_GRACE_MS,
    // A zero masking key: ws then neither copies nor XORs the payload (on either end; its
    // sender and receiver both skip an all-zero key). Masking protects browsers' proxies from
    // cache poisoning by scripts (RFC 6455 §10.3); between two agents over TLS-PSK, or a trusted
    // link, it protects nothing, and it cost the dialing side a copy and a pass over every byte.
    generateMask: zeroMask,
  };
  let ws: WebSocket;
  try {
    ws = new WebSocket(`${encrypted ? 'wss' : 'ws'}://${urlHost(target.host)}:${target.port}/`, wsOpts);
  } catch (err) {
    done({ ok: false, failure: { code: undefined, kind: 'error', reason: describeCause(err), cause: err as Error } });
    return;
  }

  const settle = (r: DialResult): void => {
    if (settled) return;
    settled = true;
    timer.cancel();
    signal?.removeEventListener('abort', onAbort);
    try {
      done(r);
    } catch (err) {
      log.error({ code: 'TANDEM_ERR_INTERNAL', err }, 'channel: a dial result handler threw');
      if (r.ok) r.conn.close('TANDEM_ERR_INTERNAL', 'the dialing node failed to set up the connection');
    }
  };
  const fail = (f: DialFailure): void => {
    if (settled || failure !== undefined) return;
    failure = f;
    ws.terminate();
    wire?.destroy();
    if (ws.readyState === WebSocket.CLOSED) settle({ ok: false, failure: f });
  };
  const onAbort = (): void => fail({ code: undefined, kind: 'aborted', reason: 'the dialer stopped' });
  // ws's handshakeTimeout only measures idleness; this bounds the whole handshake.
  const timer = clock.setTimeout(
    () => fail({ code: undefined, kind: 'timeout', reason: `the handshake did not complete within ${target.handshakeTimeoutMs} ms` }),
    target.handshakeTimeoutMs,
  );
  const onUpgrade = (res: IncomingMessage): void => {
    const problem = serverAuthProblem(res.headers, { key: target.key, pair: target.pair, peer: target.peer, clientNonce: claim.nonce });
    // Closing here, inside 'upgrade', stops ws before it opens: no frame is read or sent.
    if (problem !== undefined) fail({ code: 'TANDEM_ERR_AUTH_FAILED', kind: 'TANDEM_ERR_AUTH_FAILED', reason: problem });
  };
  const onUnexpectedResponse = (_req: ClientRequest, res: IncomingMessage): void => {
    res.resume();
    fail(failureForStatus(res.statusCode));
  };
  const onError = (err: Error): void => {
    if (failure === undefined) failure = classify(err, encrypted);
  };
  const onClose = (): void => settle({ ok: false, failure: failure ?? { code: undefined, kind: 'closed', reason: 'the connection closed during the handshake' } });
  ws.on('upgrade', onUpgrade);
  ws.on('unexpected-response', onUnexpectedResponse);
  ws.on('error', onError);
  ws.on('close', onClose);
  ws.once('open', () => {
    if (settled || wire === undefined) return;
    // From here PeerConnection owns the socket and its events (attached synchronously, so no
    // error can slip through unheard).
    ws.off('upgrade', onUpgrade);
    ws.off('unexpected-response', onUnexpectedResponse);
    ws.off('error', onError);
    ws.off('close', onClose);
    let conn: PeerConnection;
    try {
      conn = new PeerConnection({ ws, wire, peer: target.peer, direction: 'outbound', remote, maxFrameBytes: target.maxFrameBytes, log, clock, tls: tlsSocket });
    } catch (err) {
      ws.terminate();
      settle({ ok: false, failure: { code: 'TANDEM_ERR_INTERNAL', kind: 'TANDEM_ERR_INTERNAL', reason: describeCause(err), cause: err as Error } });
      return;
    }
    settle({ ok: true, conn });
  });
  // Only now that every listener is attached: aborting makes ws emit 'error' on the next tick.
  if (signal?.aborted === true) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
}

function zeroMask(mask: Buffer): void {
  mask.fill(0);
}
