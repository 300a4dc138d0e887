// TLS with a pre-shared key and no certificates: both nodes already share the pair key, so a PKI
// would only add files to copy and dates to expire. TLS 1.3 first, whose PSK mode mixes an
// ephemeral (EC)DH exchange into the key schedule (psk_dhe_ke): forward secrecy without a
// finite-field group to choose. TLS 1.2's DHE-PSK suites are refused because OpenSSL sizes the
// DH group of a certificate-less suite from the cipher's strength and picked a 1024-bit group for
// AES-128 (measured on Node 20 / OpenSSL 3.0). TLS 1.2 stays allowed with its one ECDHE-PSK
// suite (ChaCha20, X25519), never DHE: the first release spoke TLS 1.2 only and offered that
// suite. Its channel protocol (1) is no longer spoken, so the suite is kept for nothing else;
// it is as strong as the TLS 1.3 ones.
// OpenSSL never accepts the PSK-only mode (psk_ke) unless SSL_OP_ALLOW_NO_DHE_KEX is set, which
// Tandem never sets: a handshake without an ephemeral exchange fails. A wrong key fails inside
// the handshake, before any HTTP byte is read.
import crypto from 'node:crypto';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { ConnectionOptions, TLSSocket } from 'node:tls';

/**
 * TLS 1.3 suites whose hash is SHA-256, the hash OpenSSL gives an external PSK: AES-128-GCM
 * first (the fastest with AES instructions), ChaCha20-Poly1305 for CPUs without them.
 */
export const TLS_PSK_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:ECDHE-PSK-CHACHA20-POLY1305';

/** Key-exchange groups offered, in order: every one at least 128-bit strong. */
export const TLS_PSK_GROUPS = 'X25519:P-256:P-384';

const TLS_VERSION = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' } as const;

/** The handshake both ends offer: TLS 1.3 first, TLS 1.2 with its one ECDHE-PSK suite. */
const VERSION_OPTIONS = { ciphers: TLS_PSK_CIPHERS, ...TLS_VERSION, ecdhCurve: TLS_PSK_GROUPS } as const;

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
    ...VERSION_OPTIONS,
    // TLS 1.3 sends no identity hint; a TLS 1.2 client gets it.
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
    ...VERSION_OPTIONS,
    // No certificate to check: the PSK handshake itself authenticates the server.
    checkServerIdentity: () => undefined,
    pskCallback: () => ({ psk, identity: self }),
  };
}

/** What a TLS connection negotiated, as the channel logs it and tests check it. */
export interface TlsSession {
  protocol: string | null;
  cipher: string;
  /**
   * The ephemeral key exchange, e.g. "ECDH X25519 (253 bits)". Node reports it on the client
   * side only; on the server side it is undefined (TLS 1.3 has no exchange without it, see the
   * header).
   */
  keyExchange: string | undefined;
}

export function tlsSessionOf(socket: TLSSocket): TlsSession {
  const info = socket.getEphemeralKeyInfo() as { type?: string; name?: string; size?: number } | null;
  const keyExchange = info === null || info.type === undefined ? undefined : `${info.type}${info.name === undefined ? '' : ` ${info.name}`} (${info.size ?? 0} bits)`;
  return { protocol: socket.getProtocol(), cipher: socket.getCipher().standardName, keyExchange };
}
