// The passive's receive window holds across a restart: a passive that cannot apply (its disk is
// full) holds a full window; restarted, it tells the active what it still holds, and the active
// sends nothing more until that is acknowledged. Without it the active would send a second
// window, the passive would refuse it (TANDEM_ERR_WINDOW_EXCEEDED), and the two would loop.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { killAll } from '../helpers/processes.ts';
import { sleep, TestPair } from '../helpers/pair.ts';

let pair: TestPair | undefined;
const mounts: string[] = [];

afterEach(async () => {
  await killAll();
  for (const m of mounts.splice(0)) spawnSync('umount', ['-l', m]);
  await pair?.cleanup();
  pair = undefined;
});

describe('receive window', () => {
  it('is kept across a restart of a passive that cannot apply: the active counts what the passive still holds', async () => {
    pair = await TestPair.create({
      emptyData: true,
      config: (doc) => {
        doc.channel = { ...doc.channel, windowBatches: 4 };
        doc.failover = { ...doc.failover, auto: false };
      },
    });
    const p = pair;
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', p.data('beta')]);
    if (mount.status !== 0) {
      console.warn(`skipping: cannot mount a tmpfs here (${mount.stderr.toString().trim()})`);
      return;
    }
    mounts.push(p.data('beta'));
    await p.startBoth();
    await p.waitFor('beta', 'connected', (s) => s.peer.connected);
    // One batch per file: each written after the last was journaled.
    for (let i = 0; i < 12; i++) {
      fs.writeFileSync(p.data('alpha', `f-${i}.bin`), Buffer.alloc(100_000, i));
      await p.waitFor('alpha', `file ${i} journaled`, (s) => (s.capture?.pendingPaths ?? 1) === 0);
    }
    const paused = await p.waitFor('beta', 'paused on a full disk', (s) => s.alarms.some((a) => a.code === 'TANDEM_ERR_APPLY_FAILED'));
    expect(paused.replication.inSync).toBe(false);
    await p.kill('beta', 'SIGKILL');
    await p.start('beta');
    await p.waitFor('beta', 'connected again', (s) => s.peer.connected);
    // Long enough for a second window to arrive, were the active to send one.
    await sleep(2_000);
    execFileSync('mount', ['-o', 'remount,size=64m', p.data('beta')]);
    await p.waitIdentical(60_000);
    const refusals = p.logLines('beta').filter((l) => l.code === 'TANDEM_ERR_WINDOW_EXCEEDED');
    expect(refusals).toEqual([]);
  }, 120_000);
});
