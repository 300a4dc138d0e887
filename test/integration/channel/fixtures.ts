// A pair of channel configurations on the loopback interface, and the clients tests need:
// a real dial (through dialPeer) and a raw one that authenticates like a peer but then writes
// whatever frames a test wants straight through ws.
import crypto from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import WebSocket from 'ws';
import { ChannelServer, type ChannelEncryption, type ChannelServerOptions, type PeerConnection } from '../../../agent/channel/index.ts';
import { AUTH_HEADERS, clientAuthHeaders, makeClientClaim, type ClientClaim } from '../../../agent/channel/channel-auth.ts';
import { dialPeer, type DialFailure, type DialTarget } from '../../../agent/channel/dial-peer.ts';
import type { ChannelCloseInfo } from '../../../agent/channel/close-reason.ts';
import { derivePsk, tlsPskClientOptions } from '../../../agent/channel/tls-psk.ts';
import type { Logger } from '../../../shared/log.ts';
import type { HelloMessage, Message } from '../../../shared/protocol/messages.ts';

export const PAIR = 'demo';
export const SERVER_NODE = 'alpha';
export const CLIENT_NODE = 'beta';
export const KEY = crypto.randomBytes(32);
export const MAX_FRAME_BYTES = 256 * 1024;

export function serverOptions(log: Logger, encryption: ChannelEncryption, over: Partial<ChannelServerOptions> = {}): ChannelServerOptions {
  return {
    pair: PAIR,
    self: SERVER_NODE,
    peer: CLIENT_NODE,
    key: KEY,
    encryption,
    maxFrameBytes: MAX_FRAME_BYTES,
    handshakeTimeoutMs: 3_000,
    log,
    host: '127.0.0.1',
    port: 0,
    ...over,
  };
}

export function clientTarget(log: Logger, encryption: ChannelEncryption, port: number, over: Partial<DialTarget> = {}): DialTarget {
  return {
    pair: PAIR,
    self: CLIENT_NODE,
    peer: SERVER_NODE,
    key: KEY,
    encryption,
    maxFrameBytes: MAX_FRAME_BYTES,
    handshakeTimeoutMs: 3_000,
    log,
    host: '127.0.0.1',
    port,
    ...over,
  };
}

export function hello(node: string, role: 'active' | 'passive'): HelloMessage {
  return { t: 'hello', proto: 1, pair: PAIR, node, role, generation: 'g1', epoch: 1, serving: false, blockSize: 65_536, headSeq: 10, firstSeq: 1, appliedSeq: 7, syncId: '' };
}

/** A connection with everything it emitted recorded from its first moment. */
export interface Recorded {
  conn: PeerConnection;
  messages: Message[];
  closes: ChannelCloseInfo[];
}

export function record(conn: PeerConnection): Recorded {
  const r: Recorded = { conn, messages: [], closes: [] };
  conn.on('message', (m) => r.messages.push(m));
  conn.on('close', (c) => r.closes.push(c));
  return r;
}

/** A server that records every connection it accepts. */
export async function startServer(opts: ChannelServerOptions): Promise<{ server: ChannelServer; port: number; accepted: Recorded[] }> {
  const server = new ChannelServer(opts);
  const accepted: Recorded[] = [];
  server.on('connection', (conn) => accepted.push(record(conn)));
  const { port } = await server.listen();
  return { server, port, accepted };
}

/** One dial; the connection is recorded before any frame can arrive. */
export function dialOnce(target: DialTarget, log: Logger): Promise<{ ok: true; rec: Recorded } | { ok: false; failure: DialFailure }> {
  return new Promise((resolve) => {
    dialPeer(target, log, (r) => resolve(r.ok ? { ok: true, rec: record(r.conn) } : { ok: false, failure: r.failure }));
  });
}

export interface RawClientOptions {
  port: number;
  encryption: ChannelEncryption;
  key?: Buffer;
  /** The claim to sign; defaults to a fresh one from beta to alpha in the test pair. */
  claim?: ClientClaim;
  /** The TLS-PSK identity; defaults to the claimed node. */
  tlsIdentity?: string;
  /** Header overrides, applied after signing (to forge or drop headers). */
  headers?: Record<string, string | undefined>;
  maxPayload?: number;
}

/**
 * A ws client that authenticates like a peer (or not, as told) and does nothing else: no
 * server proof check, no validation. Resolves with the open socket, or with the HTTP status
 * or error that refused it.
 */
export function rawClient(o: RawClientOptions): Promise<{ ws: WebSocket; status?: undefined; error?: undefined } | { ws?: undefined; status?: number; error?: Error }> {
  const key = o.key ?? KEY;
  const claim = o.claim ?? makeClientClaim(PAIR, CLIENT_NODE, SERVER_NODE, Date.now());
  const headers: Record<string, string> = { ...clientAuthHeaders(key, claim) };
  for (const [k, v] of Object.entries(o.headers ?? {})) {
    if (v === undefined) delete headers[k];
    else headers[k] = v;
  }
  const encrypted = o.encryption === 'tls-psk';
  const ws = new WebSocket(`${encrypted ? 'wss' : 'ws'}://127.0.0.1:${o.port}/`, {
    perMessageDeflate: false,
    headers,
    maxPayload: o.maxPayload ?? 64 * 1024 * 1024,
    createConnection: (() => {
      const socket = net.connect({ host: '127.0.0.1', port: o.port });
      socket.on('error', () => {});
      if (!encrypted) return socket;
      return tls.connect({ ...tlsPskClientOptions(derivePsk(key, claim.pair), o.tlsIdentity ?? claim.node), socket });
    }) as unknown as WebSocket.ClientOptions['createConnection'],
  });
  return new Promise((resolve) => {
    let status: number | undefined;
    ws.on('unexpected-response', (_req, res) => {
      status = res.statusCode;
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => resolve({ ws }));
    ws.on('error', (error) => resolve({ status, error }));
    ws.on('close', () => resolve({ status }));
  });
}

/** Waits for a raw ws to close; resolves with the close code. */
export function closedWith(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) resolve({ code: 1006, reason: '' });
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    ws.on('error', () => {});
  });
}

export { AUTH_HEADERS, makeClientClaim };
