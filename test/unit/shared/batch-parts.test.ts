import { describe, expect, it } from 'vitest';
import { decode, decodeBatchParts, encode, encodeBatchParts } from '../../../shared/protocol/codec.ts';

describe('a batch message in two parts', () => {
  it('decodes without joining the parts, to what decoding them joined gives, with the frames buffer itself', () => {
    const frames = Buffer.from('frames of a batch '.repeat(1000));
    const [head, body] = encodeBatchParts({ t: 'batch', first: 17, last: 42, frames });
    const joined = decode(Buffer.concat([head, body])) as Record<string, unknown>;
    const parts = decodeBatchParts(head, body as Buffer) as Record<string, unknown>;
    expect(parts).toEqual({ ...joined, frames: body });
    // The very buffer ws read: no copy.
    expect(parts.frames).toBe(body);
  });

  it('leaves anything else to the joined decode: other lengths, other messages, a damaged head', () => {
    const frames = Buffer.from('0123456789');
    const [head] = encodeBatchParts({ t: 'batch', first: 1, last: 2, frames });
    // The head announces 10 bytes: an 11-byte second part is not its frames.
    expect(decodeBatchParts(head, Buffer.alloc(11))).toBeUndefined();
    // Not a batch: a map ending in a "frames" bin32 of another message type.
    const other = Buffer.from(head);
    other.set(Buffer.from('hello'), other.indexOf(Buffer.from('batch')));
    expect(decodeBatchParts(other, frames)).toBeUndefined();
    // A message of one part, and bytes that are no msgpack at all.
    expect(decodeBatchParts(encode({ t: 'ack', seq: 3 }), frames)).toBeUndefined();
    const garbage = Buffer.concat([Buffer.from([0xde, 0xff, 0xff]), Buffer.from([0xa6, 0x66, 0x72, 0x61, 0x6d, 0x65, 0x73, 0xc6, 0, 0, 0, 10])]);
    expect(decodeBatchParts(garbage, frames)).toBeUndefined();
  });
});
