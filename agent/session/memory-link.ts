// Two ends of a channel connection in memory, for tests of everything above the channel (the
// session, heartbeat, replication, handover) with a fake clock: a message is encoded and
// decoded as on the wire (so a test sees copies, not shared objects), validated as the channel
// validates it, and delivered `delayMs` later on the given clock. No sockets, no real time.
import { EventEmitter } from 'node:events';
import type { Clock } from '../../shared/clock.ts';
import { TandemError, type ErrorCode } from '../../shared/errors.ts';
import { decode, encode, encodeBatchParts } from '../../shared/protocol/codec.ts';
import { messageProblem, type Message } from '../../shared/protocol/messages.ts';
import type { LinkCloseInfo, PeerLink } from '../replication/peer-link.ts';

interface MemoryLinkEvents {
  message: [m: Message];
  close: [info: LinkCloseInfo];
}

export interface MemoryLinkOptions {
  /** One-way delivery delay on `clock` (default 0: at the next clock step). */
  delayMs?: number;
}

export class MemoryLink extends EventEmitter<MemoryLinkEvents> implements PeerLink {
  readonly bufferedAmount = 0;
  private other!: MemoryLink;
  private isOpen = true;
  private bytesIn = 0;
  private bytesOut = 0;
  /** Every message this end received, in order (for assertions). */
  readonly received: Message[] = [];
  closedWith: LinkCloseInfo | undefined;

  private constructor(
    /** The name of the node at the other end. */
    readonly peer: string,
    private readonly clock: Clock,
    private readonly delayMs: number,
  ) {
    super();
  }

  /** `[end held by a, end held by b]`: a's end has `peer` b and the reverse. */
  static pair(clock: Clock, a: string, b: string, opts: MemoryLinkOptions = {}): [MemoryLink, MemoryLink] {
    const atA = new MemoryLink(b, clock, opts.delayMs ?? 0);
    const atB = new MemoryLink(a, clock, opts.delayMs ?? 0);
    atA.other = atB;
    atB.other = atA;
    return [atA, atB];
  }

  get open(): boolean {
    return this.isOpen;
  }

  send(m: Message, onWritten?: (err?: Error) => void): void {
    if (!this.isOpen) {
      onWritten?.(new TandemError({ code: 'TANDEM_ERR_PROTOCOL', op: `send ${m.t} to ${this.peer}`, reason: 'the channel connection is closed', details: { closed: true } }));
      return;
    }
    const frame = m.t === 'batch' ? Buffer.concat(encodeBatchParts(m)) : encode(m);
    this.bytesOut += frame.length;
    onWritten?.();
    const to = this.other;
    this.clock.setTimeout(() => to.receive(frame), this.delayMs);
  }

  /** Closes both ends: the peer hears `code` after the delay (as it would from an error message and close frame). */
  close(code: ErrorCode | 'normal', message: string): void {
    if (!this.isOpen) return;
    this.finish({ code, reason: message, byPeer: false });
    const to = this.other;
    this.clock.setTimeout(() => to.finish({ code, reason: message, byPeer: true }), this.delayMs);
  }

  /** The connection drops at once at both ends, with whatever was in flight. */
  cut(reason = 'cut by the test'): void {
    this.finish({ code: 'lost', reason, byPeer: true });
    this.other.finish({ code: 'lost', reason, byPeer: true });
  }

  stats(): { bytesIn: number; bytesOut: number } {
    return { bytesIn: this.bytesIn, bytesOut: this.bytesOut };
  }

  private receive(frame: Buffer): void {
    if (!this.isOpen) return;
    this.bytesIn += frame.length;
    const value = decode(frame);
    const problem = messageProblem(value);
    if (problem !== undefined) return this.close('TANDEM_ERR_FRAME_MALFORMED', problem);
    const m = value as Message;
    this.received.push(m);
    try {
      this.emit('message', m);
    } catch {
      // As the channel does: a handler that failed halfway closes the connection.
      this.close('TANDEM_ERR_INTERNAL', 'the receiving node failed to handle a message');
    }
  }

  private finish(info: LinkCloseInfo): void {
    if (!this.isOpen) return;
    this.isOpen = false;
    this.closedWith = info;
    this.emit('close', info);
  }
}
