import { beforeAll, describe, expect, it } from 'vitest';
import { initHash } from '../../../shared/hash.ts';
import { judge, unsettledReason, type DiskView } from '../../../agent/verify/index.ts';
import type { Entry, FileEntry } from '../../../agent/manifest/index.ts';

const BS = 4;

function hashes(...hs: number[]): Buffer {
  const b = Buffer.alloc(hs.length * 8);
  hs.forEach((h, i) => b.writeBigUInt64LE(BigInt(h), i * 8));
  return b;
}

function file(size: number, blocks: Buffer, mode = 0o644, mtimeMs = 1000): FileEntry {
  return { kind: 'file', mode, size, mtimeMs, ino: 7, blocks, readAt: 5000 };
}

function disk(e: FileEntry, blocks: Buffer | undefined = e.blocks): DiskView {
  return { kind: 'file', mode: e.mode, size: e.size, mtimeMs: e.mtimeMs, blocks };
}

beforeAll(async () => {
  await initHash();
});

describe('verify verdict on one path', () => {
  it('finds nothing when the manifest, the active disk and the passive agree', () => {
    const a = file(10, hashes(1, 2, 3));
    expect(judge(a, disk(a), { ...a, ino: 0 }, BS)).toEqual({ kind: 'same' });
  });

  it('sends a path whole when the passive holds it as changed by hand, even if its bytes now match', () => {
    const a = file(10, hashes(1, 2, 3));
    expect(judge(a, disk(a), { ...a, ino: 0 }, BS, false, {}, false)).toEqual({ kind: 'same' });
    const v = judge(a, disk(a), { ...a, ino: 0 }, BS, false, {}, true);
    expect(v).toMatchObject({ kind: 'different', what: 'modified-on-passive', blocks: 3 });
  });

  it('names the differing blocks of a file present on both sides', () => {
    const a = file(10, hashes(1, 2, 3));
    const p = file(10, hashes(1, 9, 3));
    const v = judge(a, disk(a), p, BS);
    expect(v).toMatchObject({ kind: 'different', what: 'content', blocks: 1 });
    expect(v.kind === 'different' && v.action.kind === 'file' ? v.action.blocks : []).toEqual([1]);
  });

  it('treats a shorter hash list as differing past its end', () => {
    const a = file(12, hashes(1, 2, 3));
    const p = file(8, hashes(1, 2));
    const v = judge(a, disk(a), p, BS);
    expect(v).toMatchObject({ kind: 'different', what: 'content' });
    expect(v.kind === 'different' && v.action.kind === 'file' ? [v.action.blocks, v.action.setSize] : []).toEqual([[2], true]);
  });

  it('tells a path missing on the passive from one present only there', () => {
    const a = file(10, hashes(1, 2, 3));
    expect(judge(a, disk(a, undefined), undefined, BS)).toMatchObject({ kind: 'different', what: 'missing-on-passive' });
    expect(judge(undefined, undefined, file(1, hashes(4)), BS)).toMatchObject({ kind: 'different', what: 'only-on-passive' });
  });

  it('reports a mode and an mtime that differ, and a symlink pointing elsewhere', () => {
    const a = file(10, hashes(1, 2, 3));
    expect(judge(a, disk(a), { ...a, mode: 0o600 }, BS)).toMatchObject({ kind: 'different', what: 'mode' });
    expect(judge(a, disk(a), { ...a, mtimeMs: 5 }, BS)).toMatchObject({ kind: 'different', what: 'mtime' });
    const l: Entry = { kind: 'symlink', target: 'x', ino: 1, mtimeMs: 1 };
    expect(judge(l, { kind: 'symlink', mode: 0o777, size: 0, mtimeMs: 1, target: 'x' }, { ...l, target: 'y' }, BS)).toMatchObject({ kind: 'different', what: 'symlink' });
  });

  it('never reports a path whose active disk is not what the journal holds: it is changing', () => {
    const a = file(10, hashes(1, 2, 3));
    const p = file(10, hashes(1, 9, 3));
    expect(judge(a, disk(a, hashes(1, 8, 3)), p, BS)).toEqual({ kind: 'unsettled', reason: 'content changed on disk' });
    expect(judge(a, undefined, p, BS)).toMatchObject({ kind: 'unsettled' });
    expect(judge(undefined, disk(a), undefined, BS)).toMatchObject({ kind: 'unsettled' });
    expect(unsettledReason(a, { ...disk(a), size: 11 })).toBe('size changed on disk');
  });

  it('never reports a path replicated between the two reads', () => {
    const a = file(10, hashes(1, 2, 3));
    expect(judge(a, disk(a), file(10, hashes(1, 9, 3)), BS, true)).toEqual({ kind: 'unsettled', reason: 'replicated while being compared' });
  });
});
