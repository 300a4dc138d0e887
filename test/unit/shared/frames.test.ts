import { beforeAll, describe, expect, it } from 'vitest';
import { hash64, initHash } from '../../../shared/hash.ts';
import { dataVerified, decodeAcceptedFrames, encodeFrame, encodeFrameInto, compressWrite, parseFrames, type WriteRecord } from '../../../shared/protocol/index.ts';

beforeAll(async () => {
  await initHash();
});

function writeFrame(data = Buffer.from('block data '.repeat(500))): { frame: Buffer; record: WriteRecord } {
  const record: WriteRecord = { op: 'write', seq: 7, root: 'data', path: 'a/b.bin', offset: 65536, data, hash: hash64(data) };
  return { frame: encodeFrameInto(record, (n) => Buffer.alloc(n)), record };
}

describe('frames', () => {
  it('decode a write frame to the same record, data and hash', () => {
    const { frame, record } = writeFrame();
    const { frames, stop } = parseFrames(frame);
    expect(stop.kind).toBe('end');
    const e = frames[0]!.entry as WriteRecord;
    expect({ ...e, data: Buffer.from(e.data), hash: Buffer.from(e.hash) }).toEqual({ ...record, data: record.data, hash: record.hash });
  });

  it('catch damage anywhere in a write frame: its fields, its data, or a hash that does not match the data', () => {
    const { frame } = writeFrame();
    for (const at of [8, 20, 40, frame.length - 1, frame.length - 300]) {
      const bad = Buffer.from(frame);
      bad[at] = bad[at]! ^ 0x01;
      expect(parseFrames(bad).stop.kind, `byte ${at}`).not.toBe('end');
    }
    const data = Buffer.from('real data');
    const lying: WriteRecord = { op: 'write', seq: 1, root: 'data', path: 'x', offset: 0, data, hash: hash64(Buffer.from('other data')) };
    expect(parseFrames(encodeFrameInto(lying, (n) => Buffer.alloc(n))).stop.kind).toBe('checksum');
  });

  it('report a frame cut short as truncated, so a log can cut its torn tail', () => {
    const { frame } = writeFrame();
    const both = Buffer.concat([encodeFrame({ op: 'unlink', seq: 6, root: 'data', path: 'gone' }), frame]);
    const { frames, stop } = parseFrames(both.subarray(0, both.length - 10));
    expect(frames.length).toBe(1);
    expect(stop.kind).toBe('truncated');
  });

  it('decode frames already accepted to the same entries as parseFrames, split write frames included', () => {
    const { frame } = writeFrame();
    const buf = Buffer.concat([encodeFrame({ op: 'unlink', seq: 6, root: 'data', path: 'gone' }), frame, encodeFrame({ op: 'rmdir', seq: 8, root: 'data', path: 'd' })]);
    const checked = parseFrames(buf);
    expect(checked.stop.kind).toBe('end');
    const plain = (x: unknown) => JSON.parse(JSON.stringify(x, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v))) as unknown;
    expect(plain(decodeAcceptedFrames(buf))).toEqual(plain(checked.frames.map((f) => f.entry)));
    expect(() => decodeAcceptedFrames(buf.subarray(0, buf.length - 3))).toThrow(/truncated/);
  });

  it('mark as hash-checked only the write records decoded from accepted split frames, never a copy or a compressed block', () => {
    const { frame } = writeFrame();
    const data = Buffer.from('x'.repeat(64 * 1024));
    const raw: WriteRecord = { op: 'write', seq: 8, root: 'data', path: 'c.txt', offset: 0, data, hash: hash64(data) };
    const compressed = compressWrite(raw, 1);
    expect(compressed.encoding).toBeDefined();
    const buf = Buffer.concat([frame, encodeFrameInto(compressed, (n) => Buffer.alloc(n)), encodeFrame({ op: 'unlink', seq: 9, root: 'data', path: 'gone' })]);
    expect(parseFrames(buf).stop.kind).toBe('end');
    const [split, whole, unlink] = decodeAcceptedFrames(buf);
    expect(dataVerified(split!)).toBe(true);
    // Its hash is over the raw block, checked only once the applier inflated it.
    expect(dataVerified(whole!)).toBe(false);
    expect(dataVerified(unlink!)).toBe(false);
    // A record built from a checked one (other data, same hash) is hashed again by the applier.
    expect(dataVerified({ ...split! })).toBe(false);
    // parseFrames marks the split write entries it hashed itself (the receiver applies those
    // when it kept them), and nothing else.
    const parsed = parseFrames(buf).frames.map((f) => dataVerified(f.entry));
    expect(parsed).toEqual([true, false, false]);
  });
});
