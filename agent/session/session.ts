// One session per channel connection: it is the only listener on the connection's messages,
// runs the hello gate (nothing but a valid hello is taken before it), and routes every message
// after it through one dispatcher to the part of the node that registered for its family. A
// part gets a `port`: a PeerLink that carries its family's messages only, so the heartbeat,
// the handover and the replication sessions never see (nor filter) each other's traffic.
import type { Clock, TimerHandle } from '../../shared/clock.ts';
import { TandemError, type ErrorCode } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { HelloMessage, Message } from '../../shared/protocol/index.ts';
import { negotiateProtocol, peerProtocol, type ProtocolRange } from '../../shared/version.ts';
import type { LinkCloseInfo, PeerLink } from '../replication/peer-link.ts';
import { Dispatcher, type MessageHandler } from './dispatcher.ts';
import type { MessageFamily } from './message-family.ts';

export interface SessionOptions {
  pair: string;
  blockSize: number;
  /** How long the peer has to send its hello (channel.handshakeTimeout). */
  helloTimeoutMs: number;
  /** The protocol versions this node speaks; the session runs at the highest both speak. */
  protocol: ProtocolRange;
  clock: Clock;
  log: Logger;
  /**
   * The peer's valid hello and the session's protocol. Called *synchronously* inside the
   * message handler: the peer may send its first batch in the same packet as its hello, and ws
   * emits both in one tick, so whoever takes the batch must register before this returns.
   */
  onPeerHello: (hello: HelloMessage, protocol: number) => void;
}

export interface SessionCounters {
  /** Messages routed to a handler. */
  handled: number;
  /** Messages for a handler that had let go (a session ending while the connection stays). */
  late: number;
}

export class Session {
  private readonly dispatcher = new Dispatcher();
  private readonly log: Logger;
  private helloTimer: TimerHandle | undefined;
  private peerHelloMsg: HelloMessage | undefined;
  private sessionProtocol: number | undefined;
  private readonly counters: SessionCounters = { handled: 0, late: 0 };
  private readonly onMessage = (m: Message) => this.route(m);
  private readonly onClose = () => this.ended();

  constructor(
    readonly link: PeerLink,
    private readonly opts: SessionOptions,
  ) {
    this.log = opts.log.child({ component: 'session', peer: link.peer });
    link.on('message', this.onMessage);
    link.on('close', this.onClose);
  }

  get peer(): string {
    return this.link.peer;
  }

  get open(): boolean {
    return this.link.open;
  }

  /** The peer's hello, once the gate let it through. */
  get peerHello(): HelloMessage | undefined {
    return this.peerHelloMsg;
  }

  /** The protocol both speak, once the hellos were exchanged. */
  get protocol(): number | undefined {
    return this.sessionProtocol;
  }

  stats(): SessionCounters {
    return { ...this.counters };
  }

  /** Sends this node's hello and waits for the peer's (at most helloTimeoutMs). */
  start(own: HelloMessage): void {
    this.dispatcher.register('hello', (m) => this.onHello(m as HelloMessage));
    this.helloTimer = this.opts.clock.setTimeout(() => {
      this.helloTimer = undefined;
      if (this.peerHelloMsg === undefined && this.link.open) this.fail('TANDEM_ERR_PROTOCOL', `the peer sent no hello within ${this.opts.helloTimeoutMs} ms`);
    }, this.opts.helloTimeoutMs);
    this.link.send(own);
  }

  /** Routes `family` to `handler` until the returned function is called. */
  handle(family: MessageFamily, handler: MessageHandler): () => void {
    return this.dispatcher.register(family, handler);
  }

  /** A link that carries `family`'s messages only (and the connection's close). */
  port(family: MessageFamily): PeerLink {
    return new SessionPort(this, family);
  }

  close(code: ErrorCode | 'normal', message: string): void {
    this.link.close(code, message);
  }

  private route(m: Message): void {
    const d = this.dispatcher.dispatch(m);
    switch (d.kind) {
      case 'handled':
        this.counters.handled += 1;
        return;
      case 'late':
        this.counters.late += 1;
        this.log.debug({ family: d.family, type: m.t }, 'session: a late message for a part that let go, dropped');
        return;
      case 'error':
        return;
      case 'unexpected':
        return this.fail('TANDEM_ERR_MESSAGE_UNEXPECTED', this.peerHelloMsg === undefined ? `${m.t} before the hello` : d.reason, { family: d.family ?? null, type: m.t });
    }
  }

