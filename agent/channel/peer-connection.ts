// One authenticated WebSocket to the peer. It turns frames into validated Messages and
// Messages into frames, and reports when it closes and why. It holds no replication state and
// never buffers on its own: `send` hands the frame to ws at once, and the user bounds what is
// in flight with `bufferedAmount` and the peer's acks (ws has no drain event).
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import WebSocket, { type RawData } from 'ws';
import type { Clock } from '../../shared/clock.ts';
import { TandemError, describeCause, type ErrorCode } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { decode, decodeBatchParts, encode, encodeBatchParts } from '../../shared/protocol/codec.ts';
import { messageProblem, type ErrorMessage, type Message } from '../../shared/protocol/messages.ts';
import { closeFrameFor, closeInfoFromPeer, codeForWsError, type ChannelCloseInfo } from './close-reason.ts';
import { tlsSessionOf, type TlsSession } from './tls-psk.ts';

export type ChannelDirection = 'inbound' | 'outbound';

export interface ChannelStats {
  /** Bytes read from the TCP socket: TLS records and WebSocket framing included. */
  bytesIn: number;
  /** Bytes written to the TCP socket, likewise. */
  bytesOut: number;
  messagesIn: number;
  messagesOut: number;
  /** Wall-clock milliseconds when the connection was authenticated. */
  connectedAt: number;
}

export interface PeerConnectionEvents {
  /** A validated message. An `error` message from the peer comes here too (and is logged). */
  message: [m: Message];
  /** Emitted once, as soon as the connection stops being open (before the socket is fully gone). */
  close: [info: ChannelCloseInfo];
}

/** How long a closing connection waits for the peer's close frame before dropping the socket. */
export const CLOSE_GRACE_MS = 2_000;

/** What ChannelServer and the dialer hand over once the handshake is done. */
export interface PeerConnectionInit {
  ws: WebSocket;
  /** The TCP socket under ws (under TLS, when encrypted): where wire bytes are counted. */
  wire: Socket;
  peer: string;
  direction: ChannelDirection;
  /** "address:port" of the other end, for logs. */
  remote: string;
  maxFrameBytes: number;
  /** The channel's logger; the connection adds peer, remote and direction. */
  log: Logger;
  clock: Clock;
  /** The TLS socket ws reads from, when encrypted: what the handshake negotiated. */
  tls?: TLSSocket | undefined;
}

const HINTS: Partial<Record<ErrorCode, string>> = {
  TANDEM_ERR_FRAME_MALFORMED: 'the peer runs an incompatible Tandem version or the link corrupts data; see docs/errors.md',
  TANDEM_ERR_FRAME_TOO_LARGE: 'both nodes must use the same channel.maxFrameBytes; see docs/errors.md',
};

const MAX_REASON_CHARS = 300;

const clip = (s: string, max = MAX_REASON_CHARS): string => (s.length <= max ? s : `${s.slice(0, max)}…`);

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return data.length === 1 ? data[0]! : Buffer.concat(data);
  return Buffer.from(data);
}

/**
 * A message as ws delivers it (binaryType 'fragments': one buffer per WebSocket frame). A batch
 * comes as two fragments (sendBatch): decoded without joining them, its frames stay the buffer
 * ws read them into, where joining copied every batch once more on the passive.
 */
function decodeMessage(data: RawData): unknown {
  if (Array.isArray(data) && data.length === 2) {
    const batch = decodeBatchParts(data[0]!, data[1]!);
    if (batch !== undefined) return batch;
  }
  return decode(toBuffer(data));
}

export class PeerConnection extends EventEmitter<PeerConnectionEvents> {
  readonly peer: string;
  readonly direction: ChannelDirection;
  readonly remote: string;

  private readonly ws: WebSocket;
  private readonly wire: Socket;
  private readonly tls: TLSSocket | undefined;
  private readonly log: Logger;
  private readonly maxFrameBytes: number;
  private readonly connectedAt: number;
  private isOpen = true;
  private messagesIn = 0;
  private messagesOut = 0;
  private lastPeerError: ErrorMessage | undefined;
  private peerErrors = 0;
  private closeInfo: ChannelCloseInfo | undefined;
  private readonly endedPromise: Promise<void>;

