import { describe, expect, it } from 'vitest';
import { relPathProblem, type PathProblem } from '../../../shared/protocol/paths.ts';

/** The definition relPathProblem answers by (its quick scan must agree with it on every input). */
function reference(p: unknown): PathProblem | undefined {
  if (typeof p !== 'string' || p.length === 0) return 'empty';
  if (Buffer.byteLength(p) > 4096) return 'too-long';
  if (p.includes('\0')) return 'nul';
  if (p.startsWith('/')) return 'absolute';
  if (p.includes('\\')) return 'backslash';
  for (const seg of p.split('/')) {
    if (seg === '') return 'empty-segment';
    if (seg === '.' || seg === '..') return 'dot-segment';
  }
  return undefined;
}

describe('relPathProblem', () => {
  it('tells each kind of malformed path apart and passes well-formed ones', () => {
    const cases: [unknown, PathProblem | undefined][] = [
      ['a', undefined],
      ['dir/file.txt', undefined],
      ['.hidden/..x/x..', undefined],
      ['...', undefined],
      ['é/😀', undefined],
      ['', 'empty'],
      [undefined, 'empty'],
      [42, 'empty'],
      ['/etc/passwd', 'absolute'],
      ['a//b', 'empty-segment'],
      ['a/', 'empty-segment'],
      ['.', 'dot-segment'],
      ['a/../b', 'dot-segment'],
      ['a/..', 'dot-segment'],
      ['a/./b', 'dot-segment'],
      ['a\0b', 'nul'],
      ['a\\b', 'backslash'],
      ['x'.repeat(4096), undefined],
      ['x'.repeat(4097), 'too-long'],
      ['é'.repeat(2048), undefined],
      ['é'.repeat(2049), 'too-long'],
      ['😀'.repeat(1024), undefined],
      ['😀'.repeat(1024) + 'x', 'too-long'],
      ['\ud800'.repeat(1365), undefined],
      ['\ud800'.repeat(1366), 'too-long'],
    ];
    for (const [p, want] of cases) expect([p, relPathProblem(p)]).toEqual([p, want]);
  });

  it('agrees with the definition on random paths of tricky characters and lengths', () => {
    const alphabet = ['a', 'b', '.', '/', '\\', '\0', 'é', '😀', '\ud800', '\udc00', '..'];
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 20_000; i++) {
      const len = i % 50 === 0 ? 1300 + rand(800) : rand(12);
      let p = '';
      for (let k = 0; k < len; k++) p += alphabet[rand(alphabet.length)];
      expect([p, relPathProblem(p)]).toEqual([p, reference(p)]);
    }
  });
});
