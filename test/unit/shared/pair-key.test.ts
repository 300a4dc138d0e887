import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TandemError } from '../../../shared/errors.ts';
import { readPairKey } from '../../../shared/pair-key.ts';

describe('the pair key', () => {
  it('names the commands that make and carry it when it is missing', () => {
    const file = path.join(os.tmpdir(), `tandem-no-key-${process.pid}`);
    fs.rmSync(file, { force: true });
    let err: unknown;
    try {
      readPairKey(file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TandemError);
    expect((err as TandemError).code).toBe('TANDEM_ERR_KEY_INVALID');
    expect((err as TandemError).hint).toMatch(/tandem install primary makes the pair key .* tandem install secondary --from PACK brings it/);
  });
});
