import { describe, expect, it } from 'vitest';
import { messageProblem } from '../../../shared/protocol/index.ts';

describe('verify messages on the channel', () => {
  it('accepts well-formed questions and replies', () => {
    expect(messageProblem({ t: 'verify-list', req: 1, root: 'data', path: '', afterSeq: 5 })).toBeUndefined();
    expect(messageProblem({ t: 'verify-entry', req: 2, root: 'data', path: 'a/b.bin', afterSeq: 5 })).toBeUndefined();
    expect(messageProblem({ t: 'verify-reply', req: 1, atSeq: 6, entries: [{ name: 'a', kind: 'dir', mode: 0o755, size: 0, mtimeMs: 1 }] })).toBeUndefined();
    expect(messageProblem({ t: 'verify-reply', req: 2, atSeq: 6, entry: { name: 'b.bin', kind: 'file', mode: 0o644, size: 3, mtimeMs: 1, blocks: new Uint8Array(8) } })).toBeUndefined();
    expect(messageProblem({ t: 'verify-reply', req: 2, atSeq: 6, entry: null })).toBeUndefined();
  });

  it('refuses a question about a path that leaves the root, and entries with a name that is a path', () => {
    expect(messageProblem({ t: 'verify-entry', req: 2, root: 'data', path: '../etc/passwd', afterSeq: 5 })).toMatch(/path dot-segment/);
    expect(messageProblem({ t: 'verify-entry', req: 2, root: 'data', path: '', afterSeq: 5 })).toMatch(/path empty/);
    expect(messageProblem({ t: 'verify-reply', req: 1, atSeq: 6, entries: [{ name: 'a/b', kind: 'file', mode: 0, size: 0, mtimeMs: 1 }] })).toMatch(/bad name/);
    expect(messageProblem({ t: 'verify-reply', req: 1, atSeq: 6, entry: { name: 'x', kind: 'file', mode: 0, size: 0, mtimeMs: 1, blocks: new Uint8Array(7) } })).toMatch(/bad blocks/);
  });
});
