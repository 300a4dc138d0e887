import { describe, expect, it } from 'vitest';
import { closeFrameFor, closeInfoFromPeer, codeForWsError } from '../../../agent/channel/close-reason.ts';

describe('closeFrameFor', () => {
  it('closes normally with the message as the reason', () => {
    expect(closeFrameFor('normal', 'replaced')).toEqual({ status: 1000, reason: 'replaced' });
  });

  it('closes on an error with 4000 and the code as the reason', () => {
    expect(closeFrameFor('TANDEM_ERR_FRAME_MALFORMED', 'a long explanation')).toEqual({ status: 4000, reason: 'TANDEM_ERR_FRAME_MALFORMED' });
  });

  it('keeps the reason within the 123 bytes a close frame allows, without splitting a character', () => {
    const { reason } = closeFrameFor('normal', 'é'.repeat(100));
    expect(Buffer.byteLength(reason)).toBeLessThanOrEqual(123);
    expect(reason).toBe('é'.repeat(61));
  });
});

describe('closeInfoFromPeer', () => {
  it.each([
    [1000, 'replaced', { code: 'normal', reason: 'replaced', byPeer: true }],
    [1001, '', { code: 'normal', reason: '', byPeer: true }],
    [1005, '', { code: 'normal', reason: '', byPeer: true }],
    [1006, '', { code: 'lost', reason: expect.stringContaining('without a close frame'), byPeer: true }],
    [1009, '', { code: 'TANDEM_ERR_FRAME_TOO_LARGE', reason: expect.any(String), byPeer: true }],
    [1002, '', { code: 'TANDEM_ERR_FRAME_MALFORMED', reason: expect.any(String), byPeer: true }],
    [1007, '', { code: 'TANDEM_ERR_FRAME_MALFORMED', reason: expect.any(String), byPeer: true }],
    [4000, 'TANDEM_ERR_PROTOCOL', { code: 'TANDEM_ERR_PROTOCOL', reason: 'TANDEM_ERR_PROTOCOL', byPeer: true }],
    [4000, 'rm -rf /', { code: 'TANDEM_ERR_PROTOCOL', reason: 'rm -rf /', byPeer: true }],
    [3001, 'odd', { code: 'TANDEM_ERR_PROTOCOL', reason: 'unexpected close code 3001: odd', byPeer: true }],
  ])('reads close %i %j', (status, reason, info) => {
    expect(closeInfoFromPeer(status, reason)).toEqual(info);
  });

  it("prefers the peer's last error message to its close frame", () => {
    const err = { code: 'TANDEM_ERR_APPLY_FAILED', message: 'disk full' };
    expect(closeInfoFromPeer(4000, 'TANDEM_ERR_APPLY_FAILED', err)).toEqual({ code: 'TANDEM_ERR_APPLY_FAILED', reason: 'disk full', byPeer: true });
    expect(closeInfoFromPeer(1006, '', err)).toEqual({ code: 'TANDEM_ERR_APPLY_FAILED', reason: 'disk full', byPeer: true });
  });

  it('ignores an earlier error message when the peer then closes normally', () => {
    expect(closeInfoFromPeer(1000, 'bye', { code: 'TANDEM_ERR_PROTOCOL', message: 'old' })).toEqual({ code: 'normal', reason: 'bye', byPeer: true });
  });
});

describe('codeForWsError', () => {
  it('maps ws payload limits to FRAME_TOO_LARGE and every other frame error to FRAME_MALFORMED', () => {
    expect(codeForWsError('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH')).toBe('TANDEM_ERR_FRAME_TOO_LARGE');
    expect(codeForWsError('WS_ERR_INVALID_OPCODE')).toBe('TANDEM_ERR_FRAME_MALFORMED');
    expect(codeForWsError(undefined)).toBe('TANDEM_ERR_FRAME_MALFORMED');
  });
});
