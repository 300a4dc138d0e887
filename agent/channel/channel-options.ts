// What both ends of the channel are configured with, checked once at construction: a bad
// option throws there (pino's habit), never later inside a socket callback.
import { PAIR_KEY_MIN_BYTES } from '../../shared/constants.ts';
import type { Clock } from '../../shared/clock.ts';
import type { TandemConfig } from '../../shared/config/index.ts';
import { TandemError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';

export type ChannelEncryption = 'tls-psk' | 'none';

export interface ChannelOptions {
  /** Pair id: both nodes must have the same one. */
  pair: string;
  /** This node's name. */
  self: string;
  /** The only node this channel talks to. */
  peer: string;
  /** The pair key (>= 32 bytes). Never logged, never sent. */
  key: Buffer;
  /** 'tls-psk' (default in config) or 'none' for trusted links only: plain TCP after the HMAC handshake. */
  encryption: ChannelEncryption;
  /** Largest frame accepted or sent (ws maxPayload). */
  maxFrameBytes: number;
  /** TLS handshake plus HTTP upgrade must complete within this. */
  handshakeTimeoutMs: number;
  log: Logger;
  /** Defaults to the system clock. Timers that guard real sockets run on it. */
  clock?: Clock;
}

export interface ChannelServerOptions extends ChannelOptions {
  /** Address to listen on. */
  host: string;
  /** Port to listen on; 0 picks a free one (read it back from listen()). */
  port: number;
  /** Connections not authenticated yet, at most (CHANNEL_MAX_PENDING_CONNECTIONS); tests lower it. */
  maxPendingConnections?: number;
}

export interface ChannelDialerOptions extends ChannelOptions {
  /** The peer's channel address. */
  host: string;
  port: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
}

const NAME = /^[A-Za-z0-9._-]{1,64}$/;

function invalid(op: string, key: string, reason: string): TandemError {
  return new TandemError({ code: 'TANDEM_ERR_CONFIG_INVALID', op, reason: `${key}: ${reason}`, hint: 'see docs/channel.md', details: { key } });
}

const positiveInt = (v: number): boolean => Number.isSafeInteger(v) && v > 0;

/** Throws a TandemError naming the first bad option. */
export function checkChannelOptions(o: ChannelOptions & { host: string; port: number }, op: string): void {
  if (!Buffer.isBuffer(o.key) || o.key.length < PAIR_KEY_MIN_BYTES) {
    throw new TandemError({
      code: 'TANDEM_ERR_KEY_INVALID',
      op,
      reason: `the pair key must be at least ${PAIR_KEY_MIN_BYTES} bytes`,
      hint: 'both nodes must hold the same pair key file; see docs/errors.md',
    });
  }
  for (const k of ['pair', 'self', 'peer'] as const) {
    if (typeof o[k] !== 'string' || !NAME.test(o[k])) throw invalid(op, k, `expected 1-64 letters, digits, '.', '_' or '-', got ${JSON.stringify(o[k])}`);
  }
  if (o.self === o.peer) throw invalid(op, 'peer', `the peer must be another node than ${JSON.stringify(o.self)}`);
  if (o.encryption !== 'tls-psk' && o.encryption !== 'none') throw invalid(op, 'encryption', `expected 'tls-psk' or 'none', got ${JSON.stringify(o.encryption)}`);
  if (!positiveInt(o.maxFrameBytes)) throw invalid(op, 'maxFrameBytes', 'expected a positive integer');
  if (!positiveInt(o.handshakeTimeoutMs)) throw invalid(op, 'handshakeTimeoutMs', 'expected a positive integer');
  if (typeof o.host !== 'string' || o.host.length === 0) throw invalid(op, 'host', 'expected a host name or address');
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65_535) throw invalid(op, 'port', `expected 0-65535, got ${o.port}`);
}

export function checkDialerOptions(o: ChannelDialerOptions, op: string): void {
  checkChannelOptions(o, op);
  if (o.port === 0) throw invalid(op, 'port', 'the peer port cannot be 0');
  if (!positiveInt(o.reconnectMinMs)) throw invalid(op, 'reconnectMinMs', 'expected a positive integer');
  if (!positiveInt(o.reconnectMaxMs) || o.reconnectMaxMs < o.reconnectMinMs) throw invalid(op, 'reconnectMaxMs', 'expected an integer >= reconnectMinMs');
}

/** The options of this node's listener and of its dialer to the peer, from tandem.yaml. */
export function channelOptionsFromConfig(
  config: Pick<TandemConfig, 'pair' | 'self' | 'peer' | 'channel'>,
  key: Buffer,
  log: Logger,
  clock?: Clock,
): { server: ChannelServerOptions; dialer: ChannelDialerOptions } {
  const common: ChannelOptions = {
    pair: config.pair,
    self: config.self.name,
    peer: config.peer.name,
    key,
    encryption: config.channel.encryption,
    maxFrameBytes: config.channel.maxFrameBytes,
    handshakeTimeoutMs: config.channel.handshakeTimeout,
    log,
    ...(clock === undefined ? {} : { clock }),
  };
  return {
    server: { ...common, ...config.self.channel },
    dialer: { ...common, ...config.peer.channel, reconnectMinMs: config.channel.reconnectMin, reconnectMaxMs: config.channel.reconnectMax },
  };
}
