// What the control port lets in before a request is even read: a bounded number of connections
// (in all, and per client address), each idle for a short time at most; and only requests whose
// Host header names this API, so that a web page whose name an attacker points at 127.0.0.1
// (DNS rebinding) cannot make a browser read or drive it. Refusals are counted and logged, at
// most one line per reason and client per interval.
import net from 'node:net';
import type http from 'node:http';
import type { Clock } from '../../shared/clock.ts';
import type { Logger } from '../../shared/log.ts';
import { LogLimiter } from '../channel/log-limiter.ts';
import type { ControlRefusal } from '../events/index.ts';

/** Open connections to the control port, at most. */
export const MAX_CONTROL_CONNECTIONS = 64;
/** Open connections from one client address, at most (a flood from one host leaves room for the CLI). */
export const MAX_CONTROL_CONNECTIONS_PER_ADDRESS = 16;
/** A connection with nothing to say for this long is closed (it gets no longer to send its headers). */
export const CONTROL_IDLE_MS = 5000;
/** Event streams (server-sent events) open at once, at most. */
export const MAX_EVENT_STREAMS = 16;
const REFUSAL_LOG_INTERVAL_MS = 30_000;

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (h.startsWith('::ffff:')) return h.slice(7).startsWith('127.');
  return false;
}

function isWildcard(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === '0.0.0.0' || h === '::' || h === '';
}

/**
 * The Host values this API answers to: its own address, the loopback names when it listens on
 * the loopback, any IP literal when it listens on every address (an IP literal cannot be
 * rebound), and the names in control.allowHosts. Always with the port it listens on.
 */
export function hostMatcher(listenHost: string, port: number, allowHosts: readonly string[]): (host: string | undefined) => boolean {
  const names = new Set<string>();
  const add = (h: string) => {
    const bare = h.replace(/^\[|\]$/g, '').toLowerCase();
    names.add(net.isIPv6(bare) ? `[${bare}]` : bare);
  };
  add(listenHost);
  if (isLoopbackHost(listenHost)) for (const h of ['localhost', '127.0.0.1', '::1']) add(h);
  for (const h of allowHosts) add(h);
  const anyIp = isWildcard(listenHost);
  return (host) => {
    // HTTP/1.0 clients may send none; a browser always does.
    if (host === undefined) return true;
    const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(host.trim());
    if (m === null) return false;
    const name = m[1]!.toLowerCase();
    const p = m[2] === undefined ? 80 : Number(m[2]);
    if (p !== port) return false;
    if (names.has(name)) return true;
    return anyIp && (net.isIPv4(name) || net.isIPv6(name.replace(/^\[|\]$/g, '')));
  };
}

export class RequestGuard {
  readonly refusals = new Map<ControlRefusal, number>();
  private readonly perAddress = new Map<string, number>();
  private open = 0;
  private streams = 0;
  private readonly limiter: LogLimiter;

  constructor(
    private readonly log: Logger,
    clock: Clock,
  ) {
    this.limiter = new LogLimiter(clock, REFUSAL_LOG_INTERVAL_MS);
  }

  /** Counts a refusal and logs it, rate-limited per reason and client address. */
  refuse(reason: ControlRefusal, remote: string | undefined, fields: Record<string, unknown> = {}): void {
    this.refusals.set(reason, (this.refusals.get(reason) ?? 0) + 1);
    const admitted = this.limiter.admit(`${reason} ${remote ?? '?'}`);
    if (admitted !== undefined) this.log.warn({ reason, remote, ...fields, ...(admitted.suppressed > 0 ? { suppressed: admitted.suppressed } : {}) }, 'control: request refused');
  }

  /** Takes a new connection in, or closes it at once when over a cap. */
  admit(socket: net.Socket): void {
    const addr = socket.remoteAddress ?? '?';
    const mine = this.perAddress.get(addr) ?? 0;
    if (this.open >= MAX_CONTROL_CONNECTIONS || mine >= MAX_CONTROL_CONNECTIONS_PER_ADDRESS) {
      this.refuse('connections', addr, { open: this.open, fromAddress: mine });
      socket.destroy();
      return;
    }
    this.open += 1;
    this.perAddress.set(addr, mine + 1);
    socket.setTimeout(CONTROL_IDLE_MS, () => socket.destroy());
    socket.once('close', () => {
      this.open -= 1;
      const n = (this.perAddress.get(addr) ?? 1) - 1;
      if (n <= 0) this.perAddress.delete(addr);
      else this.perAddress.set(addr, n);
    });
  }

  /** A long answer (a switchover, a long poll, a stream) must not be cut by the idle timeout. */
  holdOpen(req: http.IncomingMessage): () => void {
    const socket = req.socket;
    socket.setTimeout(0);
    return () => {
      if (!socket.destroyed) socket.setTimeout(CONTROL_IDLE_MS, () => socket.destroy());
    };
  }

  /** An event stream may start: false when MAX_EVENT_STREAMS are open. */
  openStream(): boolean {
    if (this.streams >= MAX_EVENT_STREAMS) return false;
    this.streams += 1;
    return true;
  }

  closeStream(): void {
    this.streams = Math.max(0, this.streams - 1);
  }

  get connections(): number {
    return this.open;
  }
}
