// Keeps one outbound connection to the peer: while none is open (and it is not paused) it dials,
// backing off from reconnectMinMs to reconnectMaxMs. Failures are logged at most once
// per backoff level, kind of failure or 30 s, and the recovery in one 'channel: connected' line.
import { EventEmitter } from 'node:events';
import { systemClock, type Clock, type TimerHandle } from '../../shared/clock.ts';
import { TandemError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { checkDialerOptions, type ChannelDialerOptions } from './channel-options.ts';
import { dialPeer, type DialFailure, type DialResult } from './dial-peer.ts';
import type { PeerConnection } from './peer-connection.ts';
import { ReconnectBackoff } from './reconnect-backoff.ts';

export interface ChannelDialerEvents {
  /** A new authenticated connection. Attach listeners before returning: frames are read right after. */
  connection: [conn: PeerConnection];
}

const HINTS: Record<string, string> = {
  TANDEM_ERR_AUTH_FAILED: 'both nodes must hold the same pair key file and the same channel.encryption; see docs/errors.md',
  TANDEM_ERR_PEER_UNEXPECTED: 'check pair, node and nodes.* in tandem.yaml on both nodes; see docs/errors.md',
  TANDEM_ERR_PROTOCOL: 'nodes.<peer>.channel must point at the peer\'s channel address; see docs/channel.md',
};

export class ChannelDialer extends EventEmitter<ChannelDialerEvents> {
  private readonly opts: ChannelDialerOptions;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly backoff: ReconnectBackoff;
  private running = false;
  /** Paused while another connection to the peer (an inbound one) serves: no dialing. */
  private paused = false;
  private attempt: AbortController | undefined;
  private attemptDone: Promise<void> = Promise.resolve();
  private retryTimer: TimerHandle | undefined;
  private current: PeerConnection | undefined;
  private failedAttempts = 0;
  private downSince: number;

  constructor(opts: ChannelDialerOptions) {
    super();
    checkDialerOptions(opts, 'start the channel dialer');
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log.child({ component: 'channel' });
    this.backoff = new ReconnectBackoff({ minMs: opts.reconnectMinMs, maxMs: opts.reconnectMaxMs, clock: this.clock });
    this.downSince = this.clock.monotonic();
  }

  /** The open connection, if any. */
  get connection(): PeerConnection | undefined {
    return this.current;
  }

  /** Starts dialing (at once, or after `delayMs`) and keeps a connection open until stop(). */
  start(delayMs = 0): void {
    if (this.running) return;
    this.running = true;
    this.downSince = this.clock.monotonic();
    if (delayMs > 0) this.retryTimer = this.clock.setTimeout(() => this.dial(), delayMs);
    else this.dial();
  }

  /** Stops dialing new connections (an open one stays) until resume(). */
  pause(): void {
    this.paused = true;
    this.retryTimer?.cancel();
    this.retryTimer = undefined;
  }

  /** Dials again (at once, or after `delayMs`) when no connection of its own is open. */
  resume(delayMs = 0): void {
    if (!this.paused) return;
    this.paused = false;
    if (!this.running || this.current !== undefined || this.attempt !== undefined) return;
    this.retryTimer?.cancel();
    if (delayMs > 0) this.retryTimer = this.clock.setTimeout(() => this.dial(), delayMs);
    else this.dial();
  }

  /** Stops dialing, gives up an attempt in progress and closes the connection; resolves once no socket is left. */
  async stop(): Promise<void> {
    this.running = false;
    this.retryTimer?.cancel();
    this.retryTimer = undefined;
    this.attempt?.abort();
    const conn = this.current;
    conn?.close('normal', 'the channel dialer stopped');
    await this.attemptDone;
    if (conn !== undefined) await conn.ended();
  }

  private dial(): void {
    this.retryTimer = undefined;
    if (!this.running || this.paused || this.current !== undefined) return;
    const ac = new AbortController();
    this.attempt = ac;
    this.attemptDone = new Promise((resolve) => {
      dialPeer(
        this.opts,
        this.log,
        (r) => {
          this.attempt = undefined;
          try {
            this.onResult(r);
          } finally {
            resolve();
          }
        },
        ac.signal,
      );
    });
  }

  private onResult(r: DialResult): void {
    if (!r.ok) {
      if (this.running) this.onFailure(r.failure);
      return;
    }
    const conn = r.conn;
    if (!this.running) {
      conn.close('normal', 'the channel dialer stopped');
      return;
    }
    this.current = conn;
    this.backoff.connected();
    const tls = conn.tlsSession();
    this.log.info(
      { peer: this.opts.peer, remote: conn.remote, direction: 'outbound', failedAttempts: this.failedAttempts, downMs: Math.round(this.clock.monotonic() - this.downSince), ...(tls === undefined ? {} : { tls }) },
      'channel: connected',
    );
    this.failedAttempts = 0;
    conn.on('close', () => this.onClose(conn));
    // Synchronous on purpose (we are inside ws's 'open'): listeners attach before any frame is read.
    this.emit('connection', conn);
    if (!conn.open) this.onClose(conn);
  }

  private onFailure(f: DialFailure): void {
    this.failedAttempts += 1;
    const delay = this.backoff.nextDelayMs();
    if (this.backoff.shouldLogFailure(f.kind)) {
      const suppressed = this.backoff.takeSuppressed();
      const err =
        f.code === undefined
          ? (f.cause ?? new Error(f.reason))
          : new TandemError({ code: f.code, op: `connect to peer ${this.opts.peer} at ${this.opts.host}:${this.opts.port}`, reason: f.reason, hint: HINTS[f.code], cause: f.cause });
      this.log.warn(
        {
          peer: this.opts.peer,
          remote: `${this.opts.host}:${this.opts.port}`,
          ...(f.code === undefined ? {} : { code: f.code }),
          err,
          reason: f.reason,
          attempt: this.failedAttempts,
          retryInMs: delay,
          ...(suppressed > 0 ? { suppressed } : {}),
        },
        'channel: cannot connect to the peer',
      );
    }
    if (!this.paused) this.retryTimer = this.clock.setTimeout(() => this.dial(), delay);
  }

  private onClose(conn: PeerConnection): void {
    if (this.current !== conn) return;
    this.current = undefined;
    this.backoff.disconnected();
    this.downSince = this.clock.monotonic();
    if (!this.running || this.paused) return;
    this.retryTimer = this.clock.setTimeout(() => this.dial(), this.backoff.nextDelayMs());
  }
}
