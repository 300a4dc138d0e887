// `tandem demo` as a new user runs it: `npm start | tee log`. It prints the console's login link
// first; it prints a status line when the pair changes, not every second; and Ctrl-C, which the
// terminal sends to the whole foreground group (tee dies with it, so every later write of the
// demo fails with EPIPE), still stops the agents, runs the stop scripts and leaves nothing
// serving. The demo runs in its own process group here, as a terminal's foreground job would.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readScriptsLog } from '../../../agent/scripts/index.ts';
import { fetchStatus } from '../../../console/control-client.ts';
import { readDemoPairJson, removeDemoDir } from '../../helpers/demo-dir.ts';
import { servedBy, sleep, TANDEM_BIN, until } from '../../helpers/pair.ts';
import { exited, spawnTracked, TEST_MARKER } from '../../helpers/processes.ts';
import { testPortRange } from '../../helpers/ports.ts';
import { initDemoPair } from '../../../console/demo/init-pair.ts';


let dir: string | undefined;
let group: number | undefined;
afterEach(async () => {
  if (group !== undefined) {
    try {
      process.kill(-group, 'SIGKILL');
    } catch {
      // gone already
    }
    group = undefined;
  }
  if (dir === undefined) return;
  await removeDemoDir(dir);
  dir = undefined;
});

const STATUS_LINE = /^\d\d:\d\d:\d\d {2}alpha /gm;

describe('tandem demo in a terminal', () => {
  it('prints the console link first, a status line only on change, and stops cleanly on Ctrl-C under a broken pipe', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `tandem-demo-pipe-${process.pid}-`));
    // The pair is written first with ports from this worker's slice: `tandem demo` chooses from
    // the whole range below the ephemeral ports, where a pair of the other worker, found free a
    // moment before, may be about to bind (EADDRINUSE for another test's agent, once in a full
    // run while this test ran). demo.test.ts keeps the first run's own choice.
    await initDemoPair(dir, { appPort: 0, portRange: testPortRange() });
    const demo = spawnTracked(process.execPath, [`--title=${TEST_MARKER}`, TANDEM_BIN, 'demo', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    group = demo.pid;
    let out = '';
    demo.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    demo.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const demoExit = exited(demo);

    await until('the banner', () => (/kill -9 (\d+)/.test(out) ? true : undefined), 90_000);
    const first = out.split('\n').find((l) => l.trim() !== '')!;
    const link = /^Console: +(http:\/\/127\.0\.0\.1:\d+\/console\/login\?ticket=[0-9a-f]{64})$/.exec(first);
    expect(link, first).not.toBeNull();
    // The link logs a browser in: a session cookie, and the dashboard.
    const login = await fetch(link![1]!, { redirect: 'manual' });
    expect(login.status).toBe(303);
    expect(login.headers.get('location')).toBe('/console/');
    expect(login.headers.get('set-cookie')).toMatch(/^tandem_session_\d+=[0-9a-f]{64};/);

    const pair = readDemoPairJson(dir);
    await until('alpha serving, beta in sync', async () => {
      const [a, b] = await Promise.all(pair.nodes.map((n) => fetchStatus(n.controlUrl, 1000).catch(() => undefined)));
      return a?.failover.serving === true && a.state === 'in-sync' && b?.state === 'in-sync' && (await servedBy(pair.appUrl)) === 'alpha' ? true : undefined;
    }, 60_000);
    // Quiet pair, quiet terminal: once settled, no line for several seconds (it printed one a second).
    await sleep(2500);
    const settled = out.match(STATUS_LINE)?.length ?? 0;
    await sleep(5000);
    expect(out.match(STATUS_LINE)?.length ?? 0).toBe(settled);
    // A change is a line.
    fs.writeFileSync(path.join(pair.nodes[0]!.dataDir, 'new.txt'), 'changed\n');
    await until('a status line for the change', () => ((out.match(STATUS_LINE)?.length ?? 0) > settled ? true : undefined), 20_000);

    // Ctrl-C under `| tee`: the reader of its output is gone first, then the whole group gets SIGINT.
    demo.stdout!.destroy();
    process.kill(-demo.pid!, 'SIGINT');
    expect(await demoExit).toBe(0);
    group = undefined;
    expect(await servedBy(pair.appUrl)).toBeUndefined();
    for (const n of pair.nodes) expect(await fetchStatus(n.controlUrl, 500).catch(() => 'gone')).toBe('gone');
    const log = readScriptsLog(pair.scriptsLog);
    const lastStop = log.filter((e) => e.node === 'alpha' && e.script === 'stop').map((e) => e.event);
    expect(lastStop.slice(-2)).toEqual(['begin', 'ok']);
    expect(out).not.toMatch(/EPIPE|Error/);
  }, 180_000);
});
