// What a replication session needs from a channel connection (agent/channel's PeerConnection
// satisfies it). Sessions depend on this, so their tests can join two ends in memory.
import type { ErrorCode } from '../../shared/errors.ts';
import type { Message } from '../../shared/protocol/index.ts';

export interface LinkCloseInfo {
  code: string;
  reason: string;
  byPeer: boolean;
}

/**
 * Listens to a link's messages and its close, the same way for every session; returns what
 * stops listening.
 */
export function listenTo(link: PeerLink, onMessage: (m: Message) => void, onClose: (info: LinkCloseInfo) => void): () => void {
  link.on('message', onMessage);
  link.on('close', onClose);
  return () => {
    link.off('message', onMessage);
    link.off('close', onClose);
  };
}

export interface PeerLink {
  readonly peer: string;
  readonly open: boolean;
  readonly bufferedAmount: number;
  send(m: Message, onWritten?: (err?: Error) => void): void;
  close(code: ErrorCode | 'normal', message: string): void;
  on(event: 'message', listener: (m: Message) => void): unknown;
  on(event: 'close', listener: (info: LinkCloseInfo) => void): unknown;
  off(event: 'message', listener: (m: Message) => void): unknown;
  off(event: 'close', listener: (info: LinkCloseInfo) => void): unknown;
  stats(): { bytesIn: number; bytesOut: number };
}
