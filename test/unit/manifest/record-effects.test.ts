// What records do to a manifest (the passive's, and the synchronisation's shadow of it): the
// block hashes of small files must not cost an ArrayBuffer each (100,000 files of 1 KiB:
// ~200 bytes of bookkeeping per entry for an 8-byte hash), nor a hidden class each (~400 bytes).
import v8 from 'node:v8';
import vm from 'node:vm';
import { beforeAll, describe, expect, it } from 'vitest';
import { applyRecordToManifest } from '../../../agent/manifest/index.ts';
import { Manifest } from '../../../agent/manifest/manifest.ts';
import { OWNER_NAMES_MAX, ownerNamesKept, ownerOf } from '../../../agent/manifest/record-effects.ts';
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

  it('gives the entries of files set by the same records one hidden class, not one each', () => {
    // V8 shares hidden classes among objects built alike; an object spread-cloned and then
    // extended gets its own once the code is warm. %HaveSameMap tells (a natives flag set here).
    v8.setFlagsFromString('--allow-natives-syntax');
    // Natives syntax compiles only after the flag is set, so the probe is compiled here.
    const sameMap = vm.runInThisContext('(a, b) => %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
    const m = new Manifest(['data']);
    const n = 3000;
    for (let i = 0; i < n; i++) {
      const data = Buffer.alloc(1024, i & 0xff);
      const p = `d/f${i}`;
      applyRecordToManifest(m, { seq: 1, op: 'file', root: 'data', path: p, size: 1024 } as DataRecord, BS);
      applyRecordToManifest(m, { seq: 2, op: 'write', root: 'data', path: p, offset: 0, data, hash: hash64(data) } as DataRecord, BS);
      applyRecordToManifest(m, { seq: 3, op: 'meta', root: 'data', path: p, mode: 0o644, mtimeMs: 1e12 + i + 0.5, uid: 0, gid: 0, user: 'root', group: 'root', xattrs: [] } as DataRecord, BS);
      applyRecordToManifest(m, { seq: 4, op: 'mkdir', root: 'data', path: `e${i}`, mode: 0o755, uid: 0, gid: 0, xattrs: [] } as DataRecord, BS);
    }
    for (const [a, b] of [
      [`d/f${n - 2}`, `d/f${n - 1}`],
      [`e${n - 2}`, `e${n - 1}`],
    ] as const) {
      const ea = m.get('data', a)!;
      const eb = m.get('data', b)!;
      expect(ea.uid).toBe(0);
      expect(sameMap(ea, eb)).toBe(true);
    }
  });

  it('shares owner names from a bounded table: a peer sending endless new names grows nothing past it', () => {
    // Names come from the network: each record could carry another one.
    for (let i = 0; i < OWNER_NAMES_MAX + 5000; i++) {
      const o = ownerOf({ uid: i, gid: i, user: `u${i}`, group: `g${i}` });
      expect(o).toEqual({ uid: i, gid: i, user: `u${i}`, group: `g${i}` });
    }
    expect(ownerNamesKept()).toBe(OWNER_NAMES_MAX);
    // Past the bound a name is kept as it came, still right.
    expect(ownerOf({ uid: 0, gid: 0, user: 'root', group: 'wheel' })).toEqual({ uid: 0, gid: 0, user: 'root', group: 'wheel' });
  });
});
