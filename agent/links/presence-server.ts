// Answers presence probes on this node's public address: a tiny HTTP/1.1 server with one
// route, GET /presence?nonce=…&from=…, whose answer is signed for that nonce. It must never
// do work per probe beyond describe() and one HMAC, never log per probe, and never keep a
// connection open: one request, one answer, close. Anyone on the public network reaches it, so
// what they can hold is bounded: at most PRESENCE_MAX_CONNECTIONS sockets (a new one evicts the
// oldest, so a flood of idle sockets cannot lock the peer's prober out) for at most
// PRESENCE_CONNECTION_TIMEOUT_MS each.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';
import { systemClock, type Clock } from '../../shared/clock.ts';
import { TandemError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { ConnectionCap } from '../channel/connection-cap.ts';
import { checkHost, checkName, checkPairKey, checkPort, NODE_NAME } from './link-options.ts';
import { derivePresenceKey, presenceProof, PRESENCE_NONCE, PRESENCE_PATH, type PresenceAnswer } from './presence-proof.ts';

export interface PresenceServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  pair: string;
  /** This node's name; the server always signs and answers as this node. */
  self: string;
  /** The pair key (the presence key is derived from it). */
  key: Buffer;
  /** This node's current facts; called once per valid probe, so keep it cheap. */
  describe: () => PresenceAnswer;
  log: Logger;
  /** Listen backlog; the kernel caps it at net.core.somaxconn. */
  backlog?: number;
  /** Open connections at most (PRESENCE_MAX_CONNECTIONS); tests lower it. */
  maxConnections?: number;
  /** How long a connection may stay open (PRESENCE_CONNECTION_TIMEOUT_MS). */
  connectionTimeoutMs?: number;
  clock?: Clock;
}

/**
 * While this agent is stalled (SIGSTOP, a long pause) every probe's connection waits in the
 * listen backlog. Once the backlog is full the kernel drops new SYNs and a stalled agent looks
 * unreachable, so ask for a large one: 4096 probes at one per second is over an hour.
 */
export const PRESENCE_LISTEN_BACKLOG = 4096;

/** A probe sends its request at once; a client that does not is not a prober. */
const REQUEST_TIMEOUT_MS = 5000;

/**
 * Connections open at once, at most. The peer's prober holds one at a time (two when one it
 * gave up on is still closing); the rest is headroom. Each costs a descriptor: well below any
 * descriptor limit an agent runs with, so a flood cannot starve the journal, the channel or the
 * scripts of theirs.
 */
export const PRESENCE_MAX_CONNECTIONS = 32;

/**
 * A connection is dropped this long after it was accepted, whatever it does: one request and
 * one answer take milliseconds. Node's own header and request timeouts are only checked every
 * 30 s (measured: idle sockets were dropped after about 32 s).
 */
export const PRESENCE_CONNECTION_TIMEOUT_MS = 5000;

export class PresenceServer {
  private readonly opts: PresenceServerOptions;
  private readonly log: Logger;
  private readonly presenceKey: Buffer;
  private readonly server: http.Server;
  private state: 'new' | 'listening' | 'closed' = 'new';
  private describeFailed = false;
  private readonly cap: ConnectionCap;

  constructor(opts: PresenceServerOptions) {
    const op = 'start the presence server';
    checkHost(op, 'host', opts.host);
    checkPort(op, 'port', opts.port, true);
    checkName(op, 'pair', opts.pair);
    checkName(op, 'self', opts.self);
    checkPairKey(op, opts.key);
    this.opts = opts;
    this.log = opts.log.child({ component: 'links' });
    this.presenceKey = derivePresenceKey(opts.key, opts.pair);
    const maxConnections = opts.maxConnections ?? PRESENCE_MAX_CONNECTIONS;
    this.cap = new ConnectionCap({
      max: maxConnections,
      lifetimeMs: opts.connectionTimeoutMs ?? PRESENCE_CONNECTION_TIMEOUT_MS,
      clock: opts.clock ?? systemClock,
      onEvicted: (evicted) => this.log.warn({ evicted, maxConnections }, 'presence: too many open connections; dropping the oldest (a scan or a flood on the public address)'),
    });
    this.server = http.createServer({ maxHeaderSize: 8192, requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS }, (req, res) =>
      this.handle(req, res),
    );
    // Resets and garbage from scanners (or from probes abandoned while this agent was stopped)
    // are not worth a line each: drop the socket.
    this.server.on('clientError', (_err: Error, socket: Socket) => socket.destroy());
    this.server.on('connection', (socket: Socket) => this.cap.admit(socket));
  }

  /** Open connections now (for tests and status). */
  get connections(): number {
    return this.cap.size;
  }

  /** Starts listening; resolves with the bound port. */
  listen(): Promise<{ port: number }> {
    const { host, port } = this.opts;
    if (this.state !== 'new') return Promise.reject(new TandemError({ code: 'TANDEM_ERR_INTERNAL', op: 'listen for presence probes', reason: `the server is ${this.state}` }));
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        reject(
          TandemError.wrap(err, {
            code: 'TANDEM_ERR_CONFIG_INVALID',
            op: `listen for presence probes on ${host}:${port}`,
            hint: `nodes.${this.opts.self}.public must be an address of this host with a free port`,
            details: { key: `nodes.${this.opts.self}.public` },
          }),
        );
      };
      this.server.once('error', onError);
      this.server.listen({ host, port, backlog: this.opts.backlog ?? PRESENCE_LISTEN_BACKLOG }, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.log.error({ code: 'TANDEM_ERR_INTERNAL', err }, 'presence: listener error'));
        this.state = 'listening';
        const bound = (this.server.address() as AddressInfo).port;
        this.log.info({ host, port: bound }, 'presence: answering probes');
        resolve({ port: bound });
      });
    });
  }

  /** Stops listening and drops every open connection; resolves when the listener is closed. */
  close(): Promise<void> {
    if (this.state !== 'listening') {
      this.state = 'closed';
      return Promise.resolve();
    }
    this.state = 'closed';
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
      this.cap.destroyAll();
    });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    res.shouldKeepAlive = false;
    // A throw here would escape into the http server and take the agent down: a request
    // target that is not a URL is just another request this server does not serve.
    const url = URL.canParse(req.url ?? '', 'http://presence.invalid') ? new URL(req.url ?? '', 'http://presence.invalid') : undefined;
    const nonce = url?.searchParams.get('nonce') ?? null;
    const from = url?.searchParams.get('from') ?? null;
    if (req.method !== 'GET' || url?.pathname !== PRESENCE_PATH || nonce === null || from === null || !PRESENCE_NONCE.test(nonce) || !NODE_NAME.test(from)) {
      res.writeHead(404, { 'content-length': 0 }).end();
      return;
    }
    let answerJson: string;
    try {
      // The name comes from this server's own configuration, never from describe(): what the
      // proof commits to and what the answer says must be the same node.
      const answer: PresenceAnswer = { ...this.opts.describe(), node: this.opts.self };
      answerJson = JSON.stringify(answer);
    } catch (err) {
      if (!this.describeFailed) this.log.error({ code: 'TANDEM_ERR_INTERNAL', err }, 'presence: cannot describe this node; probes get 500');
      this.describeFailed = true;
      res.writeHead(500, { 'content-length': 0 }).end();
      return;
    }
    this.describeFailed = false;
    const proof = presenceProof(this.presenceKey, { pair: this.opts.pair, node: this.opts.self, nonce, answerJson }).toString('hex');
    const body = `{"answer":${answerJson},"proof":"${proof}"}`;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' }).end(body);
  }
}
