import crypto from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import {
  AUTH_HEADERS,
  AUTH_MAX_SKEW_MS,
  checkClientAuth,
  clientAuthHeaders,
  clientProof,
  makeClientClaim,
  serverAuthHeaderLines,
  serverAuthProblem,
  type AuthExpectation,
} from '../../../agent/channel/channel-auth.ts';
import { ReplayCache } from '../../../agent/channel/replay-cache.ts';
import { FakeClock } from '../../../shared/clock.ts';

const KEY = crypto.randomBytes(32);
const EXPECT: AuthExpectation = { key: KEY, pair: 'demo', self: 'alpha', peer: 'beta' };

function setup() {
  const clock = new FakeClock();
  return { clock, replay: new ReplayCache(clock) };
}

/** Headers as Node's parser gives them: lower-case names. */
function headersOf(h: Record<string, string>): IncomingHttpHeaders {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
}

function signed(clock: FakeClock, over: { pair?: string; node?: string; to?: string; key?: Buffer; timeMs?: number } = {}) {
  const claim = makeClientClaim(over.pair ?? 'demo', over.node ?? 'beta', over.to ?? 'alpha', over.timeMs ?? clock.now());
  return { claim, headers: headersOf(clientAuthHeaders(over.key ?? KEY, claim)) };
}

describe('checkClientAuth', () => {
  it('accepts headers signed with the pair key by the expected peer', () => {
    const { clock, replay } = setup();
    const { claim, headers } = signed(clock);
    const v = checkClientAuth(headers, EXPECT, clock.now(), replay);
    expect(v).toEqual({ ok: true, claim });
  });

  it('refuses headers signed with another key as AUTH_FAILED with status 401', () => {
    const { clock, replay } = setup();
    const v = checkClientAuth(signed(clock, { key: crypto.randomBytes(32) }).headers, EXPECT, clock.now(), replay);
    expect(v).toMatchObject({ ok: false, code: 'TANDEM_ERR_AUTH_FAILED', status: 401, claimedNode: 'beta' });
  });

  it.each([
    [AUTH_HEADERS.node, 'gamma'],
    [AUTH_HEADERS.to, 'delta'],
    [AUTH_HEADERS.pair, 'other'],
    [AUTH_HEADERS.time, '1700000000001'],
    [AUTH_HEADERS.nonce, '00'.repeat(32)],
  ])('refuses a request whose %s was changed after signing as AUTH_FAILED', (name, value) => {
    const { clock, replay } = setup();
    const { headers } = signed(clock);
    headers[name] = value;
    expect(checkClientAuth(headers, EXPECT, clock.now(), replay)).toMatchObject({ ok: false, code: 'TANDEM_ERR_AUTH_FAILED', status: 401 });
  });

  it.each([
    ['another pair id', { pair: 'other' }, /pair "other"/],
    ['another node name', { node: 'gamma' }, /node "gamma", expected "beta"/],
    ['another target node', { to: 'delta' }, /reach node "delta"/],
  ])('refuses a valid proof with %s as PEER_UNEXPECTED with status 403', (_what, over, reason) => {
    const { clock, replay } = setup();
    const v = checkClientAuth(signed(clock, over).headers, EXPECT, clock.now(), replay);
    expect(v).toMatchObject({ ok: false, code: 'TANDEM_ERR_PEER_UNEXPECTED', status: 403 });
    if (!v.ok) expect(v.reason).toMatch(reason);
  });

  it('refuses a client whose TLS identity is not the node it claims', () => {
    const { clock, replay } = setup();
    const v = checkClientAuth(signed(clock).headers, { ...EXPECT, tlsIdentity: 'gamma' }, clock.now(), replay);
    expect(v).toMatchObject({ ok: false, code: 'TANDEM_ERR_PEER_UNEXPECTED', status: 403 });
    expect(checkClientAuth(signed(clock).headers, { ...EXPECT, tlsIdentity: 'beta' }, clock.now(), replay).ok).toBe(true);
  });

  it('accepts a timestamp just inside five minutes either way and refuses one just outside', () => {
    const { clock, replay } = setup();
    const now = clock.now();
    expect(checkClientAuth(signed(clock, { timeMs: now - AUTH_MAX_SKEW_MS }).headers, EXPECT, now, replay).ok).toBe(true);
    expect(checkClientAuth(signed(clock, { timeMs: now + AUTH_MAX_SKEW_MS }).headers, EXPECT, now, replay).ok).toBe(true);
    const late = checkClientAuth(signed(clock, { timeMs: now - AUTH_MAX_SKEW_MS - 1 }).headers, EXPECT, now, replay);
    expect(late).toMatchObject({ ok: false, code: 'TANDEM_ERR_AUTH_FAILED' });
    if (!late.ok) expect(late.reason).toContain('check both clocks');
    expect(checkClientAuth(signed(clock, { timeMs: now + AUTH_MAX_SKEW_MS + 1 }).headers, EXPECT, now, replay).ok).toBe(false);
  });

  it('refuses a replayed request (same nonce) even within the allowed skew', () => {
    const { clock, replay } = setup();
    const { headers } = signed(clock);
    expect(checkClientAuth(headers, EXPECT, clock.now(), replay).ok).toBe(true);
    clock.advance(1_000);
    const again = checkClientAuth({ ...headers }, EXPECT, clock.now(), replay);
    expect(again).toMatchObject({ ok: false, code: 'TANDEM_ERR_AUTH_FAILED', status: 401 });
    if (!again.ok) expect(again.reason).toContain('replayed');
    // Once it could no longer be remembered, its timestamp is long out of the window.
    clock.advance(11 * 60_000);
    const stale = checkClientAuth({ ...headers }, EXPECT, clock.now(), replay);
    expect(stale.ok).toBe(false);
    if (!stale.ok) expect(stale.reason).toContain('clock');
  });

  it('does not remember the nonce of a refused request', () => {
    const { clock, replay } = setup();
    checkClientAuth(signed(clock, { key: crypto.randomBytes(32) }).headers, EXPECT, clock.now(), replay);
    checkClientAuth(signed(clock, { node: 'gamma' }).headers, EXPECT, clock.now(), replay);
    expect(replay.size).toBe(0);
  });

  it('refuses missing, repeated or malformed headers as AUTH_FAILED', () => {
    const { clock, replay } = setup();
    const { headers } = signed(clock);
    const cases: IncomingHttpHeaders[] = [
      {},
      { ...headers, [AUTH_HEADERS.proof]: undefined },
      { ...headers, [AUTH_HEADERS.proof]: 'zz' },
      { ...headers, [AUTH_HEADERS.nonce]: 'short' },
      { ...headers, [AUTH_HEADERS.time]: 'soon' },
      { ...headers, [AUTH_HEADERS.node]: 'bad name with spaces' },
      { ...headers, 'set-cookie': ['a'], [AUTH_HEADERS.pair]: undefined },
    ];
    for (const h of cases) expect(checkClientAuth(h, EXPECT, clock.now(), replay)).toMatchObject({ ok: false, code: 'TANDEM_ERR_AUTH_FAILED', status: 401 });
  });

  it('commits to each field, not to their concatenation', () => {
    const nonce = crypto.randomBytes(32);
    const a = clientProof(KEY, { pair: 'demo', node: 'ab', to: 'c', nonce, timeMs: 1 });
    const b = clientProof(KEY, { pair: 'demo', node: 'a', to: 'bc', nonce, timeMs: 1 });
    expect(a.equals(b)).toBe(false);
  });

  it('never puts the key in the headers', () => {
    const { clock } = setup();
    const text = JSON.stringify(signed(clock).headers);
    expect(text).not.toContain(KEY.toString('hex'));
    expect(text).not.toContain(KEY.toString('base64'));
  });
});

