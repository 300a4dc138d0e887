import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, TandemError } from '../../../shared/errors.ts';
import { PROJECT } from '../../helpers/pair.ts';

const SOURCE_DIRS = ['agent', 'console', 'shared', 'installer'];
const SOURCE_FILE = /\.(ts|mts|cts|js|mjs|cjs|sh)$/;

/** Every source file under `dir` (none when it does not exist). */
function sourceFiles(dir: string): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return entries.flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : sourceFiles(p);
    return e.isFile() && SOURCE_FILE.test(e.name) ? [p] : [];
  });
}

describe('errors', () => {
  it('say "operation: cause" and keep code and hint', () => {
    const e = new TandemError({ code: 'TANDEM_ERR_APPLY_FAILED', op: 'apply write data/a', reason: 'ENOSPC: no space left', hint: 'free space' });
    expect(e.message).toBe('apply write data/a: ENOSPC: no space left');
    expect(e.toJSON()).toMatchObject({ code: 'TANDEM_ERR_APPLY_FAILED', hint: 'free space' });
  });

  it('wrap system errors with their errno', () => {
    const sys = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    expect(TandemError.wrap(sys, { code: 'TANDEM_ERR_APPLY_FAILED', op: 'x' }).reason).toBe('ENOSPC: no space left on device');
  });

  it('list every code the source uses, so none reaches an operator undocumented', () => {
    const known = Object.keys(ERROR_CODES);
    const unknown: string[] = [];
    let seen = 0;
    for (const file of SOURCE_DIRS.flatMap((d) => sourceFiles(path.join(PROJECT, d)))) {
      const text = fs.readFileSync(file, 'utf8');
      // A code starts with a letter after the prefix: `TANDEM_ERR_${x}` or a regex is not one.
      for (const m of text.matchAll(/TANDEM_ERR_[A-Z][A-Z0-9_]*/g)) {
        const code = m[0];
        seen += 1;
        // A family written as a wildcard (TANDEM_ERR_CONFIG_*) must name at least one code.
        const ok = code.endsWith('_') ? known.some((k) => k.startsWith(code)) : known.includes(code);
        if (!ok) unknown.push(`${code} in ${path.relative(PROJECT, file)}`);
      }
    }
    expect(seen).toBeGreaterThan(50);
    expect([...new Set(unknown)]).toEqual([]);
  });

  it('are all documented in docs/errors.md', () => {
    const doc = fs.readFileSync(path.join(PROJECT, 'docs/errors.md'), 'utf8');
    expect(Object.keys(ERROR_CODES).filter((c) => !doc.includes(`\`${c}\``))).toEqual([]);
  });
});
