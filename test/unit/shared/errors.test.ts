import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, TandemError } from '../../../shared/errors.ts';
import { PROJECT } from '../../helpers/pair.ts';

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

  it('are all documented in docs/errors.md', () => {
    const doc = fs.readFileSync(path.join(PROJECT, 'docs/errors.md'), 'utf8');
    expect(Object.keys(ERROR_CODES).filter((c) => !doc.includes(`\`${c}\``))).toEqual([]);
  });
});
