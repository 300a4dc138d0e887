// Reading a large file in chunks with several reads in flight: every chunk handed on in order with
// the bytes at its offset, every block's hash, and a file cut shorter while it is read reported
// torn with the size as read (never a chunk past a short one).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { READS_IN_FLIGHT, chunkBytesFor, readBlocks } from '../../../agent/capture/block-reader.ts';
import { HASH_BYTES, hash64, initHash } from '../../../shared/hash.ts';

const BS = 64 * 1024;
const dirs: string[] = [];

beforeAll(initHash);
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A file of `bytes` whose every block differs from the others. */
function bigFile(bytes: number): { file: string; content: Buffer } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-block-reader-'));
  dirs.push(dir);
  const content = Buffer.alloc(bytes);
  for (let off = 0; off + 4 <= bytes; off += 8) content.writeUInt32LE(off >>> 3, off);
  const file = path.join(dir, 'big');
  fs.writeFileSync(file, content);
  return { file, content };
}

describe('readBlocks', () => {
  it('hands on every chunk in order with the bytes at its offset, and hashes every block, with several reads in flight', async () => {
    const chunk = chunkBytesFor(BS);
    // More chunks than reads in flight, and a short last block.
    const bytes = (READS_IN_FLIGHT * 2 + 1) * chunk + 3 * BS + 1234;
    const { file, content } = bigFile(bytes);
    const offsets: number[] = [];
    const out = await readBlocks(
      file,
      BS,
      () => 0,
      async (offset, data, hashes) => {
        offsets.push(offset);
        expect(data.equals(content.subarray(offset, offset + data.length))).toBe(true);
        expect(hashes.length).toBe(Math.ceil(data.length / BS) * HASH_BYTES);
        // The buffer must stay as it is until this handler settles, with reads running meanwhile.
        await new Promise((r) => setTimeout(r, 1));
        expect(data.equals(content.subarray(offset, offset + data.length))).toBe(true);
      },
      undefined,
      READS_IN_FLIGHT,
    );
    if (out.kind !== 'file') throw new Error(out.kind);
    expect(out.torn).toBe(false);
    expect(out.size).toBe(bytes);
    expect(offsets).toEqual(Array.from({ length: Math.ceil(bytes / chunk) }, (_, i) => i * chunk));
    const want = Buffer.concat(Array.from({ length: Math.ceil(bytes / BS) }, (_, i) => hash64(content.subarray(i * BS, Math.min(bytes, (i + 1) * BS)))));
    expect(out.blocks.equals(want)).toBe(true);
  });

  it('reports a file cut shorter while it is read as torn, with what was read, and hands on nothing past a short chunk', async () => {
    const chunk = chunkBytesFor(BS);
    const bytes = (READS_IN_FLIGHT * 3) * chunk;
    const { file, content } = bigFile(bytes);
    const cutAt = (READS_IN_FLIGHT + 1) * chunk + 5 * BS;
    const offsets: number[] = [];
    let shortSeen = false;
    const out = await readBlocks(
      file,
      BS,
      () => 0,
      (offset, data) => {
        expect(shortSeen).toBe(false);
        offsets.push(offset);
        if (data.length < chunk) shortSeen = true;
        expect(data.equals(content.subarray(offset, offset + data.length))).toBe(true);
        if (offset === 0) fs.truncateSync(file, cutAt);
      },
      undefined,
      READS_IN_FLIGHT,
    );
    if (out.kind !== 'file') throw new Error(out.kind);
    expect(out.torn).toBe(true);
    // The reads already running may have got their whole chunks; none past the cut is whole.
    expect(out.size).toBeLessThanOrEqual(Math.max(cutAt, READS_IN_FLIGHT * chunk));
    expect(out.blocks.length).toBe(Math.ceil(out.size / BS) * HASH_BYTES);
    for (let i = 0; i < offsets.length; i++) expect(offsets[i]).toBe(i * chunk);
    expect(out.size).toBeGreaterThan(offsets.at(-1)!);
  });
});
