// The frame writer lays the same bytes as one encodeFrameOf per value, whatever the chunk size:
// frames never split across chunks, a frame larger than a chunk goes alone, and the chunk is
// reused only after the caller took it.
import { beforeAll, describe, expect, it } from 'vitest';
import { FrameWriter } from '../../../agent/manifest/frame-writer.ts';
import { encodeFrameOf, parseFramesWith } from '../../../shared/protocol/index.ts';
import { initHash } from '../../../shared/hash.ts';

beforeAll(initHash);

function writeAll(values: unknown[], chunkBytes: number): Buffer[] {
  const w = new FrameWriter(chunkBytes);
  const chunks: Buffer[] = [];
  for (const v of values) if (!w.add(v)) (chunks.push(Buffer.from(w.take())), expect(w.add(v)).toBe(true));
  chunks.push(Buffer.from(w.take()));
  expect(w.bytes).toBe(chunks.reduce((n, c) => n + c.length, 0));
  return chunks;
}

describe('frame writer', () => {
  const values = Array.from({ length: 500 }, (_, i) => ({ r: 'r', p: `dir/${'x'.repeat(i % 37)}/f${i}`, e: i % 50 === 7 ? { blocks: Buffer.alloc(300 + i, i & 0xff) } : null }));
  const expected = () => Buffer.concat(values.map((v) => encodeFrameOf(v)));

  for (const chunkBytes of [64, 256, 4096, 1 << 20]) {
    it(`frames exactly what encodeFrameOf does, in chunks of ${chunkBytes} bytes, none split`, () => {
      const chunks = writeAll(values, chunkBytes);
      expect(Buffer.concat(chunks).equals(expected())).toBe(true);
      let n = 0;
      for (const c of chunks) {
        const { frames, stop } = parseFramesWith<unknown>(c, 0, () => undefined);
        expect(stop.kind).toBe('end');
        n += frames.length;
        // Only a frame larger than a chunk makes a chunk larger than the rest.
        if (c.length > chunkBytes) expect(frames.length).toBe(1);
      }
      expect(n).toBe(values.length);
    });
  }

  it('takes nothing when nothing was added', () => {
    expect(new FrameWriter(128).take().length).toBe(0);
  });
});
