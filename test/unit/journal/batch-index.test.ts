import { describe, expect, it } from 'vitest';
import { BatchIndex, type BatchInfo } from '../../../agent/journal/index.ts';

function batch(first: number, last: number, segment: string, offset: number): BatchInfo {
  return { first, last, consistent: first % 2 === 0, ts: 1_700_000_000_000 + first, generation: first < 500 ? 'g1' : 'g2', bytes: 100 + first, payloadBytes: last - first, segment, offset, length: 100 + first };
}

describe('BatchIndex', () => {
  it('finds batches by first sequence, by a sequence inside them, and sums the bytes after a sequence', () => {
    const ix = new BatchIndex();
    ix.push(batch(1, 3, 's1', 0));
    ix.push(batch(4, 4, 's1', 103));
    ix.push(batch(10, 12, 's2', 0));
    expect(ix.startingAt(4)).toEqual(batch(4, 4, 's1', 103));
    expect(ix.startingAt(2)).toBeUndefined();
    expect(ix.startingAt(5)).toBeUndefined();
    expect(ix.oldestAfter(0)).toEqual(batch(1, 3, 's1', 0));
    expect(ix.oldestAfter(2)).toEqual(batch(1, 3, 's1', 0));
    expect(ix.oldestAfter(3)).toEqual(batch(4, 4, 's1', 103));
    expect(ix.oldestAfter(5)).toEqual(batch(10, 12, 's2', 0));
    expect(ix.oldestAfter(12)).toBeUndefined();
    expect(ix.lengthAfter(0)).toBe(101 + 104 + 110);
    expect(ix.lengthAfter(3)).toBe(104 + 110);
    expect(ix.lengthAfter(11)).toBe(110);
    expect(ix.lengthAfter(12)).toBe(0);
  });

  it('refuses a batch that does not start above the last one', () => {
    const ix = new BatchIndex();
    ix.push(batch(1, 3, 's1', 0));
    expect(() => ix.push(batch(3, 4, 's1', 10))).toThrow(expect.objectContaining({ code: 'TANDEM_ERR_INTERNAL' }));
  });

  it('keeps every batch exact while it grows and while trimming drops whole segments from the front', () => {
    const ix = new BatchIndex();
    const all: BatchInfo[] = [];
    let seq = 1;
    for (let s = 0; s < 40; s++) {
      for (let k = 0; k < 50; k++) {
        const b = batch(seq, seq + (k % 3), `seg${s}`, k * 1000);
        seq = b.last + 1;
        all.push(b);
        ix.push(b);
      }
      // Trim as we go, so the columns are compacted as well as grown.
      if (s >= 3) {
        expect(ix.dropFrontOfSegment(`seg${s - 3}`)).toBe(50);
      }
    }
    const live = all.filter((b) => Number(b.segment.slice(3)) >= 37);
    expect(ix.count).toBe(live.length);
    for (let k = 0; k < live.length; k++) expect(ix.at(k)).toEqual(live[k]);
    expect(ix.oldest()).toEqual(live[0]);
    expect(ix.newest()).toEqual(live[live.length - 1]);
    expect(ix.lengthAfter(0)).toBe(live.reduce((n, b) => n + b.length, 0));
    expect(ix.dropFrontOfSegment('seg99')).toBe(0);
    ix.clear();
    expect(ix.count).toBe(0);
    expect(ix.oldest()).toBeUndefined();
  });
});
