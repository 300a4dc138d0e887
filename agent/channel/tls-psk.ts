// TLS with a pre-shared key (RFC 4279) and no certificates: both nodes already share the pair
// key, so a PKI would only add files to copy and dates to expire. Pinned to TLS 1.2: the two
// suites are RFC 4279/5489 TLS 1.2 suites, and this exact setup is the one measured with ws
// (PACKAGES.md). Both have forward secrecy (ephemeral DH or ECDH mixed with the PSK) and an
// AEAD cipher; a wrong key fails inside the TLS handshake, before any HTTP byte is read.
import crypto from 'node:crypto';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { ConnectionOptions, TLSSocket } from 'node:tls';

export const TLS_PSK_CIPHERS = 'DHE-PSK-AES128-GCM-SHA256:DHE-PSK-AES256-GCM-SHA384:ECDHE-PSK-CHACHA20-POLY1305';

const TLS_VERSION = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' } as const;

/**
 * The TLS key, derived rather than the raw pair key: the raw key also signs the upgrade
 * challenge, and one key should serve one purpose. The pair id in `info` gives each pair its
 * own PSK even if a key file were copied between pairs.
 */
export function derivePsk(key: Buffer, pair: string): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', key, Buffer.alloc(0), `tandem tls-psk v1 ${pair}`, 32));
}

/**
 * Server options. Any PSK identity gets the key: holding the key is what TLS checks, and the
 * identity is checked after the handshake against the node name in the (HMAC-signed) upgrade,
 * so a misnamed node that holds the key is reported as such (PEER_UNEXPECTED) instead of as a
 * wrong key. `onIdentity` records the identity for that check.
 */
export function tlsPskServerOptions(
  psk: Buffer,
  self: string,
  handshakeTimeoutMs: number,
  onIdentity: (socket: TLSSocket, identity: string) => void,
): HttpsServerOptions {
  return {
    ciphers: TLS_PSK_CIPHERS,
    ...TLS_VERSION,
    dhparam: 'auto',
    ecdhCurve: 'auto',
    pskIdentityHint: self,
    handshakeTimeout: handshakeTimeoutMs,
    pskCallback: (socket: TLSSocket, identity: string) => {
      onIdentity(socket, identity);
      return psk;
    },
  };
}

/** Client options, for `tls.connect` over an already created TCP socket. */
export function tlsPskClientOptions(psk: Buffer, self: string): ConnectionOptions {
  return {
    ciphers: TLS_PSK_CIPHERS,
    ...TLS_VERSION,
    // No certificate to check: the PSK handshake itself authenticates the server.
    checkServerIdentity: () => undefined,
    pskCallback: () => ({ psk, identity: self }),
  };
}
