// The presence answer and its proof: pure functions over keys and strings. A prober must not
// take "something answered on that port" for "the peer agent is there", so every answer is
// signed with a key derived from the pair key and bound to the prober's fresh nonce.
import crypto from 'node:crypto';
import { NODE_NAME } from './link-options.ts';

/** What an agent says about itself when probed. New fields may be added; old probers ignore them. */
export interface PresenceAnswer {
  node: string;
  role: 'active' | 'passive';
  /** The node's generation/epoch counter, so the peer sees a promotion it missed. */
  epoch: number;
  /** True while the node runs its start script's services (holds the public identity). */
  serving: boolean;
  /** The answering node's own public checks. */
  publicState: 'unknown' | 'ok' | 'failing';
  /** The answering node's clock.now() when it answered. */
  at: number;
  [extra: string]: unknown;
}

export const PRESENCE_PATH = '/presence';

/** 16 to 64 lower-case hex digits. */
export const PRESENCE_NONCE = /^[0-9a-f]{16,64}$/;

/** Bytes of nonce a prober sends (32 hex digits). */
export const PRESENCE_NONCE_BYTES = 16;

const DOMAIN = 'presence';
const PROOF_HEX = /^[0-9a-f]{64}$/;

/**
 * The key that signs presence answers: HKDF-SHA256(pair key, salt empty, info
 * "tandem presence v1 <pair>"), so it is never the channel's key or the TLS PSK, and two pairs
 * sharing a key file still sign differently.
 */
export function derivePresenceKey(pairKey: Buffer, pair: string): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', pairKey, Buffer.alloc(0), `tandem presence v1 ${pair}`, 32));
}

/** Length-prefixed fields, as in the channel's proofs: no two field lists give the same bytes. */
function framed(fields: string[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of fields) {
    const b = Buffer.from(f, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    parts.push(len, b);
  }
  return Buffer.concat(parts);
}

/**
 * HMAC-SHA256(presence key, "presence" | pair | node | nonce | answerJson). `answerJson` is
 * JSON.stringify of the answer object: the prober re-serialises what it parsed, which gives the
 * same text for anything JSON.stringify produced.
 */
export function presenceProof(presenceKey: Buffer, f: { pair: string; node: string; nonce: string; answerJson: string }): Buffer {
  return crypto.createHmac('sha256', presenceKey).update(framed([DOMAIN, f.pair, f.node, f.nonce, f.answerJson])).digest();
}

export type PresenceCheck =
  | { ok: true; answer: PresenceAnswer }
  | {
      ok: false;
      /** AUTH_FAILED: no valid proof; PEER_UNEXPECTED: a valid proof from another node; PROTOCOL: not a presence answer. */
      code: 'TANDEM_ERR_AUTH_FAILED' | 'TANDEM_ERR_PEER_UNEXPECTED' | 'TANDEM_ERR_PROTOCOL';
      reason: string;
    };

const ROLES = new Set(['active', 'passive']);
const PUBLIC_STATES = new Set(['unknown', 'ok', 'failing']);

/**
 * Checks a presence answer body against what the prober asked. The proof is checked with the
 * node the answer names, before comparing that node with the expected peer, so
 * PEER_UNEXPECTED always means "holds the key but is another node" (a configuration mistake)
 * and AUTH_FAILED "could not prove it holds the key".
 */
export function checkPresenceBody(body: string, expect: { presenceKey: Buffer; pair: string; peer: string; nonce: string }): PresenceCheck {
  const protocol = (reason: string): PresenceCheck => ({ ok: false, code: 'TANDEM_ERR_PROTOCOL', reason });
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return protocol('the answer is not JSON');
  }
  if (!isRecord(parsed) || !isRecord(parsed.answer) || typeof parsed.proof !== 'string') return protocol('the answer has no answer object and proof');
  const answer = parsed.answer;
  const node = answer.node;
  if (typeof node !== 'string' || !NODE_NAME.test(node)) return protocol('the answer names no valid node');
  if (!PROOF_HEX.test(parsed.proof)) return protocol('the proof is not 32 bytes of hex');
  const expected = presenceProof(expect.presenceKey, { pair: expect.pair, node, nonce: expect.nonce, answerJson: JSON.stringify(answer) });
  if (!crypto.timingSafeEqual(expected, Buffer.from(parsed.proof, 'hex'))) {
    return { ok: false, code: 'TANDEM_ERR_AUTH_FAILED', reason: 'the proof does not match: the answering agent does not hold this pair key, or the answer is not for this probe' };
  }
  if (node !== expect.peer) return { ok: false, code: 'TANDEM_ERR_PEER_UNEXPECTED', reason: `the answering agent is node ${JSON.stringify(node)}, expected ${JSON.stringify(expect.peer)}` };
  if (!ROLES.has(answer.role as string)) return protocol('the answer has no valid role');
  if (typeof answer.epoch !== 'number' || !Number.isFinite(answer.epoch)) return protocol('the answer has no valid epoch');
  if (typeof answer.serving !== 'boolean') return protocol('the answer has no valid serving flag');
  if (!PUBLIC_STATES.has(answer.publicState as string)) return protocol('the answer has no valid publicState');
  if (typeof answer.at !== 'number' || !Number.isFinite(answer.at)) return protocol('the answer has no valid time');
  return { ok: true, answer: answer as PresenceAnswer };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
