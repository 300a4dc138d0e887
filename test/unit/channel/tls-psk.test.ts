import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TLS_PSK_CIPHERS, derivePsk, tlsPskClientOptions } from '../../../agent/channel/tls-psk.ts';

describe('derivePsk', () => {
  const key = crypto.randomBytes(32);

  it('derives the same 32-byte key on both nodes, and not the raw pair key', () => {
    const a = derivePsk(key, 'demo');
    expect(a).toHaveLength(32);
    expect(a.equals(derivePsk(Buffer.from(key), 'demo'))).toBe(true);
    expect(a.equals(key)).toBe(false);
  });

  it('derives a different key for another pair id or another pair key', () => {
    expect(derivePsk(key, 'demo').equals(derivePsk(key, 'other'))).toBe(false);
    expect(derivePsk(key, 'demo').equals(derivePsk(crypto.randomBytes(32), 'demo'))).toBe(false);
  });

  it('matches HKDF-SHA256 with the documented info string', () => {
    const expected = Buffer.from(crypto.hkdfSync('sha256', key, Buffer.alloc(0), 'tandem tls-psk v1 demo', 32));
    expect(derivePsk(key, 'demo').equals(expected)).toBe(true);
  });
});

describe('tlsPskClientOptions', () => {
  it('offers TLS 1.3 with its two SHA-256 suites, TLS 1.2 only with ECDHE-PSK, elliptic-curve groups only, and presents this node as the identity', () => {
    const psk = crypto.randomBytes(32);
    const o = tlsPskClientOptions(psk, 'beta');
    expect(o).toMatchObject({ ciphers: TLS_PSK_CIPHERS, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', ecdhCurve: 'X25519:P-256:P-384' });
    expect(o.pskCallback?.('alpha')).toEqual({ psk, identity: 'beta' });
    expect(TLS_PSK_CIPHERS).toBe('TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:ECDHE-PSK-CHACHA20-POLY1305');
    expect(TLS_PSK_CIPHERS).not.toMatch(/DHE-PSK-AES|^DHE|:DHE/);
  });
});
