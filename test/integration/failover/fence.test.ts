// The fence hook (scripts.fence) with two real agents: when the active dies, the passive runs the
// fence script before it takes over; while the fence fails it stays passive with the alarm
// TANDEM_ERR_FENCE_FAILED and tries again later; once a fence succeeds it takes over and serves.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { overlappingStarts, readScriptsLog } from '../../../agent/scripts/index.ts';
import { killAll } from '../../helpers/processes.ts';
import { servedBy, sleep, TestPair } from '../../helpers/pair.ts';

let pair: TestPair | undefined;

afterEach(async () => {
  await killAll();
  await pair?.cleanup();
  pair = undefined;
});

describe('fencing', () => {
  it('takes over only after the fence script succeeds, with an alarm while it fails', async () => {
    const p = await TestPair.create({
      config: (doc) => {
        doc.scripts = { ...(doc.scripts ?? {}), fence: './fence.sh' };
      },
    });
    pair = p;
    const allow = path.join(p.dir, 'fence-allowed');
    const fenceLog = path.join(p.dir, 'fence.log');
    for (const n of p.info.nodes) {
      const peer = p.info.nodes.find((x) => x.name !== n.name)!;
      const fenceScript = path.join(path.dirname(n.config), 'fence.sh');
      // A stand-in for IPMI: it succeeds only once the test allows it, and then really fences
      // (runs the peer's stop script, as the demo's own fencing does).
      fs.writeFileSync(
        fenceScript,
        `#!/bin/sh\necho "$TANDEM_NODE fences $TANDEM_PEER: $TANDEM_REASON" >> '${fenceLog}'\n[ -f '${allow}' ] || { echo "power controller refused" >&2; exit 1; }\nTANDEM_REASON="fenced by ${n.name}" '${path.join(peer.scriptsDir, 'stop.sh')}'\n`,
        { mode: 0o755 },
      );
    }
    await p.startBoth();
    await p.waitFor('alpha', 'active and serving', (s) => s.role === 'active' && s.failover.serving && s.failover.phase === 'steady');
    await p.waitFor('beta', 'in sync', (s) => s.replication.inSync);

    await p.kill('alpha', 'SIGKILL');
    const refused = await p.waitFor('beta', 'the fence alarm', (s) => s.alarms.some((a) => a.code === 'TANDEM_ERR_FENCE_FAILED'), 60_000);
    expect(refused.role).toBe('passive');
    expect(refused.failover.serving).toBe(false);
    expect(refused.alarms.find((a) => a.code === 'TANDEM_ERR_FENCE_FAILED')!.message).toMatch(/fence script failed/);
    // It stays passive while the fence keeps failing (a retry later fails again).
    const firstTries = fs.readFileSync(fenceLog, 'utf8').trim().split('\n').length;
    await sleep(7_000);
    expect((await p.status('beta')).role).toBe('passive');
    expect(fs.readFileSync(fenceLog, 'utf8').trim().split('\n').length).toBeGreaterThan(firstTries);
    expect(fs.readFileSync(fenceLog, 'utf8')).toMatch(/^beta fences alpha: failover: /m);

    fs.writeFileSync(allow, '');
    const took = await p.waitFor('beta', 'active and serving', (s) => s.role === 'active' && s.failover.serving, 60_000);
    expect(took.alarms.filter((a) => a.code === 'TANDEM_ERR_FENCE_FAILED')).toEqual([]);
    expect(await servedBy(p.info.appUrl, 2000)).toBe('beta');
    // The scripts' own record: alpha's application was stopped (fenced) before beta started.
    expect(overlappingStarts(readScriptsLog(p.info.scriptsLog))).toEqual([]);
  }, 180_000);
});
