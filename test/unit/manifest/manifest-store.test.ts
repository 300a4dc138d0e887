// The passive's manifest persisted behind a durable point that runs while the next records
// already change it: deltas taken when a group is applied are written as they were then, and
// the compaction (which writes the manifest as it is now) waits until nothing is unwritten.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ManifestStore } from '../../../agent/manifest/manifest-store.ts';
import type { FileEntry } from '../../../agent/manifest/index.ts';
import { silentLogger } from '../../../shared/log.ts';
import { initHash } from '../../../shared/hash.ts';

let dir: string;
const stores: ManifestStore[] = [];

beforeAll(initHash);
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-manifest-'));
});
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close().catch(() => undefined);
  fs.rmSync(dir, { recursive: true, force: true });
});

let copies = 0;

async function openAt(at: string): Promise<ManifestStore> {
  const s = await ManifestStore.open({ dir: at, roots: ['r'], blockSize: 65536, log: silentLogger() });
  stores.push(s);
  return s;
}

const open = () => openAt(dir);

/** What a restart after a crash now would load: a copy of the files as they are (opening rewrites them). */
function afterCrash(): Promise<ManifestStore> {
  const copy = path.join(dir, `crash${++copies}`);
  fs.mkdirSync(copy);
  for (const f of ['snapshot', 'changes']) fs.copyFileSync(path.join(dir, f), path.join(copy, f));
  return openAt(copy);
}

const file = (size: number, blocks = 8): FileEntry => ({ kind: 'file', mode: 0o644, size, mtimeMs: 1, ino: 1, blocks: Buffer.alloc(blocks, size & 0xff), readAt: 0 });
const sizeOf = (s: ManifestStore, p: string) => (s.manifest.get('r', p) as FileEntry | undefined)?.size;

describe('manifest store: deltas taken, written later', () => {
  it('writes what the manifest held when the deltas were taken, not what changed since', async () => {
    const store = await open();
    store.manifest.set('r', 'a', file(1));
    const taken = store.takeDeltas();
    // The next group changes the manifest while the first one's point runs.
    store.manifest.set('r', 'a', file(2));
    store.manifest.set('r', 'b', file(3));
    await store.writeDeltas(taken);
    const crashed = await afterCrash();
    expect(sizeOf(crashed, 'a')).toBe(1);
    expect(crashed.manifest.get('r', 'b')).toBeUndefined();
    // The next group's point reports: its changes are written too.
    await store.flush();
    const later = await afterCrash();
    expect(sizeOf(later, 'a')).toBe(2);
    expect(sizeOf(later, 'b')).toBe(3);
  });

  it('compacts only once nothing changed is unwritten', async () => {
    const store = await open();
    const changes = path.join(dir, 'changes');
    // Over 16 MiB of deltas: a compaction falls due, and waits.
    for (let i = 0; i < 300; i++) store.manifest.set('r', `f${i}`, file(i, 65536));
    await store.writeDeltas(store.takeDeltas());
    expect(fs.statSync(changes).size).toBeGreaterThan(16 * 1024 * 1024);
    store.manifest.set('r', 'late', file(7));
    await store.compact();
    expect(fs.statSync(changes).size).toBeGreaterThan(16 * 1024 * 1024);
    expect((await afterCrash()).manifest.get('r', 'late')).toBeUndefined();
    // Written: now it compacts, and nothing is lost.
    await store.writeDeltas(store.takeDeltas());
    await store.compact();
    expect(fs.statSync(changes).size).toBeLessThan(4096);
    const compacted = await afterCrash();
    expect(sizeOf(compacted, 'f299')).toBe(299);
    expect(sizeOf(compacted, 'late')).toBe(7);
  });
});

describe('manifest store: a flush of most of the manifest', () => {
  it('writes a snapshot straight away (the changes log keeps only its header), and loses nothing', async () => {
    const store = await open();
    const snapshot = path.join(dir, 'snapshot');
    const changes = path.join(dir, 'changes');
    const emptySnapshot = fs.statSync(snapshot).size;
    // A baseline: every entry changed at once, far less than 16 MiB of deltas.
    for (let i = 0; i < 5000; i++) store.manifest.set('r', `d${i % 40}/f${i}`, file(i, 1));
    await store.flush(41);
    expect(fs.statSync(changes).size).toBeLessThan(4096);
    expect(fs.statSync(snapshot).size).toBeGreaterThan(emptySnapshot + 5000 * 20);
    const crashed = await afterCrash();
    expect(crashed.throughSeq).toBe(41);
    expect(crashed.manifest.count()).toBe(store.manifest.count());
    expect(sizeOf(crashed, 'd7/f4927')).toBe(4927);
    // A few changes after it go to the changes log as deltas again.
    store.manifest.set('r', 'd7/f4927', file(3, 1));
    store.manifest.delete('r', 'd0/f0');
    await store.flush(42);
    expect(fs.statSync(changes).size).toBeGreaterThan(100);
    const later = await afterCrash();
    expect(later.throughSeq).toBe(42);
    expect(sizeOf(later, 'd7/f4927')).toBe(3);
    expect(later.manifest.get('r', 'd0/f0')).toBeUndefined();
    expect(later.manifest.count()).toBe(store.manifest.count());
  });

  it('keeps what a failed flush could not write: the next flush writes it, as a snapshot', async () => {
    const store = await open();
    for (let i = 0; i < 10; i++) store.manifest.set('r', `a${i}`, file(i, 1));
    await store.flush(5);
    // Most of the manifest changed (written as a snapshot), and the write fails: a directory
    // stands where the snapshot's temporary file goes.
    store.manifest.set('r', 'a3', file(33, 1));
    for (let i = 0; i < 5000; i++) store.manifest.set('r', `b${i}`, file(i, 1));
    fs.mkdirSync(path.join(dir, 'snapshot.tmp'));
    await expect(store.flush(6)).rejects.toThrow();
    fs.rmdirSync(path.join(dir, 'snapshot.tmp'));
    // Nothing changed since, and the sequence moves on: the entries must still be written.
    await store.flush(7);
    const crashed = await afterCrash();
    expect(crashed.throughSeq).toBe(7);
    expect(sizeOf(crashed, 'a3')).toBe(33);
    expect(sizeOf(crashed, 'b4999')).toBe(4999);
    expect(crashed.manifest.count()).toBe(store.manifest.count());
  });

  it('writes a snapshot after a failed flush of a few deltas (the changes log may end torn)', async () => {
    const store = await open();
    const changes = path.join(dir, 'changes');
    store.manifest.set('r', 'a', file(1, 1));
    await store.flush(1);
    store.manifest.set('r', 'a', file(2, 1));
    // The changes log's descriptor is taken from the store: the deltas' write fails (EBADF).
    const inner = store as unknown as { changesFd: number };
    const fd = inner.changesFd;
    inner.changesFd = -1;
    await expect(store.flush(2)).rejects.toThrow();
    fs.closeSync(fd);
    await store.flush(3);
    expect(fs.statSync(changes).size).toBeLessThan(200);
    const crashed = await afterCrash();
    expect(crashed.throughSeq).toBe(3);
    expect(sizeOf(crashed, 'a')).toBe(2);
  });
});