describe('serverAuthProblem', () => {
  const clientNonce = crypto.randomBytes(32);
  const expectation = { key: KEY, pair: 'demo', peer: 'alpha', clientNonce };

  function responseHeaders(lines: string[]): IncomingHttpHeaders {
    return Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 2)]));
  }

  it('accepts the proof of the expected server bound to our nonce', () => {
    expect(serverAuthProblem(responseHeaders(serverAuthHeaderLines(KEY, 'demo', 'alpha', clientNonce)), expectation)).toBeUndefined();
  });

  it('refuses a response without a proof', () => {
    expect(serverAuthProblem({}, expectation)).toContain('no proof');
  });

  it.each([
    ['made with another key', () => serverAuthHeaderLines(crypto.randomBytes(32), 'demo', 'alpha', clientNonce)],
    ['of another node', () => serverAuthHeaderLines(KEY, 'demo', 'gamma', clientNonce)],
    ['of another pair', () => serverAuthHeaderLines(KEY, 'other', 'alpha', clientNonce)],
    ['bound to another client nonce (a replayed response)', () => serverAuthHeaderLines(KEY, 'demo', 'alpha', crypto.randomBytes(32))],
  ])('refuses a proof %s', (_what, lines) => {
    expect(serverAuthProblem(responseHeaders(lines()), expectation)).toContain('does not match');
  });

  it('refuses a malformed proof', () => {
    expect(serverAuthProblem({ [AUTH_HEADERS.serverNonce]: 'x', [AUTH_HEADERS.serverProof]: 'y' }, expectation)).toContain('malformed');
  });
});
