// When a file's stat cannot prove its content ("racy"): the read and the mtime in one timestamp tick.
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
