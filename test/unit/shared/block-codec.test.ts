// Per-block compression of write records: round trips, incompressible blocks stay raw, and a
// block that does not inflate to what its record states is refused with a stable code.
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { TandemError } from '../../../shared/errors.ts';
import { hash64, initHash } from '../../../shared/hash.ts';
import {
  compressWrite,
  decompressWrite,
  encodeFrameInto,
  entryProblem,
  parseFrames,
  payloadBytes,
  type WriteRecord,
} from '../../../shared/protocol/index.ts';

beforeAll(async () => {
  await initHash();
});

function textBlock(bytes = 65536): Buffer {
  const words = ['replica', 'journal', 'heartbeat', 'failover', 'passive', 'active', 'block', 'sequence', '\n'];
  const parts: string[] = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const w = words[(i * 7 + (i >> 3)) % words.length]!;
    parts.push(w, ' ');
    n += w.length + 1;
  }
  return Buffer.from(parts.join('')).subarray(0, bytes);
}

function record(data: Buffer): WriteRecord {
  return { op: 'write', seq: 3, root: 'data', path: 'logs/app.log', offset: 131072, data, hash: hash64(data) };
}

function undecodable(fn: () => unknown): TandemError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TandemError);
    return err as TandemError;
  }
  throw new Error('it was accepted');
}

describe('block codec', () => {
  it('compresses a text block at every level and inflates it back to the same bytes and hash', () => {
    const raw = textBlock();
    for (const level of [1, 6, 9]) {
      const c = compressWrite(record(raw), level);
      expect(c.encoding).toBe('deflate-raw');
      expect(c.rawLength).toBe(raw.length);
      expect(c.data.length).toBeLessThan(raw.length / 3);
      expect(c.hash).toEqual(hash64(raw)); // the hash stays over the raw block
      expect(entryProblem(c)).toBeUndefined();
      expect(payloadBytes(c)).toBe(raw.length);
      const d = decompressWrite(c);
      expect(Buffer.from(d.data).equals(raw)).toBe(true);
      expect(d.encoding).toBeUndefined();
      expect(d.rawLength).toBeUndefined();
    }
  });

  it('keeps an incompressible block raw, so it is never stored or sent larger', () => {
    const raw = crypto.randomBytes(65536);
    const r = record(raw);
    expect(compressWrite(r, 1)).toBe(r);
    expect(compressWrite(r, 9)).toBe(r);
  });

  it('keeps a block raw unread when its first 4 KiB do not shrink (the cheap test for random data)', () => {
    const raw = Buffer.concat([crypto.randomBytes(4096), textBlock(61440)]);
    const r = record(raw);
    expect(compressWrite(r, 6)).toBe(r);
    // Past the sample, compressible data is compressed as usual.
    expect(compressWrite(record(Buffer.concat([textBlock(4096), crypto.randomBytes(4096), textBlock(57344)])), 6).encoding).toBe('deflate-raw');
  });

  it('keeps tiny blocks raw and does nothing when compression is off', () => {
    const small = record(Buffer.from('a'.repeat(100)));
    expect(compressWrite(small, 6)).toBe(small);
    const big = record(textBlock());
    expect(compressWrite(big, 0)).toBe(big);
  });

  it('passes a raw record through decompression untouched', () => {
    const r = record(textBlock(1000));
    expect(decompressWrite(r)).toBe(r);
  });

  it('refuses data that is not raw deflate with TANDEM_ERR_BLOCK_UNDECODABLE, operation, cause and hint', () => {
    const raw = textBlock();
    const bad = { ...compressWrite(record(raw), 6), data: crypto.randomBytes(2000) };
    const e = undecodable(() => decompressWrite(bad));
    expect(e.code).toBe('TANDEM_ERR_BLOCK_UNDECODABLE');
    expect(e.op).toBe('decompress write data/logs/app.log at offset 131072');
    expect(e.reason).toContain('do not inflate');
    expect(e.hint).toBeDefined();
    expect(e.details).toMatchObject({ seq: 3, root: 'data', path: 'logs/app.log', offset: 131072 });
  });

  it('refuses a block that inflates to more or less than its record states (no deflate bomb)', () => {
    const raw = textBlock();
    const c = compressWrite(record(raw), 6);
    expect(undecodable(() => decompressWrite({ ...c, rawLength: raw.length - 1 })).code).toBe('TANDEM_ERR_BLOCK_UNDECODABLE');
    expect(undecodable(() => decompressWrite({ ...c, rawLength: raw.length + 1 })).reason).toContain(`inflates to ${raw.length} bytes`);
    // 16 MiB of zeros deflate to a few KiB: stated as 64 KiB, inflating stops there.
    const bomb = { ...c, data: zlib.deflateRawSync(Buffer.alloc(16 << 20)) };
    expect(undecodable(() => decompressWrite(bomb)).code).toBe('TANDEM_ERR_BLOCK_UNDECODABLE');
    // A stream cut short.
    expect(undecodable(() => decompressWrite({ ...c, data: c.data.subarray(0, c.data.length >> 1) })).code).toBe('TANDEM_ERR_BLOCK_UNDECODABLE');
  });

  it('lets the record check refuse an unknown encoding or a bad raw length', () => {
    const c = compressWrite(record(textBlock()), 1);
    expect(entryProblem({ ...c, encoding: 'zstd' })).toContain('unknown encoding');
    expect(entryProblem({ ...c, rawLength: 0 })).toContain('rawLength');
    expect(entryProblem({ ...c, rawLength: 17 << 20 })).toContain('rawLength');
    const { encoding: _e, ...noEncoding } = c;
    expect(entryProblem(noEncoding)).toContain('encoding');
    // Records written before compression existed have neither field and stay valid.
    expect(entryProblem(record(textBlock(100)))).toBeUndefined();
  });

  it('frames a compressed record whole, so its checksum covers the compressed bytes', () => {
    const c = compressWrite(record(textBlock()), 6);
    const frame = encodeFrameInto(c, (n) => Buffer.alloc(n));
    const { frames, stop } = parseFrames(frame);
    expect(stop.kind).toBe('end');
    const e = frames[0]!.entry as WriteRecord;
    expect(e.encoding).toBe('deflate-raw');
    expect(Buffer.from(decompressWrite(e).data).equals(textBlock())).toBe(true);
    for (const at of [20, frame.length >> 1, frame.length - 1]) {
      const bad = Buffer.from(frame);
      bad[at] = bad[at]! ^ 0x01;
      expect(parseFrames(bad).stop.kind, `byte ${at}`).toBe('checksum');
    }
  });
});
