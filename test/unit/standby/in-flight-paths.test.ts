import { beforeAll, describe, expect, it } from 'vitest';
import { initHash } from '../../../shared/hash.ts';
import { InFlightPaths } from '../../../agent/standby/in-flight-paths.ts';
import { RecordBuilder } from '../apply/helpers.ts';

beforeAll(() => initHash());

describe('InFlightPaths', () => {
  it('covers the paths of the records, what lies below them and what lies above them, nothing else', () => {
    const b = new RecordBuilder();
    b.write('a/b/c.txt', 0, 'x');
    b.rename('d/e', 'f/g');
    b.rmdir('h');
    const f = new InFlightPaths(b.records);
    for (const p of ['a/b/c.txt', 'a/b', 'a', '', 'd/e', 'd/e/x', 'f/g/y/z', 'f', 'h', 'h/i/j']) expect(f.covers('data', p), p).toBe(true);
    for (const p of ['a/b/c.txt2', 'a/bc', 'a/x', 'd/ee', 'hh', 'x']) expect(f.covers('data', p), p).toBe(false);
    expect(f.covers('other', 'a')).toBe(false);
    expect([...f.paths()].map((p) => p.path)).toEqual(['a/b/c.txt', 'd/e', 'f/g', 'h']);
    expect(f.syncBegins || f.syncEnds).toBe(false);
  });

  it('says whether a synchronisation begins or ends in the batch', () => {
    const b = new RecordBuilder();
    b.syncBegin();
    b.syncEnd();
    const f = new InFlightPaths(b.records);
    expect(f.syncBegins && f.syncEnds).toBe(true);
    expect(f.covers('data', 'a')).toBe(false);
  });
});
