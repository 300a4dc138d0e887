// Listens on this node's channel address and accepts the peer, and only the peer: TLS-PSK
// (unless 'none'), then the HMAC challenge in the upgrade, then a WebSocket. Every refusal is
// answered with a bare HTTP status and logged with its code and the remote address; no
// WebSocket frame is read before the peer is authenticated. Anyone who can reach the port can
// open connections, so those not authenticated yet are bounded: at most
// CHANNEL_MAX_PENDING_CONNECTIONS (a new one evicts the oldest), each for at most twice
// channel.handshakeTimeout.
import { EventEmitter } from 'node:events';
import http, { STATUS_CODES, type IncomingMessage } from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { WebSocketServer, type ServerOptions, type WebSocket } from 'ws';
import { systemClock, type Clock } from '../../shared/clock.ts';
import { TandemError, describeCause, errnoOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { ConnectionCap } from './connection-cap.ts';
import { checkClientAuth, serverAuthHeaderLines, type AuthVerdict } from './channel-auth.ts';
import { checkChannelOptions, type ChannelServerOptions } from './channel-options.ts';
import { LogLimiter } from './log-limiter.ts';
import { CLOSE_GRACE_MS, PeerConnection } from './peer-connection.ts';
import { ReplayCache } from './replay-cache.ts';
import { derivePsk, tlsPskServerOptions } from './tls-psk.ts';

export interface ChannelServerEvents {
  /** An authenticated connection from the peer. Attach listeners before returning: frames are read right after. */
  connection: [conn: PeerConnection];
}

const KEY_HINT = 'both nodes must hold the same pair key file; see docs/errors.md';
const NAMES_HINT = 'check pair, node and nodes.* in tandem.yaml on both nodes; see docs/errors.md';

/**
 * Connections not yet authenticated, at most. The peer needs one (two while a reconnect crosses
 * an old attempt); each costs a descriptor and a TLS state, so a flood of them must not starve
 * the agent. The newest is kept: the peer completes its handshake in milliseconds, an idle
 * socket never does.
 */
export const CHANNEL_MAX_PENDING_CONNECTIONS = 16;

function remoteOf(socket: Duplex): string {
  const s = socket as Partial<net.Socket>;
  return s.remoteAddress === undefined ? 'unknown' : `${s.remoteAddress}:${s.remotePort ?? 0}`;
}

/**
 * The TCP socket under a TLS socket, where the wire bytes are counted (a TLSSocket counts
 * plaintext). `_parent` is Node's own link from a server-side TLSSocket to the socket it wraps.
 */
function wireOf(socket: Duplex): net.Socket {
  const parent = (socket as { _parent?: unknown })._parent;
  return parent instanceof net.Socket ? parent : (socket as net.Socket);
}

/** Refuses an upgrade with a bare status and no body: nothing more for an unauthenticated caller. */
function refuseUpgrade(socket: Duplex, status: number): void {
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

export class ChannelServer extends EventEmitter<ChannelServerEvents> {
  private readonly opts: ChannelServerOptions;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly replay: ReplayCache;
  private readonly refusals: LogLimiter;
  private readonly server: http.Server | https.Server;
  private readonly wss: WebSocketServer;
  /** PSK identity each TLS socket gave, checked against the node it claims in the upgrade. */
  private readonly tlsIdentities = new WeakMap<object, string>();
  /** The server's proof for each upgrade in progress, added to the 101 response by 'headers'. */
  private readonly proofHeaders = new WeakMap<IncomingMessage, string[]>();
  /** Every TCP socket accepted, so close() leaves none behind (handshakes included). */
  private readonly sockets = new Set<net.Socket>();
  /** TCP sockets not authenticated yet. */
  private readonly pending: ConnectionCap;
  private current: PeerConnection | undefined;
  private state: 'new' | 'listening' | 'closing' | 'closed' = 'new';

  constructor(opts: ChannelServerOptions) {
    super();
    checkChannelOptions(opts, 'start the channel server');
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log.child({ component: 'channel' });
    this.replay = new ReplayCache(this.clock);
    this.refusals = new LogLimiter(this.clock);
    const maxPending = opts.maxPendingConnections ?? CHANNEL_MAX_PENDING_CONNECTIONS;
    // Node's own timeouts bound each stage (TLS, then the upgrade's headers); this bounds the
    // whole, whatever a client trickles.
    this.pending = new ConnectionCap({
      max: maxPending,
      lifetimeMs: 2 * opts.handshakeTimeoutMs,
      clock: this.clock,
      onEvicted: (evicted) => this.log.warn({ evicted, maxPending }, 'channel: too many connections not authenticated yet; dropping the oldest (a scan or a flood on the channel address)'),
    });
    const hs = opts.handshakeTimeoutMs;
    // The HTTP stage of the handshake gets the same budget as the TLS stage (handshakeTimeout):
    // headersTimeout runs from the moment the connection (under TLS: the TLS session) starts,
    // so a caller that sends nothing, or its headers too slowly, is dropped after it, checked
    // every connectionsCheckingInterval. Measured on Node 20: a silent client is gone after
    // headersTimeout plus at most one interval.
    const httpOpts: http.ServerOptions = { headersTimeout: hs, requestTimeout: hs, connectionsCheckingInterval: Math.min(1_000, hs) };
    this.server =
      opts.encryption === 'tls-psk'
        ? https.createServer({
            ...httpOpts,
            ...tlsPskServerOptions(derivePsk(opts.key, opts.pair), opts.self, hs, (socket, identity) => this.tlsIdentities.set(socket, identity)),
          })
        : http.createServer(httpOpts);
    this.server.on('connection', (socket: net.Socket) => {
      this.sockets.add(socket);
      this.pending.admit(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    this.server.on('request', (_req: IncomingMessage, res: http.ServerResponse) => {
      res.writeHead(426, { connection: 'close', upgrade: 'websocket' }).end();
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    if (opts.encryption === 'tls-psk') {
      this.server.on('tlsClientError', (err: Error, socket: TLSSocket) => this.guard(() => this.onTlsError(err, socket)));
    }
    const wsOpts: ServerOptions & { closeTimeout: number } = {
      noServer: true,
      perMessageDeflate: false,
      maxPayload: opts.maxFrameBytes,
      skipUTF8Validation: true,
      clientTracking: false,
      closeTimeout: CLOSE_GRACE_MS,
    };
    this.wss = new WebSocketServer(wsOpts);
    this.wss.on('headers', (headers, req) => {
      const lines = this.proofHeaders.get(req);
      if (lines !== undefined) headers.push(...lines);
    });
    this.wss.on('error', (err) => this.log.error({ code: 'TANDEM_ERR_INTERNAL', err }, 'channel: WebSocket server error'));
  }

  /** Connections accepted and not authenticated yet (for tests). */
  get pendingConnections(): number {
    return this.pending.size;
  }

  /** The open connection from the peer, if any. */
  get connection(): PeerConnection | undefined {
    return this.current;
  }

  /** Starts listening; resolves with the bound port (useful with port 0). */
  listen(): Promise<{ port: number }> {
    const { host, port } = this.opts;
    if (this.state !== 'new') return Promise.reject(new TandemError({ code: 'TANDEM_ERR_INTERNAL', op: 'listen on the channel', reason: `the server is ${this.state}` }));
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        reject(
          TandemError.wrap(err, {
            code: 'TANDEM_ERR_CONFIG_INVALID',
            op: `listen on channel address ${host}:${port}`,
            hint: `nodes.${this.opts.self}.channel must be an address of this host with a free port`,
            details: { key: `nodes.${this.opts.self}.channel` },
          }),
        );
      };
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.log.error({ code: 'TANDEM_ERR_INTERNAL', err }, 'channel: listener error'));
        this.state = 'listening';
        const bound = (this.server.address() as AddressInfo).port;
        this.log.info({ host, port: bound, encryption: this.opts.encryption }, 'channel: listening');
        resolve({ port: bound });
      });
    });
  }

  /** Closes the connection (if any) and the listener; resolves when no socket is left. */
  async close(): Promise<void> {
    if (this.state === 'closing' || this.state === 'closed') return;
    const wasListening = this.state === 'listening';
    this.state = 'closing';
    const stopped = new Promise<void>((resolve) => (wasListening ? this.server.close(() => resolve()) : resolve()));
    const conn = this.current;
    if (conn !== undefined) {
      conn.close('normal', 'the channel server is closing');
      await conn.ended();
    }
    for (const socket of this.sockets) socket.destroy();
    this.pending.destroyAll();
    await stopped;
    this.wss.close();
    this.state = 'closed';
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const remote = remoteOf(socket);
    // Until ws owns the socket, nobody else listens for its errors (a reset mid-handshake).
    const onSocketError = (err: Error): void => this.log.debug({ remote, err }, 'channel: socket error during the handshake');
    socket.on('error', onSocketError);
    this.guard(() => {
      if (this.state !== 'listening') {
        socket.destroy();
        return;
      }
      const { key, pair, self, peer } = this.opts;
      // Fail closed: under TLS every socket got here through pskCallback, so an unknown identity cannot match.
      const tlsIdentity = this.opts.encryption === 'tls-psk' ? (this.tlsIdentities.get(socket) ?? '') : undefined;
      const verdict = checkClientAuth(req.headers, { key, pair, self, peer, tlsIdentity }, this.clock.now(), this.replay);
      if (!verdict.ok) {
        this.logRefusal(verdict, remote);
        refuseUpgrade(socket, verdict.status);
        return;
      }
      this.proofHeaders.set(req, serverAuthHeaderLines(key, pair, self, verdict.claim.nonce));
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        socket.off('error', onSocketError);
        this.guard(() => this.accept(ws, socket, remote));
      });
    }, socket);
  }

  private accept(ws: WebSocket, socket: Duplex, remote: string): void {
    this.pending.release(wireOf(socket));
    const conn = new PeerConnection({
      ws,
      wire: wireOf(socket),
      peer: this.opts.peer,
      direction: 'inbound',
      remote,
      maxFrameBytes: this.opts.maxFrameBytes,
      log: this.log,
      clock: this.clock,
      tls: socket instanceof TLSSocket ? socket : undefined,
    });
    if (this.state !== 'listening') {
      conn.close('normal', 'the channel server is closing');
      return;
    }
    const old = this.current;
    this.current = conn;
    conn.on('close', () => {
      if (this.current === conn) this.current = undefined;
    });
    if (old?.open === true) {
      // The newest authenticated connection wins: a peer that restarted must not wait for its
      // old, possibly half-dead socket to time out.
      this.log.info({ peer: this.opts.peer, remote, previous: old.remote }, 'channel: a new connection from the peer replaces the open one');
      old.close('normal', 'replaced');
    }
    const tls = conn.tlsSession();
    this.log.info({ peer: this.opts.peer, remote, direction: 'inbound', ...(tls === undefined ? {} : { tls }) }, 'channel: connected');
    try {
      this.emit('connection', conn);
    } catch (err) {
      this.log.error({ code: 'TANDEM_ERR_INTERNAL', err }, "channel: a 'connection' handler threw");
      conn.close('TANDEM_ERR_INTERNAL', 'the accepting node failed to set up the connection');
    }
  }

  private logRefusal(verdict: Extract<AuthVerdict, { ok: false }>, remote: string): void {
    const address = remote.slice(0, remote.lastIndexOf(':'));
    const admitted = this.refusals.admit(`${verdict.code} ${address}`);
    if (admitted === undefined) return;
    const err = new TandemError({
      code: verdict.code,
      op: `authenticate channel client ${remote}`,
      reason: verdict.reason,
      hint: verdict.code === 'TANDEM_ERR_AUTH_FAILED' ? KEY_HINT : NAMES_HINT,
      details: verdict.claimedNode === undefined ? {} : { claimedNode: verdict.claimedNode },
    });
    this.log.warn(
      { code: verdict.code, remote, err, ...(admitted.suppressed > 0 ? { suppressed: admitted.suppressed } : {}) },
      verdict.code === 'TANDEM_ERR_AUTH_FAILED' ? 'channel: refused a client that could not authenticate' : 'channel: refused an unexpected peer',
    );
  }

  private onTlsError(err: Error, socket: TLSSocket): void {
    const remote = remoteOf(socket);
    const errno = errnoOf(err) ?? '';
    if (!errno.startsWith('ERR_SSL') && errno !== 'EPROTO') {
      // A caller that hung up or timed out before finishing the TLS handshake proved nothing
      // either way (port scans, health checks): not worth a warning.
      this.log.debug({ remote, err }, 'channel: TLS handshake abandoned');
      return;
    }
    const admitted = this.refusals.admit(`TANDEM_ERR_AUTH_FAILED ${socket.remoteAddress ?? ''}`);
    if (admitted === undefined) return;
    const plain = errno === 'ERR_SSL_HTTP_REQUEST' || errno === 'ERR_SSL_WRONG_VERSION_NUMBER';
    // The channel speaks TLS 1.3, or TLS 1.2 with ECDHE-PSK only (tls-psk.ts): a client offering
    // neither is refused in the handshake.
    const version = errno === 'ERR_SSL_UNSUPPORTED_PROTOCOL' || errno === 'ERR_SSL_NO_SHARED_CIPHER';
    const e = TandemError.wrap(err, {
      code: 'TANDEM_ERR_AUTH_FAILED',
      op: `authenticate channel client ${remote}`,
      reason: `TLS handshake failed (${errno}): ${plain ? 'the client does not speak TLS (channel.encryption differs?)' : version ? 'the client offers neither TLS 1.3 nor ECDHE-PSK over TLS 1.2 (a foreign or misconfigured client?)' : 'the client does not hold this pair key'}`,
      hint: plain ? 'channel.encryption must be the same on both nodes; see docs/channel.md' : version ? 'run the same Tandem version on both nodes; see docs/channel.md, "Encryption"' : KEY_HINT,
    });
    this.log.warn(
      { code: 'TANDEM_ERR_AUTH_FAILED', remote, err: e, ...(admitted.suppressed > 0 ? { suppressed: admitted.suppressed } : {}) },
      'channel: refused a client that could not authenticate',
    );
  }

  private guard(fn: () => void, socket?: Duplex): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ code: 'TANDEM_ERR_INTERNAL', err, reason: describeCause(err) }, 'channel: unexpected failure while accepting a connection');
      socket?.destroy();
    }
  }
}
