// Cutting script output into log lines: lines across chunks, a cap on line length that never
// buffers more than one line, and a per-run budget of lines.
import { describe, expect, it } from 'vitest';
import { LineBudget, OutputLines } from '../../../agent/scripts/index.ts';

function collect(maxChars = 10) {
  const lines: [string, boolean][] = [];
  const out = new OutputLines((line, truncated) => lines.push([line, truncated]), maxChars);
  return { out, lines };
}

describe('script output lines', () => {
  it('joins a line that arrives in several chunks and drops the carriage return of CRLF', () => {
    const { out, lines } = collect();
    out.push('ab');
    out.push('c\r\nde\n\nf');
    out.end();
    expect(lines).toEqual([['abc', false], ['de', false], ['', false], ['f', false]]);
  });

  it('cuts an over-long line, and skips its rest even when no newline comes for a while', () => {
    const { out, lines } = collect(5);
    out.push('0123456789');
    out.push('abcdef');
    expect(lines).toEqual([['01234', true]]);
    out.push('gh\nnext\nxxxxxxx\n');
    out.end();
    expect(lines).toEqual([['01234', true], ['next', false], ['xxxxx', true]]);
  });

  it('keeps a budget of lines and counts what it refused', () => {
    const budget = new LineBudget(2);
    expect([budget.take(), budget.take(), budget.take(), budget.take()]).toEqual([true, true, false, false]);
    expect(budget.dropped).toBe(2);
  });
});
