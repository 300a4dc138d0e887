// The active side of an initial synchronisation, against a stand-in for capture: it must not run
// further ahead of the passive's acknowledgements than its backlog bound (what runs ahead sits in
// the journal's send cache and arenas: 130-180 MiB of the active's peak for 100,000 small files),
// and it sends a file's extended attributes as they are, listing them only when the manifest's
// ctime cannot prove there are none.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Capture, CaptureTaskContext } from '../../../agent/capture/index.ts';
import { Manifest } from '../../../agent/manifest/index.ts';
import { SyncRunner } from '../../../agent/sync/index.ts';
import type { ProtectedRoot } from '../../../shared/config/index.ts';
import { systemClock } from '../../../shared/clock.ts';
import { hash64, initHash } from '../../../shared/hash.ts';
import { writeXattrs, xattrsHash } from '../../../agent/tree/index.ts';
import { silentLogger } from '../../../shared/log.ts';
import type { DataRecord, MetaRecord, NewRecord } from '../../../shared/protocol/index.ts';
import { removeTempDirs, tempDir } from '../journal/helpers.ts';

beforeAll(async () => {
  await initHash();
});
afterEach(removeTempDirs);

const FILES = 200;
const FILE_BYTES = 4096;
const LIMIT = 64 * 1024;
const SLICE = 16 * 1024;

/** A tree of FILES files on disk and the active manifest that describes it. */
async function tree(): Promise<{ dir: string; manifest: Manifest }> {
  const dir = await tempDir();
  const manifest = new Manifest(['data']);
  for (let i = 0; i < FILES; i++) {
    const data = Buffer.alloc(FILE_BYTES, (i % 250) + 1);
    data.writeUInt32LE(i, 0);
    const p = path.join(dir, `f${i}`);
    fs.writeFileSync(p, data);
    const st = fs.lstatSync(p);
    manifest.set('data', `f${i}`, { kind: 'file', mode: st.mode & 0o7777, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, blocks: hash64(data), readAt: 0 });
  }
  return { dir, manifest };
}

/** A runner of root "data" at `dir`, against the stand-in `capture`. */
function runnerFor(id: string, capture: Capture, manifest: Manifest, dir: string, sliceBytes: number, backlog?: { bytes: () => number; limit: number }): SyncRunner {
  return new SyncRunner({
    id,
    capture,
    manifest,
    shadow: new Manifest(['data']),
    roots: [{ name: 'data', path: dir, exclude: [] } as unknown as ProtectedRoot],
    blockSize: 64 * 1024,
    sliceBytes,
    log: silentLogger(),
    clock: systemClock,
    backlog,
  });
}

