// The node state file: concurrent updates (a hello adopting an epoch while a generation is
// adopted) must all land, in order, and none may fail on the shared temp file.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NodeStateStore } from '../../../agent/state/index.ts';

let dir: string | undefined;
afterEach(() => {
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('node state', () => {
  it('persists concurrent updates one after another, the last state holding every change', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-state-'));
    const { store } = await NodeStateStore.open(dir, 'passive');
    await Promise.all([
      store.update({ epoch: 7 }),
      store.update({ generation: 'g2', history: [{ generation: 'g1', forkSeq: 40 }] }),
      ...Array.from({ length: 20 }, (_v, i) => store.update({ syncBytesTotal: i })),
      store.update({ activeEpoch: 3 }),
    ]);
    const again = (await NodeStateStore.open(dir, 'passive')).store.get();
    expect(again).toMatchObject({ role: 'passive', epoch: 7, generation: 'g2', history: [{ generation: 'g1', forkSeq: 40 }], syncBytesTotal: 19, activeEpoch: 3 });
    expect(fs.readdirSync(dir)).toEqual(['node.json']);
  });

  it('reads the parent a state written before histories kept as a history of one', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-state-'));
    fs.writeFileSync(path.join(dir, 'node.json'), JSON.stringify({ role: 'passive', generation: 'g2', epoch: 2, activeEpoch: 0, parent: { generation: 'g1', forkSeq: 40 }, syncId: '', syncBytesTotal: 0 }));
    const s = (await NodeStateStore.open(dir, 'passive')).store.get();
    expect(s.history).toEqual([{ generation: 'g1', forkSeq: 40 }]);
    expect(s.discard).toBe(false);
  });
});
