// The HMAC challenge carried by the WebSocket upgrade: pure functions over headers, keys and
// times, so every rule is unit-tested without a socket. The client proves it holds the pair key
// and says who it is and whom it expects; the server answers with its own proof bound to the
// client's nonce, so neither side talks to something that merely accepted a TCP connection.
// It runs in both encryption modes; with 'none' it is the only authentication.
import crypto from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { ErrorCode } from '../../shared/errors.ts';
import type { ReplayCache } from './replay-cache.ts';

export const AUTH_HEADERS = {
  pair: 'x-tandem-pair',
  node: 'x-tandem-node',
  to: 'x-tandem-to',
  nonce: 'x-tandem-nonce',
  time: 'x-tandem-time',
  proof: 'x-tandem-proof',
  serverNonce: 'x-tandem-server-nonce',
  serverProof: 'x-tandem-server-proof',
} as const;

/** Largest accepted difference between the client's timestamp and the server's clock. */
export const AUTH_MAX_SKEW_MS = 5 * 60_000;

export const NONCE_BYTES = 32;

const CLIENT_DOMAIN = 'tandem channel v1 client';
const SERVER_DOMAIN = 'tandem channel v1 server';
const PROOF_HEX = /^[0-9a-f]{64}$/;
const NAME = /^[A-Za-z0-9._-]{1,64}$/;
const TIME = /^\d{1,16}$/;

/** What the client claims in its upgrade request. */
export interface ClientClaim {
  pair: string;
  /** The client's own node name. */
  node: string;
  /** The node the client means to reach. */
  to: string;
  nonce: Buffer;
  /** Wall-clock milliseconds when the request was made. */
  timeMs: number;
}

/**
 * Length-prefixed fields, so that no two different field lists give the same bytes
 * ("ab"+"c" vs "a"+"bc"): the proof must commit to each field, not to their concatenation.
 */
function framed(fields: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of fields) {
    const b = typeof f === 'string' ? Buffer.from(f, 'utf8') : f;
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    parts.push(len, b);
  }
  return Buffer.concat(parts);
}

function hmac(key: Buffer, data: Buffer): Buffer {
  return crypto.createHmac('sha256', key).update(data).digest();
}

export function clientProof(key: Buffer, c: ClientClaim): Buffer {
  return hmac(key, framed([CLIENT_DOMAIN, c.pair, c.node, c.to, c.nonce, String(c.timeMs)]));
}

export function serverProof(key: Buffer, s: { pair: string; node: string; clientNonce: Buffer; serverNonce: Buffer }): Buffer {
  return hmac(key, framed([SERVER_DOMAIN, s.pair, s.node, s.clientNonce, s.serverNonce]));
}

export function makeClientClaim(pair: string, node: string, to: string, nowMs: number, nonce = crypto.randomBytes(NONCE_BYTES)): ClientClaim {
  return { pair, node, to, nonce, timeMs: nowMs };
}

/** The request headers a client sends to prove itself. */
export function clientAuthHeaders(key: Buffer, c: ClientClaim): Record<string, string> {
  return {
    [AUTH_HEADERS.pair]: c.pair,
    [AUTH_HEADERS.node]: c.node,
    [AUTH_HEADERS.to]: c.to,
    [AUTH_HEADERS.nonce]: c.nonce.toString('hex'),
    [AUTH_HEADERS.time]: String(c.timeMs),
    [AUTH_HEADERS.proof]: clientProof(key, c).toString('hex'),
  };
}

/** The response headers a server adds to a successful upgrade (as raw "Name: value" lines for ws). */
export function serverAuthHeaderLines(key: Buffer, pair: string, node: string, clientNonce: Buffer, serverNonce = crypto.randomBytes(NONCE_BYTES)): string[] {
  const proof = serverProof(key, { pair, node, clientNonce, serverNonce });
  return [`${AUTH_HEADERS.serverNonce}: ${serverNonce.toString('hex')}`, `${AUTH_HEADERS.serverProof}: ${proof.toString('hex')}`];
}

export type AuthVerdict =
  | { ok: true; claim: ClientClaim }
  | {
      ok: false;
      code: Extract<ErrorCode, 'TANDEM_ERR_AUTH_FAILED' | 'TANDEM_ERR_PEER_UNEXPECTED'>;
      /** 401: no valid proof; 403: a valid proof from a node this pair does not expect. */
      status: 401 | 403;
      reason: string;
      /** The node name the client claimed, when it sent one (for the log line). */
      claimedNode?: string;
    };

export interface AuthExpectation {
  key: Buffer;
  pair: string;
  /** The server's own node name. */
  self: string;
  /** The only node allowed to connect. */
  peer: string;
  /** With TLS-PSK: the identity the client gave in the TLS handshake; it must match its claim. */
  tlsIdentity?: string | undefined;
}

