// The active side of an initial synchronisation, against a stand-in for capture: it must not run
// further ahead of the passive's acknowledgements than its backlog bound (what runs ahead sits in
// the journal's send cache and arenas: 130-180 MiB of the active's peak for 100,000 small files).
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Capture, CaptureTaskContext } from '../../../agent/capture/index.ts';
import { Manifest } from '../../../agent/manifest/index.ts';
import { SyncRunner } from '../../../agent/sync/index.ts';
import type { ProtectedRoot } from '../../../shared/config/index.ts';
import { systemClock } from '../../../shared/clock.ts';
import { hash64, initHash } from '../../../shared/hash.ts';
import { silentLogger } from '../../../shared/log.ts';
import type { DataRecord, NewRecord } from '../../../shared/protocol/index.ts';
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
      const runner = new SyncRunner({
        id: 's1',
        capture,
        manifest,
        shadow: new Manifest(['data']),
        roots: [{ name: 'data', path: dir, exclude: [] } as unknown as ProtectedRoot],
        blockSize: 64 * 1024,
        sliceBytes: SLICE,
        log: silentLogger(),
        clock: systemClock,
        backlog: { bytes: () => journaled - acked, limit: LIMIT },
      });
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
});
