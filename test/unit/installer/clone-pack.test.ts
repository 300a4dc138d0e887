import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generatePairKey } from '../../../shared/pair-key.ts';
import { generatePackCode, normalizePackCode, openPack, readPackHeader, sealPack, type PackPayload } from '../../../installer/clone-pack.ts';
import { refusal } from '../../helpers/refusal.ts';

let dir = '';
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-pack-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const payload: PackPayload = {
  pair: 'shop',
  from: 'alpha',
  to: 'beta',
  nodes: { alpha: { channel: '10.0.0.1:7700', control: '127.0.0.1:7701' }, beta: { channel: '10.0.0.2:7700', control: '127.0.0.1:7701' } },
  protect: [{ name: 'data', path: '/srv/data', exclude: [] }],
  modules: [{ module: 'vip', address: '192.0.2.10/24', arpCount: 3 }],
  publicTargets: [],
  settings: {},
};

function write(text: string): string {
  const f = path.join(dir, 'pair.pack');
  fs.writeFileSync(f, text);
  return f;
}

describe('the clone pack', () => {
  it('opens with its code, giving the pair key and the payload back', () => {
    const key = generatePairKey();
    const code = generatePackCode();
    expect(code).toMatch(/^[0-9A-Z]{5}(-[0-9A-Z]{5}){3}$/);
    const f = write(sealPack(payload, key, code, { tandem: '0.1.0', now: new Date(0) }));
    const opened = openPack(f, { code: code.toLowerCase().replace(/-/g, ' ') });
    expect(opened.pairKey.equals(key)).toBe(true);
    expect(opened.payload).toEqual(payload);
    expect(opened.header).toMatchObject({ pair: 'shop', from: 'alpha', to: 'beta', tandem: '0.1.0' });
  });

  it('opens with the pair key instead of the code', () => {
    const key = generatePairKey();
    const f = write(sealPack(payload, key, 'a passphrase of our own', { tandem: '0.1.0', now: new Date() }));
    expect(openPack(f, { pairKey: key }).payload.pair).toBe('shop');
  });

  it('carries neither the key nor the payload in the clear', () => {
    const key = generatePairKey();
    const text = sealPack(payload, key, generatePackCode(), { tandem: '0.1.0', now: new Date() });
    expect(text).not.toContain(key.toString('hex'));
    expect(text).not.toContain(key.toString('base64'));
    expect(text).not.toContain('192.0.2.10');
  });

  it('refuses a wrong code, a wrong key, a changed header and a changed body', () => {
    const key = generatePairKey();
    const code = generatePackCode();
    const text = sealPack(payload, key, code, { tandem: '0.1.0', now: new Date() });
    const f = write(text);
    expect(refusal(() => openPack(f, { code: generatePackCode() })).code).toBe('TANDEM_ERR_PACK_INVALID');
    expect(refusal(() => openPack(f, { pairKey: generatePairKey() })).reason).toMatch(/not sealed with this pair key/);
    const env = JSON.parse(text);
    // Another pair's name on the same seal: the header is bound to it.
    expect(refusal(() => openPack(write(JSON.stringify({ ...env, pair: 'bank' })), { code })).code).toBe('TANDEM_ERR_PACK_INVALID');
    const body = Buffer.from(env.body, 'base64');
    body[20] = body[20]! ^ 1;
    expect(refusal(() => openPack(write(JSON.stringify({ ...env, body: body.toString('base64') })), { pairKey: key })).code).toBe('TANDEM_ERR_PACK_INVALID');
  });

  it('refuses what is not a pack, and a key derivation it does not use (no memory bomb from the file)', () => {
    expect(refusal(() => readPackHeader(write('hello'))).reason).toMatch(/not a clone pack/);
    expect(refusal(() => readPackHeader(write('{"tandemClonePack":2}'))).reason).toMatch(/format 1/);
    const env = JSON.parse(sealPack(payload, generatePairKey(), 'x'.repeat(16), { tandem: '0.1.0', now: new Date() }));
    expect(refusal(() => readPackHeader(write(JSON.stringify({ ...env, kdf: { ...env.kdf, N: 2 ** 30 } })))).reason).toMatch(/key derivation/);
    const big = path.join(dir, 'big.pack');
    fs.writeFileSync(big, Buffer.alloc(2 * 1024 * 1024, 32));
    expect(refusal(() => readPackHeader(big)).reason).toMatch(/larger than/);
  });

  it('reads a code as typed: case, spaces, dashes and the look-alikes O/0, I/L/1 do not matter', () => {
    expect(normalizePackCode('7kq2m-abcd0 o1il')).toBe(normalizePackCode('7KQ2MABCD00111'));
  });
});