function single(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return typeof v === 'string' ? v : undefined;
}

const refuse = (reason: string, claimedNode?: string): AuthVerdict => ({
  ok: false,
  code: 'TANDEM_ERR_AUTH_FAILED',
  status: 401,
  reason,
  ...(claimedNode === undefined ? {} : { claimedNode }),
});
const unexpected = (reason: string, claimedNode: string): AuthVerdict => ({ ok: false, code: 'TANDEM_ERR_PEER_UNEXPECTED', status: 403, reason, claimedNode });

/**
 * Checks a client's upgrade headers. Order matters: the proof is checked before the names, so
 * PEER_UNEXPECTED always means "holds the key but is not the node we expect" (a configuration
 * mistake), and AUTH_FAILED means "could not prove it holds the key" (wrong key or an impostor).
 * The nonce is remembered only once everything else passed, so garbage cannot fill the cache.
 */
export function checkClientAuth(headers: IncomingHttpHeaders, expect: AuthExpectation, nowMs: number, replay: ReplayCache): AuthVerdict {
  const pair = single(headers, AUTH_HEADERS.pair);
  const node = single(headers, AUTH_HEADERS.node);
  const to = single(headers, AUTH_HEADERS.to);
  const nonceHex = single(headers, AUTH_HEADERS.nonce);
  const time = single(headers, AUTH_HEADERS.time);
  const proofHex = single(headers, AUTH_HEADERS.proof);
  if (pair === undefined || node === undefined || to === undefined || nonceHex === undefined || time === undefined || proofHex === undefined) {
    return refuse('no authentication headers: not a Tandem peer');
  }
  if (!NAME.test(pair) || !NAME.test(node) || !NAME.test(to) || !PROOF_HEX.test(nonceHex) || !TIME.test(time) || !PROOF_HEX.test(proofHex)) {
    return refuse('malformed authentication headers');
  }
  const claim: ClientClaim = { pair, node, to, nonce: Buffer.from(nonceHex, 'hex'), timeMs: Number(time) };
  const expected = clientProof(expect.key, claim);
  if (!crypto.timingSafeEqual(expected, Buffer.from(proofHex, 'hex'))) {
    return refuse('the proof does not match: the client does not hold this pair key', node);
  }
  if (pair !== expect.pair) return unexpected(`the client belongs to pair ${JSON.stringify(pair)}, not ${JSON.stringify(expect.pair)}`, node);
  if (node !== expect.peer) return unexpected(`the client is node ${JSON.stringify(node)}, expected ${JSON.stringify(expect.peer)}`, node);
  if (to !== expect.self) return unexpected(`the client wants to reach node ${JSON.stringify(to)}, this is ${JSON.stringify(expect.self)}`, node);
  if (expect.tlsIdentity !== undefined && expect.tlsIdentity !== node) {
    return unexpected(`the client's TLS identity ${JSON.stringify(expect.tlsIdentity)} differs from its node name ${JSON.stringify(node)}`, node);
  }
  const skewMs = nowMs - claim.timeMs;
  if (Math.abs(skewMs) > AUTH_MAX_SKEW_MS) {
    return refuse(`the request is ${Math.round(skewMs / 1000)} s away from this node's clock (limit ${AUTH_MAX_SKEW_MS / 1000} s): check both clocks`, node);
  }
  const seen = replay.remember(nonceHex);
  if (seen === 'replayed') return refuse('the nonce was already used: a replayed handshake', node);
  if (seen === 'full') return refuse('too many handshakes in the replay window', node);
  return { ok: true, claim };
}

/** Undefined when the server's upgrade response proves it holds the key; otherwise why not. */
export function serverAuthProblem(headers: IncomingHttpHeaders, expect: { key: Buffer; pair: string; peer: string; clientNonce: Buffer }): string | undefined {
  const nonceHex = single(headers, AUTH_HEADERS.serverNonce);
  const proofHex = single(headers, AUTH_HEADERS.serverProof);
  if (nonceHex === undefined || proofHex === undefined) return 'the server sent no proof: not a Tandem peer';
  if (!PROOF_HEX.test(nonceHex) || !PROOF_HEX.test(proofHex)) return 'the server sent a malformed proof';
  const expected = serverProof(expect.key, { pair: expect.pair, node: expect.peer, clientNonce: expect.clientNonce, serverNonce: Buffer.from(nonceHex, 'hex') });
  if (!crypto.timingSafeEqual(expected, Buffer.from(proofHex, 'hex'))) {
    return `the server's proof does not match: it does not hold this pair key or is not node ${JSON.stringify(expect.peer)}`;
  }
  return undefined;
}
