// What records do to a manifest (the passive's, and the synchronisation's shadow of it): the
// block hashes of small files must not cost an ArrayBuffer each (100,000 files of 1 KiB:
// ~200 bytes of bookkeeping per entry for an 8-byte hash).
import { beforeAll, describe, expect, it } from 'vitest';
import { applyRecordToManifest } from '../../../agent/manifest/index.ts';
import { Manifest } from '../../../agent/manifest/manifest.ts';
import { hash64, initHash } from '../../../shared/hash.ts';
import type { DataRecord } from '../../../shared/protocol/index.ts';

beforeAll(async () => {
  await initHash();
});

const BS = 64 * 1024;

describe('applyRecordToManifest', () => {
  it('keeps the block hashes of many small files in shared memory, each file its own right hashes', () => {
    const m = new Manifest(['data']);
    const n = 2000;
    for (let i = 0; i < n; i++) {
      const data = Buffer.alloc(1024, i & 0xff);
      data.writeUInt32LE(i, 0);
      let seq = 3 * i;
      const recs: DataRecord[] = [
        { seq: ++seq, op: 'file', root: 'data', path: `f${i}`, size: 1024 },
        { seq: ++seq, op: 'write', root: 'data', path: `f${i}`, offset: 0, data, hash: hash64(data) },
        { seq: ++seq, op: 'meta', root: 'data', path: `f${i}`, mode: 0o644, mtimeMs: 1000 + i },
      ] as DataRecord[];
      for (const r of recs) applyRecordToManifest(m, r, BS);
    }
    const buffers = new Set<ArrayBufferLike>();
    for (let i = 0; i < n; i++) {
      const e = m.get('data', `f${i}`);
      expect(e?.kind).toBe('file');
      if (e?.kind !== 'file') continue;
      const data = Buffer.alloc(1024, i & 0xff);
      data.writeUInt32LE(i, 0);
      expect(e.blocks.equals(hash64(data))).toBe(true);
      buffers.add(e.blocks.buffer);
    }
    // Node's pool: 8 KiB shared by about a thousand 8-byte hashes; an ArrayBuffer each was 2,000.
    expect(buffers.size).toBeLessThanOrEqual(n / 100);
  });
});
