// Which directories of a snapshot-mode root are too busy to watch, and when they are watched again.
import { describe, expect, it } from 'vitest';
import { HotDirs } from '../../../agent/capture/hot-dirs.ts';

describe('HotDirs', () => {
  it('sets a directory aside on the event past its limit, once, and counts each directory apart', () => {
    const h = new HotDirs(3);
    expect([1, 2, 3].map(() => h.event('pg_wal'))).toEqual([false, false, false]);
    expect(h.event('base/1')).toBe(false);
    expect(h.event('pg_wal')).toBe(true);
    expect(h.event('pg_wal')).toBe(false); // already aside
    expect([...h.unwatched]).toEqual(['pg_wal']);
  });

  it('starts counting again at every point', () => {
    const h = new HotDirs(3);
    for (let i = 0; i < 3; i++) h.event('d');
    expect(h.pointListed(['d/x'])).toEqual([]);
    for (let i = 0; i < 3; i++) expect(h.event('d')).toBe(false);
  });

  it('watches again only the directories in which the point listed nothing, at any depth', () => {
    const h = new HotDirs(0);
    for (const d of ['', 'a', 'a/b', 'c']) h.event(d);
    // a/b/deep/f lies under a/b, a and the root: all three stay aside; c was quiet.
    expect(h.pointListed(['a/b/deep/f'])).toEqual(['c']);
    expect([...h.unwatched].sort()).toEqual(['', 'a', 'a/b']);
    // A removal names its path as well.
    expect(h.pointListed(['gone'])).toEqual(['a', 'a/b']);
    expect(h.pointListed([])).toEqual(['']);
  });

  it('watches nothing again after a point without a list (nothing is known to have been quiet)', () => {
    const h = new HotDirs(0);
    h.event('d');
    expect(h.pointListed(undefined)).toEqual([]);
    expect([...h.unwatched]).toEqual(['d']);
  });

  it('gives everything back, and sets nothing aside, while the root is read file by file', () => {
    const h = new HotDirs(0);
    h.event('a');
    h.event('b');
    h.enabled = false;
    expect(h.takeAll().sort()).toEqual(['a', 'b']);
    expect(h.event('a')).toBe(false);
    expect(h.unwatched.size).toBe(0);
  });

  it('forgets a directory and what is below it when it goes away', () => {
    const h = new HotDirs(0);
    for (const d of ['a', 'a/b', 'ab']) h.event(d);
    h.forget('a');
    expect([...h.unwatched]).toEqual(['ab']);
  });
});
