// Operator actions with two real agents, through the CLI: failover --force and its refusals,
// switchover --dry-run, the health endpoints a load balancer reads, and token rotation without a
// restart.
import { afterEach, describe, expect, it } from 'vitest';
import { controlToken } from '../../../agent/control/index.ts';
import { overlappingStarts, readScriptsLog } from '../../../agent/scripts/index.ts';
import { readPairKey } from '../../../shared/pair-key.ts';
import { allEvents, line, readEvents, waitEvent } from '../../helpers/events.ts';
import { killAll } from '../../helpers/processes.ts';
import { tandem } from '../../helpers/cli.ts';
import { servedBy, type TestPair, until, type NodeName } from '../../helpers/pair.ts';
import { quickServingPair } from '../../helpers/quick-pair.ts';
import fs from 'node:fs';
import path from 'node:path';

let pair: TestPair | undefined;
afterEach(async () => {
  await killAll();
  await pair?.cleanup();
  pair = undefined;
});

async function servingPair(extra?: Parameters<typeof quickServingPair>[0]): Promise<TestPair> {
  pair = await quickServingPair(extra);
  return pair;
}

async function health(p: TestPair, n: NodeName, role: 'active' | 'passive'): Promise<number> {
  return (await fetch(`${p.node(n).controlUrl}/v1/health/${role}`)).status;
}

describe('operator actions', () => {
  it('failover --force: refused while the active answers; taken once it is gone, where failover.auto is off', async () => {
    const p = await servingPair((doc) => {
      doc.failover = { auto: false };
    });
    const betaConfig = p.node('beta').config;
    const usage = await tandem(['failover', '-c', betaConfig], 30_000);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--force is required');
    const alive = await tandem(['failover', '--force', '-c', betaConfig], 30_000);
    expect(alive.code).toBe(1);
    expect(alive.stderr).toMatch(/error TANDEM_ERR_FAILOVER_REFUSED: .*the peer answers on the channel: it is not gone/);
    expect((await p.status('beta')).role).toBe('passive');

    const sb = (await readEvents(p.node('beta').controlUrl)).lastSeq;
    await p.kill('alpha', 'SIGKILL');
    // failover.auto is off: beta says it will not take over by itself.
    await waitEvent(p.node('beta').controlUrl, 'the refusal', (e) => e.kind === 'alarm' && e.details.code === 'TANDEM_ERR_FAILOVER_REFUSED' && e.reason.includes('failover.auto is off'), 30_000, sb);
    const forced = await tandem(['failover', '--force', '-c', betaConfig, '--json'], 150_000);
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ node: 'beta', ok: true });
    const b = await p.status('beta');
    expect([b.role, b.failover.serving]).toEqual(['active', true]);
    expect(await servedBy(p.info.appUrl, 2000)).toBe('beta');
    const events = await allEvents(p.node('beta').controlUrl, sb);
    const started = events.find((e) => e.kind === 'failover' && e.details.phase === 'started')!;
    expect(line(started)).toBe('failover:started alpha→beta [operator]');
    expect(started.reason).toMatch(/^failover forced by an operator: the active is vouched gone \(channel down for [\d.]+ s, presence dead; this node was 0 ms behind/);
    expect(events.find((e) => e.kind === 'role')).toMatchObject({ from: 'passive', to: 'active', trigger: 'operator' });

    // The old active comes back, meets the newer epoch and rejoins as passive.
    await p.start('alpha');
    await p.waitFor('alpha', 'passive again', (s) => s.role === 'passive' && s.state === 'in-sync');
    expect(overlappingStarts(readScriptsLog(p.info.scriptsLog))).toEqual([]);
  }, 150_000);

  it('health endpoints follow the roles: 200 on the active for /active, on the in-sync passive for /passive', async () => {
    const p = await servingPair();
    expect([await health(p, 'alpha', 'active'), await health(p, 'alpha', 'passive'), await health(p, 'beta', 'active'), await health(p, 'beta', 'passive')]).toEqual([200, 503, 503, 200]);
    const dry = await tandem(['switchover', '--dry-run', '-c', p.node('alpha').config], 30_000);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^switchover alpha → beta would start now \(nothing was changed\):\n {2}1\. stop the applications on alpha/);
    expect(dry.stdout).toMatch(/drain now: \d+ records, \d+ bytes, \d+ paths not journaled yet/);
    expect((await p.status('alpha')).role).toBe('active');
    const run = await tandem(['switchover', '-c', p.node('alpha').config], 120_000);
    expect(run.code, run.stderr).toBe(0);
    await p.waitFor('alpha', 'in sync as passive', (s) => s.state === 'in-sync');
    expect([await health(p, 'alpha', 'active'), await health(p, 'alpha', 'passive'), await health(p, 'beta', 'active'), await health(p, 'beta', 'passive')]).toEqual([503, 200, 200, 503]);
    // Not an in-sync passive: a dead peer leaves beta active (200) and alpha nowhere.
    await p.kill('alpha', 'SIGKILL');
    await p.waitFor('beta', 'alone', (s) => !s.peer.connected);
    expect(await health(p, 'beta', 'active')).toBe(200);
  }, 150_000);

  it('rotates the control token on both nodes without a restart: old tokens refused, the CLI and the new token work', async () => {
    const p = await servingPair();
    const key = readPairKey(path.join(path.dirname(p.node('alpha').config), 'pair.key'));
    const old = controlToken(key);
    const post = (n: NodeName, token: string) => fetch(`${p.node(n).controlUrl}/v1/maintenance?on=0`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    expect((await post('alpha', old)).status).toBe(200);
    const pids = [p.procs.get('alpha')!.pid, p.procs.get('beta')!.pid];
    const rot = await tandem(['token', 'rotate', '-c', p.node('alpha').config], 30_000);
    expect(rot.code, rot.stderr).toBe(0);
    expect(rot.stdout).toBe('alpha: control token rotated\nbeta: control token rotated\n');
    for (const n of ['alpha', 'beta'] as const) expect((await post(n, old)).status).toBe(403);
    const shown = await tandem(['token', 'show', '-c', p.node('beta').config], 30_000);
    expect(shown.code).toBe(0);
    const token = shown.stdout.trim();
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    expect(token).not.toBe(old);
    // One token for the pair, as before the rotation.
    for (const n of ['alpha', 'beta'] as const) expect((await post(n, token)).status).toBe(200);
    // The CLI derives the new token from the key and the salt the agent names.
    const paused = await tandem(['pause', '-c', p.node('alpha').config], 30_000);
    expect(paused.code, paused.stderr).toBe(0);
    const resumed = await tandem(['resume', '-c', p.node('alpha').config], 30_000);
    expect(resumed.code, resumed.stderr).toBe(0);
    // Nothing restarted; each node reports the rotation, and keeps it across a restart.
    expect([p.procs.get('alpha')!.pid, p.procs.get('beta')!.pid]).toEqual(pids);
    await until('the token event', async () => ((await allEvents(p.node('beta').controlUrl)).some((e) => e.kind === 'token') ? true : undefined), 10_000);
    expect(fs.statSync(path.join(p.node('beta').stateDir, 'operator.json')).mode & 0o777).toBe(0o600);
    await p.kill('beta', 'SIGTERM');
    await p.start('beta');
    expect((await post('beta', old)).status).toBe(403);
    expect((await post('beta', token)).status).toBe(200);
  }, 120_000);
});
