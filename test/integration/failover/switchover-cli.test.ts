// `tandem switchover` against two real agents: the command, run as an operator runs it, moves
// the active role (and the demo application) to the peer and back without losing a file or
// letting both nodes serve, and refuses, changing nothing, when the passive is gone.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { overlappingStarts, readScriptsLog } from '../../../agent/scripts/index.ts';
import { killAll } from '../../helpers/processes.ts';
import { tandem } from '../../helpers/cli.ts';
import { servedBy, sleep, TestPair, type NodeName } from '../../helpers/pair.ts';

/**
 * The old active heard the new one confirm the takeover (it did not wait out its timeout and
 * step down unconfirmed). How fast it was is for `npm run bench`, not for a test.
 */
function expectConfirmed(p: TestPair, node: NodeName): void {
  const unconfirmed = p.logLines(node).filter((l) => /did not confirm the takeover/.test(String(l.msg)));
  expect(unconfirmed).toEqual([]);
}

let pair: TestPair | undefined;

afterEach(async () => {
  await killAll();
  await pair?.cleanup();
  pair = undefined;
});

async function waitServedBy(p: TestPair, node: NodeName, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: string | undefined;
  while (Date.now() < deadline) {
    last = await servedBy(p.info.appUrl, 2000);
    if (last === node) return;
    await sleep(50);
  }
  throw new Error(`the demo application is not served by ${node} after ${timeoutMs} ms (served by ${last ?? 'nobody'})`);
}

/** Both agents up, alpha active and serving the application, beta connected and in sync. */
async function servingPair(files: Record<string, string>): Promise<TestPair> {
  const p = await TestPair.create();
  pair = p;
  await p.startBoth();
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(p.data('alpha', rel)), { recursive: true });
    fs.writeFileSync(p.data('alpha', rel), text);
  }
  await p.waitIdentical();
  await p.waitFor('alpha', 'active and serving', (s) => s.role === 'active' && s.failover.serving && s.failover.phase === 'steady');
  await waitServedBy(p, 'alpha');
  return p;
}

/** Waits until `active` serves with its peer connected as passive and in sync (ready to switch again). */
async function waitReady(p: TestPair, active: NodeName): Promise<void> {
  await p.waitFor(active, 'active, serving, passive connected and in sync', (s) =>
    s.role === 'active' && s.failover.serving && s.failover.phase === 'steady' && s.peer.connected && s.peer.role === 'passive' && s.replication.inSync,
  );
}

function expectNoOverlap(p: TestPair): void {
  const log = readScriptsLog(p.info.scriptsLog);
  expect(overlappingStarts(log), JSON.stringify(log, null, 1)).toEqual([]);
}

