import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { killAll } from '../../helpers/processes.ts';
import { sleep, TestPair } from '../../helpers/pair.ts';
import { rng, Workload } from '../../helpers/workload.ts';
import { describeDecision, startDecisions } from '../../helpers/start-decisions.ts';

let pair: TestPair | undefined;

/** The start decisions the active logged, oldest first ('resume' or 'sync'). */
/** These tests are about replication across agent kills, not about failover: no role changes. */
const noFailover = { config: (doc: Record<string, any>) => (doc.failover = { auto: false }) };

afterEach(async () => {
  await killAll();
  await pair?.cleanup();
  pair = undefined;
});

/** 500 files in bursts, then modifications, renames, a directory rename and deletions. */
async function burstyWorkload(w: Workload, between: () => Promise<void> = async () => {}): Promise<void> {
  for (let i = 0; i < 5; i++) {
    w.create(100);
    await sleep(30);
  }
  w.symlinks();
  const ms = w.burstAppend();
  expect(ms).toBeLessThan(200);
  await between();
  for (let i = 0; i < 4; i++) {
    w.modify(50);
    await sleep(20);
  }
  w.rename(60);
  w.renameDir('d3', 'd3-moved');
  await sleep(20);
  w.remove(80);
  fs.rmSync(`${w.root}/d4`, { recursive: true, force: true });
  w.burstAppend('burst.log', 200);
}

describe('replication between two agent processes', () => {
  it('makes the passive tree byte-identical after 500 files are created, modified, renamed and deleted in bursts', async () => {
    pair = await TestPair.create(noFailover);
    await pair.startBoth();
    await pair.waitIdentical();
    const w = new Workload(pair.data('alpha'), rng(1));
    await burstyWorkload(w);
    await pair.waitIdentical();
    const alpha = await pair.status('alpha');
    expect(alpha.replication.inSync).toBe(true);
    expect(alpha.alarms).toEqual([]);
    // Replication is incremental: the burst file travelled as appends, not 200 copies.
    expect(alpha.channel.bytesOut).toBeLessThan(200 * 1024 * 1024);
  });

  it('stays identical when the passive agent is killed with SIGKILL mid-stream and restarted', async () => {
    pair = await TestPair.create(noFailover);
    const p = pair;
    await p.startBoth();
    await p.waitIdentical();
    const w = new Workload(p.data('alpha'), rng(2));
    await burstyWorkload(w, async () => {
      // Kill while batches are in flight (right after a burst), three times, letting the active
      // go on alone in between, then bring the passive back.
      for (let k = 0; k < 3; k++) {
        w.create(60);
        await sleep(10 + k * 15);
        await p.kill('beta', 'SIGKILL');
        w.modify(60);
        await sleep(100);
        await p.start('beta');
        // Streaming again before the next kill, so that every kill lands mid-stream.
        await p.waitFor('beta', 'connected to the active', (st) => st.peer.connected && st.replication.appliedSeq > 0);
      }
    });
    await p.waitIdentical();
    // It resumed from its last acknowledged sequence every time: one synchronisation at the start
    // only (crossed connects can add resumes, and decide that first one twice; never another).
    const d = startDecisions(p);
    expect(d.untilSynced.filter((l) => l.decision.kind !== 'sync').map(describeDecision)).toEqual([]);
    expect(d.afterSynced.length).toBeGreaterThanOrEqual(3);
    expect(d.afterSynced.filter((l) => l.decision.kind !== 'resume').map(describeDecision)).toEqual([]);
  });

  it('stays identical when the active agent is killed with SIGKILL mid-stream, the tree changes while it is down, and it restarts', async () => {
    pair = await TestPair.create(noFailover);
    const p = pair;
    await p.startBoth();
    await p.waitIdentical();
    const w = new Workload(p.data('alpha'), rng(3));
    await burstyWorkload(w, async () => {
      w.create(60);
      await sleep(15);
      await p.kill('alpha', 'SIGKILL');
      // Changes made while no agent watches: found at start-up by comparing stat data.
      w.modify(100);
      w.rename(20);
      w.remove(20);
      await p.start('alpha');
    });
    await p.waitIdentical();
    const beta = await p.status('beta');
    expect(beta.replication.inSync).toBe(true);
    const d = startDecisions(p);
    expect(d.untilSynced.filter((l) => l.decision.kind !== 'sync').map(describeDecision)).toEqual([]);
    expect(d.afterSynced.length).toBeGreaterThanOrEqual(1);
    expect(d.afterSynced.filter((l) => l.decision.kind !== 'resume').map(describeDecision)).toEqual([]);
  });
});
