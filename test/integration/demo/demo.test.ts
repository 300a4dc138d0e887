// `tandem demo`, the main job, run as an operator runs it: the page answers from alpha; kill
// the active agent with -9 and the page keeps working from beta; the demo starts alpha's agent
// again and it rejoins as passive; Ctrl-C stops everything.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { overlappingStarts, readScriptsLog } from '../../../agent/scripts/index.ts';
import { fetchStatus } from '../../../console/control-client.ts';
import { ClientLoop, format } from '../../helpers/client-loop.ts';
import { removeDemoDir } from '../../helpers/demo-dir.ts';
import { servedBy, TANDEM_BIN, until } from '../../helpers/pair.ts';
import { testPortRange } from '../../helpers/ports.ts';
import { exited, spawnTracked, TEST_MARKER } from '../../helpers/processes.ts';

interface PairJson {
  appUrl: string;
  scriptsLog: string;
  nodes: { name: string; controlUrl: string; scriptsDir: string }[];
}

let dir: string | undefined;
afterEach(async () => {
  if (dir === undefined) return;
  // The demo's agents are its own children: if the demo was killed, stop them by their pids.
  await removeDemoDir(dir);
  dir = undefined;
});

describe('tandem demo', () => {
  it('keeps the page working from the other node when the active agent is killed, brings the old node back as passive, and stops on Ctrl-C', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-demo-test-'));
    // Ports from this worker's slice: the demo's own choice (10000-32767, or 8080 for the
    // application) spans every worker's, and a port it found free could be taken by another
    // worker's agent before it binds (demo-ports.test.ts checks the choice itself).
    const [lo, hi] = testPortRange();
    const demo = spawnTracked(process.execPath, [`--title=${TEST_MARKER}`, TANDEM_BIN, 'demo', '--dir', dir, '--ports', `${lo}-${hi}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    demo.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    demo.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const demoExit = exited(demo);

    const pid = await until('the failover hint', () => /kill -9 (\d+)/.exec(out)?.[1], 60_000);
    const pair = JSON.parse(fs.readFileSync(path.join(dir, 'pair.json'), 'utf8')) as PairJson;
    await until('alpha serving the page', async () => ((await servedBy(pair.appUrl)) === 'alpha' ? true : undefined), 30_000);
    const page = await (await fetch(pair.appUrl)).text();
    expect(page).toContain('Served by <span id="node">alpha</span>');

    const loop = new ClientLoop({ url: pair.appUrl, ratePerSecond: 20 });
    loop.start();
    await until('the loop served by alpha', () => ((loop.report().servedBy[0]?.count ?? 0) >= 5 ? true : undefined), 30_000);
    process.kill(Number(pid), 'SIGKILL');
    await until('the loop served by beta', () => (loop.report().servedBy.some((r) => r.node === 'beta' && r.count >= 10) ? true : undefined), 60_000);
    const report = await loop.stop();
    expect(report.servedBy.map((r) => r.node)).toEqual(['alpha', 'beta']);
    process.stdout.write(`[demo] kill -9 of the active agent: ${format(report)}\n`);
    expect((await (await fetch(pair.appUrl)).text()).includes('Served by <span id="node">beta</span>')).toBe(true);
    expect(out).toMatch(/alpha's agent exited \(SIGKILL\)/);

    // The demo starts alpha's agent again: it rejoins as passive and beta keeps the role.
    await until('alpha restarted', () => (out.includes("starting alpha's agent again") ? true : undefined), 30_000);
    const alpha = pair.nodes.find((n) => n.name === 'alpha')!;
    await until('alpha passive and in sync', async () => {
      const s = await fetchStatus(alpha.controlUrl, 500).catch(() => undefined);
      return s?.role === 'passive' && s.replication.inSync ? true : undefined;
    }, 30_000);
    expect(await servedBy(pair.appUrl)).toBe('beta');

    demo.kill('SIGINT');
    expect(await demoExit).toBe(0);
    expect(await servedBy(pair.appUrl)).toBeUndefined();
    for (const n of pair.nodes) expect(await fetchStatus(n.controlUrl, 500).catch(() => 'gone')).toBe('gone');
    expect(overlappingStarts(readScriptsLog(pair.scriptsLog))).toEqual([]);
  }, 180_000);
});
