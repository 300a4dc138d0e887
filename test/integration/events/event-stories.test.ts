// Two real agents, driven through the CLI as an operator would, and each story read whole from
// GET /v1/events: a failover, a switchover, a pause and a maintenance window, with their kinds,
// order, reasons and triggers; and the history read back after an agent restart.
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { overlappingStarts, readScriptsLog } from '../../../agent/scripts/index.ts';
import type { TandemEvent } from '../../../agent/events/index.ts';
import { allEvents, inOrder, line, readEvents, waitEvent } from '../../helpers/events.ts';
import { killAll, spawnTracked } from '../../helpers/processes.ts';
import { tandem } from '../../helpers/cli.ts';
import { TANDEM_BIN, until, type TestPair, type NodeName } from '../../helpers/pair.ts';
import { quickServingPair } from '../../helpers/quick-pair.ts';

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

const url = (p: TestPair, n: NodeName) => p.node(n).controlUrl;

function expectStory(events: TandemEvent[], expected: string[]): void {
  const r = inOrder(events, expected);
  expect(r.ok, `missing "${r.missing}" in:\n${r.story.join('\n')}`).toBe(true);
}

function expectNoOverlap(p: TestPair): void {
  expect(overlappingStarts(readScriptsLog(p.info.scriptsLog))).toEqual([]);
}

