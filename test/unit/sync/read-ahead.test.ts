// Small files read ahead by a worker thread for the synchronisation (agent/sync/read-ahead.ts):
// the worker reads through the real parent directory only, never through a link, and what it
// read is sent only as the active manifest says the file is; the runner's records are those it
// sends without reading ahead.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Capture, CaptureTaskContext } from '../../../agent/capture/index.ts';
import { Manifest } from '../../../agent/manifest/index.ts';
import { SyncRunner } from '../../../agent/sync/index.ts';
import { ReadAhead } from '../../../agent/sync/read-ahead.ts';
import type { ProtectedRoot } from '../../../shared/config/index.ts';
import { systemClock } from '../../../shared/clock.ts';
import { hash64, initHash } from '../../../shared/hash.ts';
import { silentLogger } from '../../../shared/log.ts';
import { readXattrs, writeXattrs, xattrsHash } from '../../../agent/tree/index.ts';
import type { DataRecord, NewRecord } from '../../../shared/protocol/index.ts';
import { removeTempDirs, tempDir } from '../journal/helpers.ts';

beforeAll(async () => {
  await initHash();
});
afterEach(removeTempDirs);

const BS = 64 * 1024;

describe('ReadAhead', () => {
  it('reads the files asked for with their stat, and none through a link or a parent that is not where it must be', async () => {
    const dir = fs.realpathSync(await tempDir());
    const outside = fs.realpathSync(await tempDir());
    fs.mkdirSync(path.join(dir, 'a'));
    fs.writeFileSync(path.join(dir, 'a/one'), 'one');
    fs.writeFileSync(path.join(dir, 'a/two'), Buffer.alloc(5000, 7));
    fs.writeFileSync(path.join(dir, 'top'), 'top!');
    fs.writeFileSync(path.join(outside, 'secret'), 'secret');
    // A link as the file, a link as its parent, a parent named through a link above it.
    fs.symlinkSync(path.join(outside, 'secret'), path.join(dir, 'a/link'));
    fs.symlinkSync(outside, path.join(dir, 'out'));
    const ra = new ReadAhead();
    try {
      let pos = 0;
      const ask = (key: string, d: string, name: string, size: number) => ({ key, pos: pos++, dir: d, name, size });
      ra.request([
        ask('one', path.join(dir, 'a'), 'one', 3),
        ask('two', path.join(dir, 'a'), 'two', 5000),
        ask('top', dir, 'top', 4),
        ask('link', path.join(dir, 'a'), 'link', 6),
        ask('out', path.join(dir, 'out'), 'secret', 6),
        ask('via', `${dir}/out/../a`, 'one', 3),
        ask('size', path.join(dir, 'a'), 'one', 4),
        ask('none', path.join(dir, 'a'), 'missing', 3),
      ]);
      expect(ra.idle).toBe(false);
      await ra.settled();
      const one = ra.take('one')!;
      const st = fs.statSync(path.join(dir, 'a/one'));
      expect({ ino: one.ino, size: one.size, mtimeMs: one.mtimeMs, ctimeMs: one.ctimeMs }).toEqual({ ino: st.ino, size: 3, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs });
      expect(one.data.toString()).toBe('one');
      expect(ra.take('two')!.data).toEqual(Buffer.alloc(5000, 7));
      expect(ra.take('top')!.data.toString()).toBe('top!');
      for (const k of ['link', 'out', 'via', 'size', 'none']) expect(ra.take(k), k).toBeUndefined();
      // Taken once.
      expect(ra.take('one')).toBeUndefined();
      expect(ra.bytes).toBe(0);
      // Files the runner went past before they were read are dropped, not held.
      ra.request([ask('first', path.join(dir, 'a'), 'one', 3), ask('second', path.join(dir, 'a'), 'two', 5000)]);
      await ra.settled();
      expect(ra.bytes).toBe(5003);
      ra.dropBefore(pos - 1);
      expect(ra.bytes).toBe(5000);
      expect(ra.take('first')).toBeUndefined();
      expect(ra.take('second')!.size).toBe(5000);
    } finally {
      await ra.close();
    }
  });
});

/** `n` files of 1 KiB in three directories, and the active manifest describing them (with the ctime that proves no attributes). */
async function tree(n: number): Promise<{ dir: string; manifest: Manifest }> {
  const dir = await tempDir();
  const manifest = new Manifest(['data']);
  for (let d = 0; d < 3; d++) fs.mkdirSync(path.join(dir, `d${d}`));
  for (let d = 0; d < 3; d++) {
    const st = fs.lstatSync(path.join(dir, `d${d}`));
    manifest.set('data', `d${d}`, { kind: 'dir', mode: st.mode & 0o7777, ino: st.ino, mtimeMs: st.mtimeMs });
  }
  for (let i = 0; i < n; i++) {
    const rel = `d${i % 3}/f${i}`;
    const data = Buffer.alloc(1024, (i % 250) + 1);
    data.writeUInt32LE(i, 0);
    fs.writeFileSync(path.join(dir, rel), data);
  }
  // Read after the files' ctime tick has passed, as capture records a ctime.
  await new Promise((r) => setTimeout(r, 20));
  for (let i = 0; i < n; i++) {
    const rel = `d${i % 3}/f${i}`;
    const st = fs.lstatSync(path.join(dir, rel));
    manifest.set('data', rel, { kind: 'file', mode: st.mode & 0o7777, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, blocks: hash64(fs.readFileSync(path.join(dir, rel))), readAt: 0, ctimeMs: st.ctimeMs });
  }
  return { dir, manifest };
}