describe('SyncRunner', () => {
  it('journals no more than its backlog bound (and one slice) ahead of what the passive acknowledged, and sends every file', async () => {
    const { dir, manifest } = await tree();
    let seq = 0;
    let journaled = 0;
    let acked = 0;
    let mostAhead = 0;
    let writes = 0;
    const listeners = new Set<(r: DataRecord) => void>();
    const ctx: CaptureTaskContext = {
      append(r: NewRecord): number {
        seq++;
        if (r.op === 'write') {
          journaled += r.data.length;
          writes++;
        }
        mostAhead = Math.max(mostAhead, journaled - acked);
        for (const cb of listeners) cb({ ...r, seq } as DataRecord);
        return seq;
      },
      makeRoom: async () => {},
      refresh: async () => {},
      headSeq: () => seq,
    };
    const capture = {
      runTask: async (fn: (c: CaptureTaskContext) => Promise<void>) => fn(ctx),
      onAppend: (cb: (r: DataRecord) => void) => {
        listeners.add(cb);
        return () => listeners.delete(cb);
      },
    } as unknown as Capture;
    // The passive: acknowledges 4 KiB every 2 ms, far slower than the runner reads.
    const passive = setInterval(() => (acked = Math.min(journaled, acked + FILE_BYTES)), 2);
    try {
      const runner = runnerFor('s1', capture, manifest, dir, SLICE, { bytes: () => journaled - acked, limit: LIMIT });
      await runner.run(() => {});
      // Every file made equal is read from the active manifest: the shadow keeps no copy of it.
      expect(runner.convergedPaths).toBe(FILES);
    } finally {
      clearInterval(passive);
    }
    expect(writes).toBe(FILES);
    expect(journaled).toBe(FILES * FILE_BYTES);
    // Checked before each slice: the bound, plus a slice and the file that crossed it.
    expect(mostAhead).toBeLessThanOrEqual(LIMIT + SLICE + FILE_BYTES);
  });

  it("sends a file's attributes as they are: listed unless the manifest's ctime proves there are none", async () => {
    const dir = await tempDir();
    const manifest = new Manifest(['data']);
    const entryOf = (rel: string, xattrHash: Buffer | undefined) => {
      const p = path.join(dir, rel);
      const data = fs.readFileSync(p);
      const st = fs.lstatSync(p);
      return { kind: 'file' as const, mode: st.mode & 0o7777, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, uid: st.uid, gid: st.gid, blocks: hash64(data), readAt: 0, ctimeMs: st.ctimeMs, xattrHash };
    };
    fs.mkdirSync(path.join(dir, 'a'));
    fs.mkdirSync(path.join(dir, 'b'));
    for (const rel of ['a/plain', 'a/tagged', 'a/later', 'b/plain']) fs.writeFileSync(path.join(dir, rel), rel);
    const tag: [string, Buffer] = ['user.tandem-test', Buffer.from('v1')];
    expect(writeXattrs(path.join(dir, 'a/tagged'), [tag]).failed).toEqual([]);
    for (const rel of ['a/plain', 'b/plain']) manifest.set('data', rel, entryOf(rel, undefined));
    manifest.set('data', 'a/tagged', entryOf('a/tagged', xattrsHash([tag])));
    const later = entryOf('a/later', undefined);
    manifest.set('data', 'a/later', later);
    // An attribute set after the manifest read the file moves its ctime (once the timestamp's
    // tick has passed, as capture makes sure before it records one): the proof no longer holds.
    while (Date.now() < later.ctimeMs + 20) await new Promise((r) => setImmediate(r));
    expect(writeXattrs(path.join(dir, 'a/later'), [tag]).failed).toEqual([]);
    expect(fs.lstatSync(path.join(dir, 'a/later')).ctimeMs).not.toBe(later.ctimeMs);

    let seq = 0;
    const metas = new Map<string, MetaRecord[]>();
    const refreshed: string[] = [];
    const ctx: CaptureTaskContext = {
      append(r: NewRecord): number {
        if (r.op === 'meta') metas.set(r.path, [...(metas.get(r.path) ?? []), { ...r, seq: seq + 1 } as MetaRecord]);
        return ++seq;
      },
      makeRoom: async () => {},
      // What capture does with a path that no longer matches: reads it again (here, its attributes).
      refresh: async (_root: string, rel: string) => {
        refreshed.push(rel);
        manifest.set('data', rel, entryOf(rel, xattrsHash([tag])));
      },
      headSeq: () => seq,
    };
    const capture = { runTask: async (fn: (c: CaptureTaskContext) => Promise<void>) => fn(ctx), onAppend: () => () => {} } as unknown as Capture;
    const runner = runnerFor('s2', capture, manifest, dir, 1 << 20);
    await runner.run(() => {});
    const sent = (rel: string) => metas.get(rel)?.map((m) => (m.xattrs ?? []).map(([n, v]) => `${n}=${Buffer.from(v).toString()}`));
    expect(sent('a/plain')).toEqual([[]]);
    expect(sent('b/plain')).toEqual([[]]);
    expect(sent('a/tagged')).toEqual([['user.tandem-test=v1']]);
    // Not sent as attribute-less on the manifest's word: found changed, read again, then sent.
    expect(refreshed).toEqual(['a/later']);
    expect(sent('a/later')).toEqual([['user.tandem-test=v1']]);
  });
});
