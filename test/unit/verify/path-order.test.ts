import { describe, expect, it } from 'vitest';
import { comparePaths, isDone, mustDescend, type Cursor } from '../../../agent/verify/index.ts';

describe('verify walk order', () => {
  it('orders paths as a depth-first walk with sorted names visits them', () => {
    const walk = ['a', 'a/b', 'a/b/c', 'a/d', 'a-b', 'b', 'b/a'];
    const shuffled = [...walk].reverse();
    expect(shuffled.sort(comparePaths)).toEqual(walk);
    // A plain string sort would put "a-b" before "a/b" ("-" < "/").
    expect(['a/b', 'a-b'].sort()).toEqual(['a-b', 'a/b']);
  });

  it('counts a path done when it is at or before the cursor in its root, and every path of an earlier root', () => {
    const c: Cursor = { rootIndex: 1, path: 'm/n' };
    expect(isDone(c, 1, 'm/n')).toBe(true);
    expect(isDone(c, 1, 'm')).toBe(true);
    expect(isDone(c, 1, 'a/zzz')).toBe(true);
    expect(isDone(c, 1, 'm/n/o')).toBe(false);
    expect(isDone(c, 1, 'm/o')).toBe(false);
    expect(isDone(c, 0, 'z')).toBe(true);
    expect(isDone(c, 2, 'a')).toBe(false);
    expect(isDone({ rootIndex: 1, path: undefined }, 1, 'a')).toBe(false);
  });

  it('descends into a finished directory only when the cursor lies inside it', () => {
    const c: Cursor = { rootIndex: 0, path: 'm/n/x' };
    expect(mustDescend(c, 0, 'm')).toBe(true);
    expect(mustDescend(c, 0, 'm/n')).toBe(true);
    expect(mustDescend(c, 0, 'a')).toBe(false);
    expect(mustDescend(c, 0, 'm/a')).toBe(false);
    // Not done yet: of course.
    expect(mustDescend(c, 0, 'z')).toBe(true);
  });

  it('descends into a directory the cursor stands on: its entry was finished, nothing below it yet', () => {
    const c: Cursor = { rootIndex: 0, path: 't3' };
    expect(mustDescend(c, 0, 't3')).toBe(true);
    expect(isDone(c, 0, 't3/f0.bin')).toBe(false);
    expect(mustDescend(c, 0, 't2')).toBe(false);
    expect(mustDescend({ rootIndex: 0, path: 'm/n' }, 0, 'm/n')).toBe(true);
  });
});