describe('tandem switchover', () => {
  it('moves the active role and the application to the passive, with every file, and never lets both serve', async () => {
    const files = { 'orders/1.txt': 'order one\n', 'orders/2.txt': 'order two\n', 'big.bin': 'x'.repeat(300_000) };
    const p = await servingPair(files);
    const alphaConfig = p.node('alpha').config;

    const run = await tandem(['switchover', '-c', alphaConfig], 120_000);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^switchover done: beta is active \(was alpha\), in \d+\.\d s\n$/);
    expect(run.stderr).toContain(`asking alpha (${p.node('alpha').controlUrl}) for its status`);

    // Exit 0 means done: no waiting here before reading both nodes.
    const [a, b] = await Promise.all([p.status('alpha'), p.status('beta')]);
    expect(b.role).toBe('active');
    expect(b.failover.serving).toBe(true);
    expect(a.role).toBe('passive');
    expect(a.failover.serving).toBe(false);
    expect(await servedBy(p.info.appUrl)).toBe('beta');
    for (const [rel, text] of Object.entries(files)) {
      expect(fs.readFileSync(p.data('beta', rel), 'utf8')).toBe(text);
      const res = await fetch(new URL(`files/${rel}`, p.info.appUrl));
      expect(res.headers.get('x-served-by')).toBe('beta');
      expect(await res.text()).toBe(text);
    }
    expectNoOverlap(p);

    // Replication runs the other way now.
    fs.writeFileSync(p.data('beta', 'after.txt'), 'written on beta\n');
    await p.waitFor('alpha', 'after.txt applied', () => fs.existsSync(p.data('alpha', 'after.txt')) && fs.readFileSync(p.data('alpha', 'after.txt'), 'utf8') === 'written on beta\n');

    expectConfirmed(p, 'alpha');
  }, 150_000);

  it('moves the role back when run again with the config of the node that is now passive', async () => {
    const p = await servingPair({ 'a.txt': 'a\n' });
    const alphaConfig = p.node('alpha').config;
    const epoch0 = (await p.status('alpha')).failover.epoch;

    const there = await tandem(['switchover', '-c', alphaConfig], 120_000);
    expect(there.code, there.stderr).toBe(0);
    await waitReady(p, 'beta');
    const epoch1 = (await p.status('beta')).failover.epoch;

    // alpha is passive now: the command asks beta, through the address in alpha's config.
    const back = await tandem(['switchover', '-c', alphaConfig, '--json'], 120_000);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stderr).toContain('alpha is passive; asking its peer beta');
    const result = JSON.parse(back.stdout) as { ok: boolean; from: string; to: string; ms: number };
    expect(result).toMatchObject({ ok: true, from: 'beta', to: 'alpha' });
    expect(result.ms).toBeGreaterThan(0);

    const [a, b] = await Promise.all([p.status('alpha'), p.status('beta')]);
    expect(a.role).toBe('active');
    expect(a.failover.serving).toBe(true);
    expect(b.role).toBe('passive');
    expect(await servedBy(p.info.appUrl)).toBe('alpha');
    expect(fs.readFileSync(p.data('alpha', 'a.txt'), 'utf8')).toBe('a\n');
    // Each switchover hands over with a new epoch.
    expect(epoch1).toBeGreaterThan(epoch0);
    expect(a.failover.epoch).toBeGreaterThan(epoch1);
    expectNoOverlap(p);

    expectConfirmed(p, 'alpha');
    expectConfirmed(p, 'beta');
    // Each time the old active stood exactly where the new generation forked: replication
    // resumed from the next sequence, no synchronisation after either switchover. The switchover
    // returns once alpha serves; beta connects to it as passive after that: wait for it.
    await p.waitFor('alpha', 'its passive connected again', () => p.logLines('alpha').filter((l) => /^replication: passive connected/.test(String(l.msg))).length > 1, 60_000);
    for (const n of ['alpha', 'beta'] as const) {
      const decisions = p.logLines(n).filter((l) => /^replication: passive connected/.test(String(l.msg)));
      // (A connection replaced under load resumes once more: still no synchronisation.)
      const kinds = decisions.map((l) => l.decision?.kind as string);
      expect(n === 'alpha' ? kinds.slice(1) : kinds).toEqual(kinds.slice(n === 'alpha' ? 1 : 0).map(() => 'resume'));
      expect(kinds.length).toBeGreaterThan(n === 'alpha' ? 1 : 0);
      if (n === 'alpha') expect(kinds[0]).toBe('sync');
      expect(decisions.at(-1)?.decision?.fork).toBe(true);
    }
  }, 300_000);

  it('refuses at once, changing nothing, when the passive agent is gone', async () => {
    const p = await servingPair({ 'a.txt': 'a\n' });
    await p.kill('beta', 'SIGKILL');
    await p.waitFor('alpha', 'the peer seen disconnected', (s) => !s.peer.connected);

    const run = await tandem(['switchover', '-c', p.node('alpha').config], 30_000);
    expect(run.code).toBe(1);
    // Quick means no drain and no handover attempted: the process start itself takes most of it.
    expect(run.ms).toBeLessThan(8000);
    expect(run.stderr).toMatch(/error TANDEM_ERR_SWITCHOVER_REFUSED: .*alpha is not connected to beta/);
    expect(run.stderr).toContain('hint: ');
    expect(run.stdout).toBe('');

    const json = await tandem(['switchover', '-c', p.node('alpha').config, '--json'], 30_000);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout), json.stdout + json.stderr).toMatchObject({ ok: false, code: 'TANDEM_ERR_SWITCHOVER_REFUSED' });

    const a = await p.status('alpha');
    expect(a.role).toBe('active');
    expect(a.failover.serving).toBe(true);
    expect(await servedBy(p.info.appUrl)).toBe('alpha');
    expect(p.logLines('alpha').some((l) => typeof l.msg === 'string' && l.msg.startsWith('control: switchover requested'))).toBe(false);
  }, 60_000);
});