/** Runs a synchronisation of `dir` against an empty passive; the records it journaled, and the paths it asked capture to read again. */
async function sync(dir: string, manifest: Manifest, readAhead: boolean) {
  let seq = 0;
  const records: NewRecord[] = [];
  const refreshed: string[] = [];
  const listeners = new Set<(r: DataRecord) => void>();
  const ctx: CaptureTaskContext = {
    append(r: NewRecord): number {
      records.push(r.op === 'write' ? { ...r, data: Buffer.from(r.data) } : r);
      seq++;
      for (const cb of listeners) cb({ ...r, seq } as DataRecord);
      return seq;
    },
    makeRoom: async () => {},
    refresh: async (_root: string, rel: string) => {
      refreshed.push(rel);
      const p = path.join(dir, rel);
      const st = fs.lstatSync(p);
      const xattrs = readXattrs(p).xattrs;
      manifest.set('data', rel, { kind: 'file', mode: st.mode & 0o7777, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, blocks: hash64(fs.readFileSync(p)), readAt: 0, xattrHash: xattrsHash(xattrs) });
    },
    headSeq: () => seq,
  };
  const capture = {
    // Capture's loop runs a task on a later turn of the event loop, as the real one does.
    runTask: async (fn: (c: CaptureTaskContext) => Promise<void>) => {
      await new Promise((r) => setImmediate(r));
      await fn(ctx);
    },
    onAppend: (cb: (r: DataRecord) => void) => {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
  } as unknown as Capture;
  const runner = new SyncRunner({
    id: 's',
    capture,
    manifest,
    shadow: new Manifest(['data']),
    roots: [{ name: 'data', path: dir, exclude: [] } as unknown as ProtectedRoot],
    blockSize: BS,
    sliceBytes: 16 * 1024,
    log: silentLogger(),
    clock: systemClock,
    readAhead,
  });
  await runner.run(() => {});
  return { records, refreshed, readAhead: runner.filesReadAhead };
}

/** The bytes each write record sent, by path. */
const sent = (records: NewRecord[]) => new Map(records.filter((r) => r.op === 'write').map((r) => [r.path, Buffer.from((r as { data: Uint8Array }).data)]));

describe('a synchronisation reading small files ahead', () => {
  it('journals the records it journals reading each file in its turn, with the bytes on disk', async () => {
    const { dir, manifest } = await tree(300);
    const ahead = await sync(dir, manifest, true);
    const own = await sync(dir, manifest, false);
    // The first slice is read in its turn; the next ones come from the worker.
    expect(ahead.readAhead).toBeGreaterThan(250);
    expect(own.readAhead).toBe(0);
    expect(ahead.records).toEqual(own.records);
    const bytes = sent(ahead.records);
    expect(bytes.size).toBe(300);
    for (const [p, b] of bytes) expect(b.equals(fs.readFileSync(path.join(dir, p))), p).toBe(true);
  });

  it('sends a file changed since the manifest read it (its bytes, an attribute) only once capture read it again', async () => {
    const { dir, manifest } = await tree(300);
    // Late in the plan: read ahead by the worker, not in the first slice.
    const bytesChanged = 'd2/f299';
    const tagged = 'd2/f296';
    const p = path.join(dir, bytesChanged);
    const st0 = fs.statSync(p);
    const b = fs.readFileSync(p);
    b[10] = b[10]! ^ 0xff;
    fs.writeFileSync(p, b);
    fs.utimesSync(p, st0.atime, st0.mtime);
    const tag: [string, Buffer] = ['user.tandem-test', Buffer.from('v1')];
    expect(writeXattrs(path.join(dir, tagged), [tag]).failed).toEqual([]);
    const r = await sync(dir, manifest, true);
    expect(r.readAhead).toBeGreaterThan(250);
    expect(r.refreshed.sort()).toEqual([tagged, bytesChanged]);
    expect(sent(r.records).get(bytesChanged)!.equals(fs.readFileSync(p))).toBe(true);
    const meta = r.records.filter((x) => x.op === 'meta' && x.path === tagged);
    expect(meta.map((m) => (m as { xattrs?: unknown }).xattrs)).toEqual([[tag]]);
  });
});