  private onHello(m: HelloMessage): void {
    if (this.peerHelloMsg !== undefined) return this.fail('TANDEM_ERR_MESSAGE_UNEXPECTED', 'a second hello on one connection', { family: 'hello', type: m.t });
    this.helloTimer?.cancel();
    this.helloTimer = undefined;
    const agreed = negotiateProtocol(this.opts.protocol, peerProtocol(m));
    if (!agreed.ok) return this.fail('TANDEM_ERR_PROTOCOL', agreed.reason);
    if (m.pair !== this.opts.pair) return this.fail('TANDEM_ERR_PEER_UNEXPECTED', `the peer belongs to pair ${m.pair}`);
    if (m.blockSize !== this.opts.blockSize) {
      return this.fail('TANDEM_ERR_PEER_UNEXPECTED', `the peer uses blockSize ${m.blockSize}, this node ${this.opts.blockSize}: set the same blockSize on both nodes`);
    }
    this.peerHelloMsg = m;
    this.sessionProtocol = agreed.version;
    this.opts.onPeerHello(m, agreed.version);
  }

  private fail(code: ErrorCode, reason: string, fields: Record<string, unknown> = {}): void {
    if (!this.link.open) return;
    // Until the hello is through, the operation is the hello (as logged before the session layer).
    const op = this.peerHelloMsg === undefined ? `hello with ${this.link.peer}` : `session with ${this.link.peer}`;
    const err = new TandemError({ code, op, reason, hint: 'see docs/errors.md' });
    this.log.error({ ...fields, err, code }, `channel: ${err.message}`);
    this.link.close(code, reason);
  }

  private ended(): void {
    this.helloTimer?.cancel();
    this.helloTimer = undefined;
    this.link.off('message', this.onMessage);
    this.link.off('close', this.onClose);
  }
}

/** One family's view of the connection: what a heartbeat or a replication session listens to. */
class SessionPort implements PeerLink {
  private readonly listeners: ((m: Message) => void)[] = [];
  private unregister: (() => void) | undefined;

  constructor(
    private readonly session: Session,
    private readonly family: MessageFamily,
  ) {}

  get peer(): string {
    return this.session.link.peer;
  }

  get open(): boolean {
    return this.session.link.open;
  }

  get bufferedAmount(): number {
    return this.session.link.bufferedAmount;
  }

  send(m: Message, onWritten?: (err?: Error) => void): void {
    this.session.link.send(m, onWritten);
  }

  close(code: ErrorCode | 'normal', message: string): void {
    this.session.link.close(code, message);
  }

  stats(): { bytesIn: number; bytesOut: number } {
    return this.session.link.stats();
  }

  on(event: 'message', listener: (m: Message) => void): this;
  on(event: 'close', listener: (info: LinkCloseInfo) => void): this;
  on(event: 'message' | 'close', listener: ((m: Message) => void) | ((info: LinkCloseInfo) => void)): this {
    if (event === 'close') {
      this.session.link.on('close', listener as (info: LinkCloseInfo) => void);
      return this;
    }
    this.listeners.push(listener as (m: Message) => void);
    this.unregister ??= this.session.handle(this.family, (m) => {
      for (const l of [...this.listeners]) l(m);
    });
    return this;
  }

  off(event: 'message', listener: (m: Message) => void): this;
  off(event: 'close', listener: (info: LinkCloseInfo) => void): this;
  off(event: 'message' | 'close', listener: ((m: Message) => void) | ((info: LinkCloseInfo) => void)): this {
    if (event === 'close') {
      this.session.link.off('close', listener as (info: LinkCloseInfo) => void);
      return this;
    }
    const i = this.listeners.indexOf(listener as (m: Message) => void);
    if (i >= 0) this.listeners.splice(i, 1);
    if (this.listeners.length === 0) {
      this.unregister?.();
      this.unregister = undefined;
    }
    return this;
  }
}
