// When a file's stat cannot prove its content ("racy"): the read and the mtime in one timestamp tick.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isRacy, snapshotReadAt } from '../../../agent/capture/stat-match.ts';
import type { Entry } from '../../../agent/manifest/index.ts';
import { RACY_WINDOW_MS } from '../../../shared/constants.ts';

const T = 1_796_000_000_000;
const file = (mtimeMs: number, readAt: number): Entry => ({ kind: 'file', mode: 0o644, size: 1, mtimeMs, ino: 1, blocks: Buffer.alloc(8), readAt });

describe('isRacy', () => {
  it('is racy when the mtime is within the window of the read, either side', () => {
    expect(isRacy(file(T, T))).toBe(true);
    expect(isRacy(file(T - RACY_WINDOW_MS, T))).toBe(true);
    expect(isRacy(file(T + RACY_WINDOW_MS, T))).toBe(true);
  });

  it('is not racy when the mtime is older than the window: a later write would move it', () => {
    expect(isRacy(file(T - RACY_WINDOW_MS - 1, T))).toBe(false);
  });

  it('is not racy when the mtime lies in the future of the read (an archive date, a clock stepped back)', () => {
    expect(isRacy(file(T + 3_600_000, T))).toBe(false);
  });

  it('is racy when the content was never proven by a read here (readAt 0), whatever the mtime', () => {
    expect(isRacy(file(T, 0))).toBe(true);
    expect(isRacy(file(T + 3_600_000, 0))).toBe(true);
  });

  it('is never racy for a directory', () => {
    expect(isRacy({ kind: 'dir', mode: 0o755 } as Entry)).toBe(false);
  });
});

describe('snapshotReadAt: content read from a snapshot asked for at `at`, known made at `doneAt`', () => {
  const at = T;
  const doneAt = T + 400; // a snapshot that took 400 ms (btrfs flushing under load)

  it('keeps racy a file stamped anywhere between the asking and the end, beyond the window around the asking', () => {
    // Stamped 200 ms after the asking, before the instant: a write after the instant within
    // the same tick leaves size and mtime as they were.
    for (const mtime of [at - RACY_WINDOW_MS, at, at + 200, doneAt, doneAt + RACY_WINDOW_MS]) {
      expect(isRacy(file(mtime, snapshotReadAt(mtime, at, doneAt)))).toBe(true);
    }
    // What `at` alone said: not racy, so such a write was missed.
    expect(isRacy(file(at + 200, at))).toBe(false);
  });

  it('proves by the snapshot a file stamped before the asking, or in the future of it', () => {
    for (const mtime of [at - RACY_WINDOW_MS - 1, at - 3_600_000, doneAt + RACY_WINDOW_MS + 1, at + 3_600_000]) {
      expect(snapshotReadAt(mtime, at, doneAt)).toBe(at);
      expect(isRacy(file(mtime, snapshotReadAt(mtime, at, doneAt)))).toBe(false);
    }
  });
});

describe('the racy window against this machine', () => {
  it('covers the timestamp tick of a file system here, with 2 ms for Date.now()\'s whole milliseconds', () => {
    // New files, never stat-ed before they are written: their mtimes come from the coarse clock
    // (a queried inode gets fine-grained stamps on kernels from 6.13), which moves once a tick.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-tick-'));
    try {
      const stamps: bigint[] = [];
      const names: string[] = [];
      const until = performance.now() + 200;
      for (let i = 0; performance.now() < until && i < 20_000; i++) {
        const name = path.join(dir, `f${i}`);
        fs.writeFileSync(name, 'x');
        names.push(name);
      }
      for (const name of names) stamps.push(fs.statSync(name, { bigint: true }).mtimeNs);
      const distinct = [...new Set(stamps)].sort((a, b) => (a < b ? -1 : 1));
      expect(distinct.length).toBeGreaterThan(1);
      let tickNs = Infinity;
      for (let i = 1; i < distinct.length; i++) tickNs = Math.min(tickNs, Number(distinct[i]! - distinct[i - 1]!));
      expect(tickNs / 1e6 + 2).toBeLessThanOrEqual(RACY_WINDOW_MS);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
