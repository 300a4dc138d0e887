import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Capture, replayJournalIntoManifest } from '../../../agent/capture/index.ts';
import { Journal } from '../../../agent/journal/index.ts';
import { ManifestStore } from '../../../agent/manifest/index.ts';
import { systemClock } from '../../../shared/clock.ts';
import { initHash } from '../../../shared/hash.ts';
import { silentLogger } from '../../../shared/log.ts';
import { parseFrames } from '../../../shared/protocol/index.ts';

const BS = 4096;
let dir: string;
const log = silentLogger();

beforeAll(async () => {
  await initHash();
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function captureFor(root: string, journal: Journal, store: ManifestStore, flush: () => boolean): Capture {
  return new Capture({
    roots: [{ name: 'data', path: root, exclude: [] }],
    manifest: store.manifest,
    journal,
    blockSize: BS,
    batchBytes: 1 << 20,
    batchDelayMs: 1,
    settleMs: 20,
    scanIntervalMs: 0,
    renameWindowMs: 30,
    baseline: false,
    afterCommit: async () => {
      if (flush()) await store.flush(journal.headSeq);
    },
    log,
    clock: systemClock,
    watch: false,
  });
}

async function opsAfter(journal: Journal, seq: number): Promise<string[]> {
  const out: string[] = [];
  for (let b = journal.oldestBatchAfter(seq); b !== undefined; b = journal.batchAfter(b)) {
    for (const f of parseFrames(await journal.readBatch(b)).frames) {
      const e = f.entry;
      if ('path' in e && e.seq > seq) out.push(`${e.op} ${e.path}`);
    }
  }
  return out;
}

async function settled(c: Capture): Promise<void> {
  for (let i = 0; i < 100; i++) {
    await c.whenIdle();
    await new Promise((r) => setTimeout(r, 20));
    if (c.status().pendingPaths === 0) return;
  }
}

describe('manifest recovery after an unclean stop', () => {
  it('journals the removal of a file journaled just before the crash and deleted while the agent was down', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-recovery-'));
    const root = path.join(dir, 'data');
    fs.mkdirSync(root);
    const open = async () => ({
      journal: await Journal.open({ dir: path.join(dir, 'journal'), segmentBytes: 1 << 20, maxBytes: 16 << 20, generation: 'g', log }),
      store: await ManifestStore.open({ dir: path.join(dir, 'manifest'), roots: ['data'], blockSize: BS, log }),
    });
    const first = await open();
    let flushing = true;
    const c1 = captureFor(root, first.journal, first.store, () => flushing);
    await c1.start();
    fs.writeFileSync(path.join(root, 'kept.txt'), 'kept');
    c1.hint('data', 'kept.txt');
    await settled(c1);
    // The crash window: b.txt is journaled, the manifest flush after that commit never happens.
    flushing = false;
    fs.writeFileSync(path.join(root, 'b.txt'), 'journaled, then the agent died');
    c1.hint('data', 'b.txt');
    await settled(c1);
    await c1.stop();
    await first.journal.close();
    // While no agent runs, the file goes.
    fs.rmSync(path.join(root, 'b.txt'));

    const second = await open();
    expect(second.store.manifest.get('data', 'b.txt')).toBeUndefined();
    const head = second.journal.headSeq;
    const replayed = await replayJournalIntoManifest(second.journal, second.store.manifest, second.store.throughSeq, BS);
    expect(replayed.records).toBeGreaterThan(0);
    expect(second.store.manifest.get('data', 'b.txt')?.kind).toBe('file');
    const c2 = captureFor(root, second.journal, second.store, () => true);
    await c2.start();
    await settled(c2);
    expect(await opsAfter(second.journal, head)).toEqual(['unlink b.txt']);
    await c2.stop();
    await second.journal.close();
    await second.store.close();
  });
});
