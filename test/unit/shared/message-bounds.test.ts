// What the protocol's shape checks bound before anything else looks at a message or a batch:
// the window fields of a hello, the strings of a peer's alarm, and the frame count of a batch
// read from its headers alone.
import { beforeAll, describe, expect, it } from 'vitest';
import { initHash } from '../../../shared/hash.ts';
import { countFrames, encodeFrame, messageProblem, type HelloMessage } from '../../../shared/protocol/index.ts';

const hello: HelloMessage = { t: 'hello', proto: 1, pair: 'p', node: 'beta', role: 'passive', generation: 'g', epoch: 1, serving: false, blockSize: 65536, headSeq: 0, firstSeq: 0, appliedSeq: 0, syncId: '' };

beforeAll(async () => {
  await initHash();
});

describe('message bounds', () => {
  it('accepts a hello with a window and what it holds, and refuses a malformed or empty window', () => {
    expect(messageProblem({ ...hello, window: { batches: 32, bytes: 64 << 20 }, held: { batches: 0, bytes: 0 } })).toBeUndefined();
    expect(messageProblem({ ...hello, window: { batches: -1, bytes: 1 } })).toBe('hello: bad window');
    expect(messageProblem({ ...hello, held: { batches: 1 } })).toBe('hello: bad held');
    expect(messageProblem({ ...hello, window: { batches: 0, bytes: 1 } })).toBe('hello: empty window');
  });

  it('refuses a peer-state whose alarm strings exceed their bounds', () => {
    const alarm = { code: 'TANDEM_ERR_APPLY_FAILED', message: 'disk full' };
    expect(messageProblem({ t: 'peer-state', state: 'paused', alarm })).toBeUndefined();
    expect(messageProblem({ t: 'peer-state', state: 'paused', alarm: { ...alarm, message: 'x'.repeat(5000) } })).toBe('peer-state: bad alarm');
    expect(messageProblem({ t: 'peer-state', state: 'paused', alarm: { ...alarm, hint: 7 } })).toBe('peer-state: bad alarm');
  });

  it('counts the frames of a batch from their headers, stopping past the limit', () => {
    const frames = Buffer.concat(Array.from({ length: 10 }, (_, i) => encodeFrame({ op: 'unlink', seq: i + 1, root: 'd', path: 'a' })));
    expect(countFrames(frames, 100)).toBe(10);
    expect(countFrames(frames, 4)).toBe(5);
    expect(countFrames(frames.subarray(0, frames.length - 3), 100)).toBe(10);
    expect(countFrames(Buffer.alloc(0), 100)).toBe(0);
  });
});
