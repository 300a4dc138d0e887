// The manifest keeps each entry in its kind's one layout (agent/manifest/entry-shape.ts): entries
// built by a literal with spreads, by Object.assign, from fs.Stats or decoded from the store all
// share one hidden class, and no value changes on the way in. The layout is what keeps 100,000
// entries inside the agents' memory goal (bench (e)); the values are what everything else reads.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import { beforeAll, describe, expect, it } from 'vitest';
import { Manifest, type Entry, type FileEntry } from '../../../agent/manifest/manifest.ts';
import { ManifestStore } from '../../../agent/manifest/manifest-store.ts';
import { silentLogger } from '../../../shared/log.ts';
import { initHash } from '../../../shared/hash.ts';

v8.setFlagsFromString('--allow-natives-syntax');
// eslint-disable-next-line @typescript-eslint/no-implied-eval -- V8's own test of a shared hidden class
const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;

const owner = { uid: 0, gid: 0, user: 'root', group: 'root' };

describe('manifest entry layout', () => {
  beforeAll(async () => {
    await initHash();
  });

  it('keeps every field of every kind exactly, large and negative numbers included', () => {
    const m = new Manifest(['r']);
    const full: FileEntry = {
      kind: 'file', mode: 0o4755, size: 5 * 2 ** 30, mtimeMs: 1764930000123.25, ino: 2 ** 40 + 3, blocks: Buffer.from('0123456789abcdef'),
      readAt: 1764930000999, nlink: 3, uid: 70000, gid: 2 ** 31 + 5, user: 'u', group: 'g', xattrHash: Buffer.alloc(8, 7), ctimeMs: 1764930000555.25,
    };
    const entries: [string, Entry][] = [
      ['f', full],
      ['bare', { kind: 'file', mode: 0o600, size: 0, mtimeMs: 0, ino: 0, blocks: Buffer.alloc(0), readAt: 0 }],
      ['d', { kind: 'dir', mode: 0o2775, ino: -4, mtimeMs: 12.5, ...owner, xattrHash: Buffer.alloc(8, 1), ctimeMs: 13 }],
      ['d2', { kind: 'dir', mode: 0o755, ino: 9, mtimeMs: 0 }],
      ['l', { kind: 'symlink', target: '../x', ino: 11, mtimeMs: 1.5, ...owner }],
    ];
    for (const [p, e] of entries) m.set('r', p, e);
    for (const [p, e] of entries) {
      const got = m.get('r', p)!;
      // Every field given comes back with the same value; a field not given reads as absent.
      for (const [k, v] of Object.entries(e)) expect((got as unknown as Record<string, unknown>)[k], `${p}.${k}`).toEqual(v);
      expect(got).toEqual(e);
    }
    expect(Object.is((m.get('r', 'f') as FileEntry).size, 5 * 2 ** 30)).toBe(true);
    expect(m.pathForIno('r', 2 ** 40 + 3)).toBe('f');
    expect(m.pathForIno('r', -4)).toBe('d');
  });

  it('gives entries built in different ways, from fs.Stats or from the store, one hidden class per kind', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-shape-'));
    try {
      fs.writeFileSync(path.join(dir, 'a'), 'x');
      const st = fs.statSync(path.join(dir, 'a'));
      const store = await ManifestStore.open({ dir: path.join(dir, 'm'), roots: ['r'], blockSize: 65536, log: silentLogger() });
      const m = store.manifest;
      // As capture builds them: a literal with an owner spread in, numbers from fs.Stats.
      m.set('r', 'a', { kind: 'file', mode: st.mode, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, blocks: Buffer.alloc(8), readAt: Date.now(), ...owner, xattrHash: undefined, ctimeMs: st.ctimeMs, nlink: st.nlink });
      // As the passive's record effects build them: Object.assign onto a fresh object.
      m.set('r', 'b', Object.assign({}, { kind: 'file' as const, mode: 0o600, size: 0, mtimeMs: 0, ino: 0, blocks: Buffer.alloc(0), readAt: 0 }, { size: 3 }, owner));
      // A spread with fields in another order.
      m.set('r', 'c', { ...(m.get('r', 'a') as FileEntry), nlink: 1, readAt: 0, ino: 77 });
      m.set('r', 'd1', { kind: 'dir', mode: st.mode, ino: st.ino, mtimeMs: st.mtimeMs, ...owner, xattrHash: undefined, ctimeMs: st.ctimeMs });
      m.set('r', 'd2', Object.assign({ kind: 'dir' as const, mode: 0o755, ino: 0, mtimeMs: 0 }, owner));
      m.set('r', 's1', { kind: 'symlink', target: 'a', ino: st.ino, mtimeMs: st.mtimeMs, ...owner });
      m.set('r', 's2', Object.assign({ kind: 'symlink' as const, target: 'b', ino: 0, mtimeMs: 0 }, {}));
      await store.flush();
      await store.close();
      // Decoded from the store's file, as after a restart.
      const again = await ManifestStore.open({ dir: path.join(dir, 'm'), roots: ['r'], blockSize: 65536, log: silentLogger() });
      const n = again.manifest;
      const files = [m.get('r', 'a')!, m.get('r', 'b')!, m.get('r', 'c')!, n.get('r', 'a')!, n.get('r', 'b')!];
      for (const f of files) expect(haveSameMap(f, files[0]!), JSON.stringify(Object.keys(f))).toBe(true);
      const dirs = [m.get('r', 'd1')!, m.get('r', 'd2')!, n.get('r', 'd1')!];
      for (const d of dirs) expect(haveSameMap(d, dirs[0]!)).toBe(true);
      const links = [m.get('r', 's1')!, m.get('r', 's2')!, n.get('r', 's2')!];
      for (const l of links) expect(haveSameMap(l, links[0]!)).toBe(true);
      expect(n.get('r', 'c')).toEqual(m.get('r', 'c'));
      await again.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
