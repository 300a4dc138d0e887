import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadRecord, newRecord, saveRecord, VERIFY_FILE } from '../../../agent/verify/index.ts';

let dir: string | undefined;
afterEach(() => {
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('verify record (the persisted cursor)', () => {
  it('comes back as it was saved, cursor included', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-verify-'));
    const r = newRecord('abc', true, 'gen1', 1000);
    r.cursor = { rootIndex: 1, path: 'a/b' };
    r.pathsDone = 42;
    r.suspects.push({ root: 'data', path: 'x', seen: 1 });
    await saveRecord(dir, r);
    expect(await loadRecord(dir)).toEqual(r);
  });

  it('keeps a cursor before the first path as "none" through JSON', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-verify-'));
    await saveRecord(dir, newRecord('abc', false, 'gen1', 1000));
    expect((await loadRecord(dir))?.cursor).toEqual({ rootIndex: 0, path: undefined });
  });

  it('ignores a missing, damaged or foreign file (the next verification starts from the beginning)', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-verify-'));
    expect(await loadRecord(dir)).toBeUndefined();
    fs.writeFileSync(path.join(dir, VERIFY_FILE), '{"format":1,"id":');
    expect(await loadRecord(dir)).toBeUndefined();
    fs.writeFileSync(path.join(dir, VERIFY_FILE), '{"format":2}');
    expect(await loadRecord(dir)).toBeUndefined();
  });
});