describe('the story of a node, from its events', () => {
  it('a failover: the active is killed, the passive tells why it took over; its history survives a restart of its agent', async () => {
    const p = await servingPair();
    const since = (await readEvents(url(p, 'beta'))).lastSeq;
    await p.kill('alpha', 'SIGKILL');
    await waitEvent(url(p, 'beta'), 'the failover done', (e) => e.kind === 'failover' && e.details.phase === 'done', 30_000, since);
    const events = await allEvents(url(p, 'beta'), since);
    const story = events.map(line);
    expect(story).toContain('link:channel up→down [automatic]');
    expect(story).toContain('link:presence alive→dead [automatic]');
    expectStory(events, ['failover:started alpha→beta [automatic]', 'state standalone→failing-over [automatic]', 'role passive→active [automatic]', 'serving stopped→serving [automatic]', 'failover:done alpha→beta [automatic]']);
    const started = events.find((e) => e.kind === 'failover')!;
    expect(started.reason).toMatch(/^failover: channel down and the active's agent refuses connections \(gone\) for \d+(\.\d)? s$/);
    expect(events.find((e) => e.kind === 'role')!.reason).toBe(started.reason);
    expect(events.every((e) => e.node === 'beta')).toBe(true);
    expectNoOverlap(p);

    // The history survives an agent restart: the same events, the same numbers, then the restart's own.
    const before = await readEvents(url(p, 'beta'));
    await p.kill('beta', 'SIGTERM');
    await p.start('beta');
    const after = await readEvents(url(p, 'beta'));
    expect(after.history).toBe(before.history);
    expect(after.events.slice(0, before.events.length)).toEqual(before.events);
    const restart = after.events.slice(before.events.length);
    expect(line(restart[0]!)).toBe('agent running→stopped [automatic]');
    expectStory(restart, ['agent running→stopped [automatic]', 'agent stopped→running [automatic]']);
    expect(after.events.at(-1)!.seq).toBeGreaterThan(before.lastSeq);
  }, 120_000);

  it('a switchover: the old active tells an operator\'s handover, the new one a planned takeover', async () => {
    const p = await servingPair();
    const [sa, sb] = [(await readEvents(url(p, 'alpha'))).lastSeq, (await readEvents(url(p, 'beta'))).lastSeq];
    const run = await tandem(['switchover', '-c', p.node('alpha').config], 120_000);
    expect(run.code, run.stderr).toBe(0);
    await waitEvent(url(p, 'beta'), 'the takeover done', (e) => e.kind === 'switchover' && e.details.phase === 'done', 30_000, sb);
    await waitEvent(url(p, 'alpha'), 'the handover done', (e) => e.kind === 'switchover' && e.details.phase === 'done', 30_000, sa);
    const a = await allEvents(url(p, 'alpha'), sa);
    const b = await allEvents(url(p, 'beta'), sb);
    expectStory(a, ['switchover:started alpha→beta [operator]', 'state in-sync→switching [operator]', 'role active→passive [operator]', 'serving serving→stopped [operator]', 'switchover:done alpha→beta [operator]']);
    expectStory(b, ['switchover:started alpha→beta [planned]', 'state in-sync→switching [planned]', 'role passive→active [planned]', 'serving stopped→serving [planned]', 'switchover:done alpha→beta [planned]']);
    expect(a.find((e) => e.kind === 'role')!.reason).toBe('operator asked for a switchover');
    expect(b.find((e) => e.kind === 'role')!.reason).toBe('planned switchover');
    // Neither node reports a failover, and status says the same as the events.
    expect([...a, ...b].some((e) => e.kind === 'failover')).toBe(false);
    const [sa2, sb2] = await Promise.all([p.status('alpha'), p.status('beta')]);
    expect([sa2.role, sa2.failover.lastRoleChange?.trigger, sb2.role, sb2.failover.lastRoleChange?.trigger]).toEqual(['passive', 'operator', 'active', 'planned']);
    expect(sa2.failover.lastRoleChange?.reason).toBe('operator asked for a switchover');
    expectNoOverlap(p);
  }, 150_000);

  it('a pause: nothing reaches the passive until resume, both nodes say paused, a switchover is refused meanwhile', async () => {
    const p = await servingPair();
    const [sa, sb] = [(await readEvents(url(p, 'alpha'))).lastSeq, (await readEvents(url(p, 'beta'))).lastSeq];
    const paused = await tandem(['pause', '-c', p.node('beta').config, '--reason', 'nightly backup'], 30_000);
    expect(paused.code, paused.stderr).toBe(0);
    expect(paused.stderr).toContain('beta is not active; asking its peer alpha');
    fs.writeFileSync(p.data('alpha', 'during-pause.txt'), 'written while paused\n');
    const a = await p.waitFor('alpha', 'the file journaled', (s) => s.replication.headSeq > s.replication.appliedSeq && s.capture?.pendingPaths === 0);
    expect(a.state).toBe('paused');
    expect(a.replication.paused).toBe(true);
    const b = await p.waitFor('beta', 'paused', (s) => s.state === 'paused');
    expect(b.replication.appliedSeq).toBeLessThan(a.replication.headSeq);
    expect(fs.existsSync(p.data('beta', 'during-pause.txt'))).toBe(false);
    const refused = await tandem(['switchover', '-c', p.node('alpha').config], 30_000);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('replication to beta is paused');

    const resumed = await tandem(['resume', '-c', p.node('alpha').config], 30_000);
    expect(resumed.code, resumed.stderr).toBe(0);
    await p.waitFor('beta', 'the file applied', () => fs.existsSync(p.data('beta', 'during-pause.txt')));
    await waitEvent(url(p, 'beta'), 'in sync again', (e) => e.kind === 'state' && e.from === 'paused', 20_000, sb);
    const ea = await allEvents(url(p, 'alpha'), sa);
    const eb = await allEvents(url(p, 'beta'), sb);
    expectStory(ea, ['replication running→paused [operator]', 'state in-sync→paused [operator]', 'replication paused→running [operator]']);
    expectStory(eb, ['replication running→paused [operator]', 'state in-sync→paused [operator]', 'replication paused→running [operator]']);
    expect(ea.find((e) => e.kind === 'replication')!.reason).toBe('nightly backup');
    expect(eb.find((e) => e.kind === 'replication')!.reason).toBe('the active paused replication');
    expect(eb.filter((e) => e.kind === 'state').map((e) => e.from).at(-1)).toBe('paused');
  }, 120_000);

  it('a maintenance window: the active dies and nobody takes over until maintenance ends; then the passive does', async () => {
    const p = await servingPair();
    const [sa, sb] = [(await readEvents(url(p, 'alpha'))).lastSeq, (await readEvents(url(p, 'beta'))).lastSeq];
    const on = await tandem(['maintenance', 'on', '-c', p.node('alpha').config, '--reason', 'kernel upgrade'], 30_000);
    expect(on.code, on.stderr).toBe(0);
    expect(on.stdout).toContain('alpha: maintenance on');
    expect(on.stdout).toContain('beta: maintenance on');
    expect((await p.status('beta')).maintenance).toBe(true);
    // The active's application monitor stops: nothing restarts the application under the operator.
    await waitEvent(url(p, 'alpha'), 'the monitor stopped', (e) => e.kind === 'application' && e.to === 'stopped', 10_000, sa);

    await p.kill('alpha', 'SIGKILL');
    // Refused only once the failover would have happened: the alarm is the proof it was held.
    const held = await waitEvent(url(p, 'beta'), 'the failover held', (e) => e.kind === 'alarm' && e.to === 'raised' && e.details.code === 'TANDEM_ERR_FAILOVER_REFUSED', 30_000, sb);
    expect(held.reason).toContain('maintenance mode is on');
    const during = await p.status('beta');
    expect([during.role, during.failover.serving, during.maintenance]).toEqual(['passive', false, true]);

    // alpha is gone: off is set on beta only, and the command says so.
    const off = await tandem(['maintenance', 'off', '-c', p.node('beta').config], 30_000);
    expect(off.code).toBe(1);
    expect(off.stdout).toContain('beta: maintenance off');
    expect(off.stdout).toMatch(/alpha: NOT SET/);
    await waitEvent(url(p, 'beta'), 'the failover done', (e) => e.kind === 'failover' && e.details.phase === 'done', 30_000, sb);
    const events = await allEvents(url(p, 'beta'), sb);
    expectStory(events, [
      'maintenance off→on [operator]',
      'link:channel up→down [automatic]',
      'alarm:TANDEM_ERR_FAILOVER_REFUSED clear→raised [automatic]',
      'maintenance on→off [operator]',
      'failover:started alpha→beta [automatic]',
      'role passive→active [automatic]',
      'failover:done alpha→beta [automatic]',
    ]);
    expect(events.find((e) => e.kind === 'maintenance')!.reason).toBe('kernel upgrade');
    expect(events.filter((e) => e.kind === 'failover')).toHaveLength(2);
    expectNoOverlap(p);
  }, 120_000);

  it('tandem events prints the history (text and --json) and --follow prints new events as they come', async () => {
    const p = await servingPair();
    const config = p.node('alpha').config;
    const json = await tandem(['events', '-c', config, '--json'], 30_000);
    expect(json.code, json.stderr).toBe(0);
    const listed = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as TandemEvent);
    expect(listed).toEqual(await allEvents(url(p, 'alpha'), 0).then((all) => all.slice(0, listed.length)));
    expect(listed[0]).toMatchObject({ seq: 1, kind: 'agent', to: 'running' });
    const text = await tandem(['events', '-c', config, '--node', 'beta', '--since', '1'], 30_000);
    expect(text.stdout.split('\n')[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z {2}#2 {2}beta {2}/);

    const child = spawnTracked(process.execPath, [TANDEM_BIN, 'events', '-c', config, '--follow', '--since', String(listed.at(-1)!.seq)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const paused = await tandem(['pause', '-c', config, '--reason', 'followed'], 30_000);
    expect(paused.code, paused.stderr).toBe(0);
    await until('the followed pause', () => (/replication {2}running → paused {2}\[operator\] {2}followed/.test(out) ? true : undefined), 15_000);
    child.kill('SIGTERM');
  }, 120_000);
});
