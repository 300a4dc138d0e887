import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkPresenceBody, derivePresenceKey, presenceProof, type PresenceAnswer } from '../../../agent/links/presence-proof.ts';
import { derivePsk } from '../../../agent/channel/tls-psk.ts';

const PAIR_KEY = Buffer.alloc(32, 7);
const PAIR = 'web';
const KEY = derivePresenceKey(PAIR_KEY, PAIR);
const NONCE = 'a1'.repeat(16);
const ANSWER: PresenceAnswer = { node: 'beta', role: 'active', epoch: 3, serving: true, publicState: 'ok', at: 1_700_000_000_000 };

/** A body as the presence server writes it, signed by `node` with `key` for `nonce`. */
function body(answer: Record<string, unknown>, opts: { key?: Buffer; node?: string; nonce?: string } = {}): string {
  const answerJson = JSON.stringify(answer);
  const proof = presenceProof(opts.key ?? KEY, { pair: PAIR, node: opts.node ?? String(answer.node), nonce: opts.nonce ?? NONCE, answerJson });
  return JSON.stringify({ answer, proof: proof.toString('hex') });
}

const expectFor = (peer = 'beta', nonce = NONCE) => ({ presenceKey: KEY, pair: PAIR, peer, nonce });

describe('presence proof', () => {
  it('derives a key of its own, unlike the pair key and the channel PSK, and different per pair', () => {
    expect(KEY).toHaveLength(32);
    expect(KEY.equals(PAIR_KEY)).toBe(false);
    expect(KEY.equals(derivePsk(PAIR_KEY, PAIR))).toBe(false);
    expect(KEY.equals(derivePresenceKey(PAIR_KEY, 'other'))).toBe(false);
  });

  it('accepts a signed answer from the expected node, keeping fields it does not know', () => {
    const r = checkPresenceBody(body({ ...ANSWER, lagMs: 12 }), expectFor());
    expect(r).toEqual({ ok: true, answer: { ...ANSWER, lagMs: 12 } });
  });

  it('refuses a proof made for another nonce (a replayed answer)', () => {
    const r = checkPresenceBody(body(ANSWER, { nonce: 'b2'.repeat(16) }), expectFor());
    expect(r).toMatchObject({ ok: false, code: 'TANDEM_ERR_AUTH_FAILED' });
  });

  it('refuses an answer signed with another key', () => {
    const other = derivePresenceKey(crypto.randomBytes(32), PAIR);
    expect(checkPresenceBody(body(ANSWER, { key: other }), expectFor())).toMatchObject({ ok: false, code: 'TANDEM_ERR_AUTH_FAILED' });
  });

  it('refuses an answer altered after it was signed', () => {
    const tampered = body(ANSWER).replace('"serving":true', '"serving":false');
    expect(checkPresenceBody(tampered, expectFor())).toMatchObject({ ok: false, code: 'TANDEM_ERR_AUTH_FAILED' });
  });

  it('refuses a node that renames itself in the answer without re-signing', () => {
    expect(checkPresenceBody(body({ ...ANSWER, node: 'beta' }, { node: 'gamma' }), expectFor())).toMatchObject({ ok: false, code: 'TANDEM_ERR_AUTH_FAILED' });
  });

  it('tells a key holder that is another node (PEER_UNEXPECTED) from one without the key', () => {
    const r = checkPresenceBody(body({ ...ANSWER, node: 'gamma' }), expectFor('beta'));
    expect(r).toMatchObject({ ok: false, code: 'TANDEM_ERR_PEER_UNEXPECTED' });
    if (!r.ok) expect(r.reason).toContain('"gamma"');
  });

  it.each([
    ['not JSON', 'hello'],
    ['no proof', JSON.stringify({ answer: ANSWER })],
    ['a short proof', JSON.stringify({ answer: ANSWER, proof: 'ab' })],
    ['an array', '[]'],
    ['no node', body({ ...ANSWER, node: undefined })],
    ['a bad role', body({ ...ANSWER, role: 'boss' })],
    ['a string epoch', body({ ...ANSWER, epoch: '3' })],
    ['a bad publicState', body({ ...ANSWER, publicState: 'fine' })],
  ])('calls an answer with %s a protocol error', (_what, text) => {
    expect(checkPresenceBody(text, expectFor())).toMatchObject({ ok: false, code: 'TANDEM_ERR_PROTOCOL' });
  });
});
