// What a closed connection means, in both directions: the WebSocket close frame we send for a
// reason of ours, and the reason we report for a close frame (or a silent drop) from the peer.
// The full explanation travels in an `error` message just before the close frame; the frame
// itself only has room for 123 bytes, so it carries the code.
import type { ErrorCode } from '../../shared/errors.ts';

/** Why a PeerConnection closed. `code` is 'normal', 'lost' (the socket dropped without a close
 * frame) or a TANDEM_ERR_* code (possibly one the peer named). */
export interface ChannelCloseInfo {
  code: string;
  reason: string;
  /** False when this side decided to close (close() or a fault it detected). */
  byPeer: boolean;
}

export const WS_CLOSE_NORMAL = 1000;
export const WS_CLOSE_GOING_AWAY = 1001;
export const WS_CLOSE_PROTOCOL_ERROR = 1002;
export const WS_CLOSE_UNSUPPORTED_DATA = 1003;
export const WS_CLOSE_NO_STATUS = 1005;
export const WS_CLOSE_ABNORMAL = 1006;
export const WS_CLOSE_INVALID_DATA = 1007;
export const WS_CLOSE_TOO_BIG = 1009;
/** Application range (4000-4999): a Tandem error, its code in the reason. */
export const WS_CLOSE_TANDEM_ERROR = 4000;

const MAX_CLOSE_REASON_BYTES = 123;

function truncateUtf8(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s) <= maxBytes) return s;
  let out = '';
  for (const ch of s) {
    if (Buffer.byteLength(out + ch) > maxBytes) break;
    out += ch;
  }
  return out;
}

/** The close frame for closing with `code` (ours). */
export function closeFrameFor(code: ErrorCode | 'normal', message: string): { status: number; reason: string } {
  if (code === 'normal') return { status: WS_CLOSE_NORMAL, reason: truncateUtf8(message, MAX_CLOSE_REASON_BYTES) };
  return { status: WS_CLOSE_TANDEM_ERROR, reason: truncateUtf8(code, MAX_CLOSE_REASON_BYTES) };
}

/** The Tandem code for an error ws raised while reading the peer's frames. */
export function codeForWsError(wsCode: string | undefined): ErrorCode {
  return wsCode === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'TANDEM_ERR_FRAME_TOO_LARGE' : 'TANDEM_ERR_FRAME_MALFORMED';
}

/**
 * What a close that we did not start means. The last `error` message the peer sent is its
 * own explanation and wins over the frame, unless the frame says the close was normal.
 */
export function closeInfoFromPeer(status: number, reasonText: string, lastPeerError?: { code: string; message: string }): ChannelCloseInfo {
  if (lastPeerError !== undefined && status !== WS_CLOSE_NORMAL && status !== WS_CLOSE_GOING_AWAY) {
    return { code: lastPeerError.code, reason: lastPeerError.message, byPeer: true };
  }
  switch (status) {
    case WS_CLOSE_NORMAL:
    case WS_CLOSE_GOING_AWAY:
    case WS_CLOSE_NO_STATUS:
      return { code: 'normal', reason: reasonText, byPeer: true };
    case WS_CLOSE_ABNORMAL:
      return { code: 'lost', reason: reasonText === '' ? 'the connection dropped without a close frame' : reasonText, byPeer: true };
    case WS_CLOSE_TOO_BIG:
      return { code: 'TANDEM_ERR_FRAME_TOO_LARGE', reason: reasonText === '' ? 'the peer refused a frame larger than its channel.maxFrameBytes' : reasonText, byPeer: true };
    case WS_CLOSE_PROTOCOL_ERROR:
    case WS_CLOSE_UNSUPPORTED_DATA:
    case WS_CLOSE_INVALID_DATA:
      return { code: 'TANDEM_ERR_FRAME_MALFORMED', reason: reasonText === '' ? `the peer refused a frame (close ${status})` : reasonText, byPeer: true };
    case WS_CLOSE_TANDEM_ERROR:
      return { code: /^TANDEM_ERR_[A-Z_]{1,64}$/.test(reasonText) ? reasonText : 'TANDEM_ERR_PROTOCOL', reason: reasonText, byPeer: true };
    default:
      return { code: 'TANDEM_ERR_PROTOCOL', reason: `unexpected close code ${status}${reasonText === '' ? '' : `: ${reasonText}`}`, byPeer: true };
  }
}