  constructor(init: PeerConnectionInit) {
    super();
    this.peer = init.peer;
    this.direction = init.direction;
    this.remote = init.remote;
    this.ws = init.ws;
    this.wire = init.wire;
    this.tls = init.tls;
    this.maxFrameBytes = init.maxFrameBytes;
    this.connectedAt = init.clock.now();
    this.log = init.log.child({ peer: init.peer, remote: init.remote, direction: init.direction });
    // Each message as the list of its fragments (see decodeMessage); set before any is read.
    this.ws.binaryType = 'fragments';
    this.endedPromise = new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) resolve();
      else this.ws.once('close', () => resolve());
    });
    // Every listener is guarded: an exception escaping a socket callback would take the whole
    // agent down, and with it the heartbeat that keeps the pair safe.
    this.ws.on('message', (data, isBinary) => this.guard(() => this.onFrame(data, isBinary)));
    this.ws.on('error', (err) => this.guard(() => this.onWsError(err)));
    this.ws.on('close', (status, reason) => this.guard(() => this.onWsClose(status, reason)));
    if (this.ws.readyState !== WebSocket.OPEN) {
      this.isOpen = false;
      this.closeInfo = { code: 'lost', reason: 'the connection closed during the handshake', byPeer: true };
    }
  }

  get open(): boolean {
    return this.isOpen;
  }

  /** Bytes handed to ws and not yet written to the socket: the user's measure of backpressure. */
  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  /** Why it closed, once it has. */
  get closedWith(): ChannelCloseInfo | undefined {
    return this.closeInfo;
  }

  /**
   * Encodes `m` and hands it to ws. `onWritten` runs once the frame is written to the socket
   * (not once the peer has it: only its ack says that), or with an error. After close this is a
   * no-op whose `onWritten` gets an error. Throws TANDEM_ERR_FRAME_TOO_LARGE when the encoded
   * frame exceeds maxFrameBytes: the peer would drop the connection on it, so the caller must
   * split its batches.
   */
  send(m: Message, onWritten?: (err?: Error) => void): void {
    if (!this.isOpen || this.ws.readyState !== WebSocket.OPEN) {
      if (onWritten !== undefined) {
        const err = new TandemError({
          code: 'TANDEM_ERR_PROTOCOL',
          op: `send ${m.t} to ${this.peer}`,
          reason: 'the channel connection is closed',
          hint: 'wait for the next connection and resume from the last acknowledged sequence',
          details: { closed: true },
        });
        process.nextTick(() => this.callSafely(onWritten, err));
      }
      return;
    }
    if (m.t === 'batch') return this.sendBatch(m, onWritten);
    const frame = encode(m);
    if (frame.length > this.maxFrameBytes) {
      throw new TandemError({
        code: 'TANDEM_ERR_FRAME_TOO_LARGE',
        op: `send ${m.t} to ${this.peer}`,
        reason: `the frame is ${frame.length} bytes, over channel.maxFrameBytes (${this.maxFrameBytes})`,
        hint: 'batches must be split below channel.maxFrameBytes; see docs/errors.md',
      });
    }
    this.messagesOut += 1;
    this.ws.send(frame, { binary: true, compress: false }, onWritten === undefined ? undefined : (err) => this.callSafely(onWritten, err ?? undefined));
  }

  /**
   * Closes the connection. Unless `code` is 'normal', an `error` message carrying `code` and
   * `message` goes first, so the peer can log why. The 'close' event fires before this returns.
   */
  /**
   * Batches are the bulk of the traffic: their frames go out as they came from the journal, as
   * the second fragment of one WebSocket message, with no copy. The two sends are adjacent, so
   * nothing else can slip between the fragments.
   */
  private sendBatch(m: Extract<Message, { t: 'batch' }>, onWritten?: (err?: Error) => void): void {
    const [head, frames] = encodeBatchParts(m);
    if (head.length + frames.length > this.maxFrameBytes) {
      throw new TandemError({
        code: 'TANDEM_ERR_FRAME_TOO_LARGE',
        op: `send batch to ${this.peer}`,
        reason: `the frame is ${head.length + frames.length} bytes, over channel.maxFrameBytes (${this.maxFrameBytes})`,
        hint: 'batches must be split below channel.maxFrameBytes; see docs/errors.md',
      });
    }
    this.messagesOut += 1;
    this.ws.send(head, { binary: true, compress: false, fin: false });
    this.ws.send(frames, { binary: true, compress: false, fin: true }, onWritten === undefined ? undefined : (err) => this.callSafely(onWritten, err ?? undefined));
  }

  close(code: ErrorCode | 'normal', message: string): void {
    if (!this.isOpen) return;
    this.log.info({ code, reason: message }, 'channel: closing the connection');
    this.closeWith(code, message);
  }

  stats(): ChannelStats {
    return {
      bytesIn: this.wire.bytesRead,
      bytesOut: this.wire.bytesWritten,
      messagesIn: this.messagesIn,
      messagesOut: this.messagesOut,
      connectedAt: this.connectedAt,
    };
  }

  /** What the TLS handshake negotiated (protocol, cipher, key exchange); undefined without TLS. */
  tlsSession(): TlsSession | undefined {
    return this.tls === undefined ? undefined : tlsSessionOf(this.tls);
  }

  /** Resolves once the socket is gone (after the close handshake, or CLOSE_GRACE_MS at most). */
  ended(): Promise<void> {
    return this.endedPromise;
  }

  private onFrame(data: RawData, isBinary: boolean): void {
    if (!this.isOpen) return;
    if (!isBinary) {
      this.fault('TANDEM_ERR_FRAME_MALFORMED', 'a text frame: only binary frames are allowed');
      return;
    }
    let value: unknown;
    try {
      value = decodeMessage(data);
    } catch (err) {
      // RangeError from deep nesting lands here too.
      this.fault('TANDEM_ERR_FRAME_MALFORMED', `the frame does not decode: ${clip(describeCause(err))}`);
      return;
    }
    const problem = messageProblem(value);
    if (problem !== undefined) {
      this.fault('TANDEM_ERR_FRAME_MALFORMED', `the message has a wrong shape: ${clip(problem)}`);
      return;
    }
    const m = value as Message;
    this.messagesIn += 1;
    if (m.t === 'error') {
      this.lastPeerError = m;
      // A peer says why before it closes: one line. More on one connection is not worth more.
      this.peerErrors += 1;
      if (this.peerErrors === 1) this.log.warn({ code: m.code, reason: clip(m.message) }, 'channel: the peer reported an error');
    }
    try {
      this.emit('message', m);
    } catch (err) {
      // The user's handler failed halfway: what it did with this message is unknown, so carrying
      // on could skip it. Closing makes the peer resume from the last acknowledged sequence.
      this.log.error({ code: 'TANDEM_ERR_INTERNAL', err }, 'channel: a message handler threw');
      this.closeWith('TANDEM_ERR_INTERNAL', 'the receiving node failed to handle a message');
    }
  }

  private onWsError(err: Error): void {
    if (!this.isOpen) return;
    // ws raises 'error' only for frames it refuses (too large, bad opcode, bad framing); it then
    // closes with the matching status itself, so there is nothing left to send.
    const code = codeForWsError((err as NodeJS.ErrnoException).code);
    const e = new TandemError({ code, op: `receive from ${this.peer}`, reason: err.message, hint: HINTS[code], cause: err });
    this.log.warn({ code, err: e }, code === 'TANDEM_ERR_FRAME_TOO_LARGE' ? 'channel: frame too large, closing the connection' : 'channel: malformed frame, closing the connection');
    this.finish({ code, reason: err.message, byPeer: false });
  }

  private onWsClose(status: number, reasonBuf: Buffer): void {
    if (!this.isOpen) return;
    const info = closeInfoFromPeer(status, reasonBuf.toString('utf8'), this.lastPeerError);
    if (info.code === 'normal') this.log.info({ reason: info.reason }, 'channel: the peer closed the connection');
    else if (info.code === 'lost') this.log.warn({ reason: info.reason }, 'channel: connection lost');
    else if (this.lastPeerError !== undefined && info.code === this.lastPeerError.code) {
      // Its `error` message was already logged at warn; one warning per event is enough.
      this.log.info({ code: info.code }, 'channel: the peer closed the connection after its error');
    } else this.log.warn({ code: info.code, reason: clip(info.reason) }, 'channel: the peer closed the connection with an error');
    this.finish(info);
  }

  private fault(code: ErrorCode, reason: string): void {
    const err = new TandemError({ code, op: `receive from ${this.peer}`, reason, hint: HINTS[code] });
    this.log.warn({ code, err }, 'channel: bad frame, closing the connection');
    this.closeWith(code, reason);
  }

  private closeWith(code: ErrorCode | 'normal', message: string): void {
    this.isOpen = false;
    try {
      if (this.ws.readyState === WebSocket.OPEN) {
        if (code !== 'normal') this.ws.send(encode({ t: 'error', code, message: clip(message, 4096) } satisfies ErrorMessage), { binary: true });
        const frame = closeFrameFor(code, message);
        this.ws.close(frame.status, frame.reason);
      } else {
        this.ws.terminate();
      }
    } catch (err) {
      this.log.debug({ err }, 'channel: closing the socket failed, dropping it');
      this.ws.terminate();
    }
    this.finish({ code, reason: message, byPeer: false });
  }

  private finish(info: ChannelCloseInfo): void {
    this.isOpen = false;
    if (this.closeInfo !== undefined) return;
    this.closeInfo = info;
    try {
      this.emit('close', info);
    } catch (err) {
      this.log.error({ code: 'TANDEM_ERR_INTERNAL', err }, "channel: a 'close' handler threw");
    }
  }

  private callSafely(fn: (err?: Error) => void, err: Error | undefined): void {
    try {
      fn(err);
    } catch (e) {
      this.log.error({ code: 'TANDEM_ERR_INTERNAL', err: e }, 'channel: a send callback threw');
    }
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ code: 'TANDEM_ERR_INTERNAL', err }, 'channel: unexpected failure in a socket callback, dropping the connection');
      this.finish({ code: 'TANDEM_ERR_INTERNAL', reason: describeCause(err), byPeer: false });
      try {
        this.ws.terminate();
      } catch {
        // Already gone.
      }
    }
  }
}
