// Split brain with two real agents: the channel and the active's presence are cut while the
// active still sees its own public network, so the passive takes over and both are active;
// each writes. When the links come back the older active steps down, and then the generation
// histories show that both changed since they split: replication holds and nothing is
// overwritten until `tandem resolve` (or, when one side changed nothing, the zero-changes
// policy) chooses.
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentStatus } from '../../../agent/control/index.ts';
import { tandem } from '../../helpers/cli.ts';
import { FailoverPair, TUNED } from '../../helpers/failover-pair.ts';
import { sleep, type NodeName } from '../../helpers/pair.ts';
import { digestTree, treeDiff } from '../../helpers/tree-hash.ts';

let current: FailoverPair | undefined;
afterEach(async () => {
  await current?.cleanup();
  current = undefined;
});

async function setUp(): Promise<FailoverPair> {
  current = await FailoverPair.create(TUNED);
  const fp = current;
  await fp.pair.startBoth();
  await fp.pair.waitFor('alpha', 'serving', (s) => s.role === 'active' && s.failover.serving);
  await fp.pair.waitFor('beta', 'passive and in sync', (s) => s.role === 'passive' && s.replication.inSync && s.peer.connected);
  return fp;
}

/** Writes files into a node's protected tree and waits until its agent journaled them. */
async function writeAndJournal(fp: FailoverPair, node: NodeName, files: Record<string, string>): Promise<void> {
  const before = (await fp.pair.status(node)).replication.headSeq;
  for (const [rel, text] of Object.entries(files)) fs.writeFileSync(fp.pair.data(node, rel), text);
  await fp.pair.waitFor(node, 'its writes journaled', (s) => s.replication.headSeq > before && s.capture?.pendingPaths === 0, 15_000);
}

/** Both nodes active while apart: the channel and alpha's presence cut, alpha's own checks fine. */
async function splitApart(fp: FailoverPair): Promise<void> {
  await fp.cutChannel(true);
  await fp.proxies.presAlpha.refuse();
  await fp.pair.waitFor('beta', 'active after the takeover', (s) => s.role === 'active' && !s.failover.pending, 20_000);
  const a = await fp.pair.status('alpha');
  expect(a.role).toBe('active');
}

async function reconnect(fp: FailoverPair): Promise<void> {
  await fp.proxies.presAlpha.pass();
  await fp.cutChannel(false);
}

const read = (fp: FailoverPair, n: NodeName, rel: string) => (fs.existsSync(fp.pair.data(n, rel)) ? fs.readFileSync(fp.pair.data(n, rel), 'utf8') : undefined);

describe('split brain', () => {
  it('both nodes active while apart and both write: replication holds, nothing is overwritten until tandem resolve keeps one side', async () => {
    const fp = await setUp();
    await writeAndJournal(fp, 'alpha', { 'shared.txt': 'before the split\n' });
    await fp.pair.waitFor('beta', 'has shared.txt', (s) => s.replication.inSync && read(fp, 'beta', 'shared.txt') === 'before the split\n');

    await splitApart(fp);
    await writeAndJournal(fp, 'alpha', { 'shared.txt': 'alpha wrote this while apart\n', 'alpha-only.txt': 'alpha\n' });
    await writeAndJournal(fp, 'beta', { 'shared.txt': 'beta wrote this while apart\n', 'beta-only.txt': 'beta\n' });
    const alphaTree = digestTree(fp.pair.data('alpha'));
    const betaTree = digestTree(fp.pair.data('beta'));

    await reconnect(fp);
    // The older active (alpha, epoch 1) steps down; beta's history and alpha's disagree.
    const b = await fp.pair.waitFor('beta', 'split brain', (s) => s.state === 'split-brain' && s.replication.splitBrain !== null, 20_000);
    const a = await fp.pair.waitFor('alpha', 'split brain', (s) => s.role === 'passive' && s.replication.splitBrain !== null, 10_000);
    expect(b.role).toBe('active');
    expect(b.replication.splitBrain).toMatchObject({ resolving: null });
    expect(b.replication.splitBrain!.activeChanges).toBeGreaterThan(0);
    expect(b.replication.splitBrain!.passiveChanges).toBeGreaterThan(0);
    expect(b.replication.start).toMatch(/^split brain/);
    expect(b.alarms.map((x) => x.code)).toContain('TANDEM_ERR_SPLIT_BRAIN');
    expect(a.alarms.map((x) => x.code)).toContain('TANDEM_ERR_SPLIT_BRAIN');
    // Held: a while later neither tree changed (alpha's are its own, beta's its own).
    await sleep(3_000);
    expect(treeDiff(alphaTree, digestTree(fp.pair.data('alpha')))).toBe('');
    expect(treeDiff(betaTree, digestTree(fp.pair.data('beta')))).toBe('');
    expect((await fp.pair.status('beta')).state).toBe('split-brain');

    // The operator keeps alpha (the passive now): roles swap without draining, beta is overwritten.
    const r = await tandem(['resolve', '--keep', 'alpha', '-c', fp.pair.node('beta').config, '--json', '--timeout', '60s'], 90_000);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, kept: 'alpha', discarded: 'beta' });
    const alpha = await fp.pair.waitFor('alpha', 'active and in sync', (s) => s.role === 'active' && s.replication.inSync && s.failover.serving, 30_000);
    expect(alpha.replication.splitBrain).toBeNull();
    await fp.pair.waitFor('beta', 'passive and in sync', (s) => s.role === 'passive' && s.replication.inSync, 30_000);
    expect(read(fp, 'beta', 'shared.txt')).toBe('alpha wrote this while apart\n');
    expect(read(fp, 'beta', 'alpha-only.txt')).toBe('alpha\n');
    expect(read(fp, 'beta', 'beta-only.txt')).toBeUndefined();
    expect(treeDiff(digestTree(fp.pair.data('alpha')), digestTree(fp.pair.data('beta')))).toBe('');
    expect(fp.overlaps()).toEqual([]);
  });

  it('keeping the active side overwrites the passive\'s changes; resolve refuses when there is no split brain', async () => {
    const fp = await setUp();
    const none = await tandem(['resolve', '--keep', 'alpha', '-c', fp.pair.node('alpha').config], 30_000);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/TANDEM_ERR_RESOLVE_REFUSED/);
    expect(none.stderr).toMatch(/reports no split brain/);

    await splitApart(fp);
    await writeAndJournal(fp, 'alpha', { 'alpha-only.txt': 'alpha\n' });
    await writeAndJournal(fp, 'beta', { 'beta-only.txt': 'beta\n' });
    await reconnect(fp);
    // The split brain as replication found it, with alpha stepped down to passive: before that,
    // beta's state says split-brain for the two actives alone, and alpha's step-down drops the
    // connection once more (beta is standalone meanwhile, and resolve would find nothing).
    await fp.pair.waitFor('beta', 'split brain', (s) => s.state === 'split-brain' && s.replication.splitBrain !== null, 20_000);
    await fp.pair.waitFor('alpha', 'split brain', (s) => s.role === 'passive' && s.replication.splitBrain !== null, 10_000);
    const r = await tandem(['resolve', '--keep', 'beta', '-c', fp.pair.node('alpha').config], 90_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/kept beta/);
    const b: AgentStatus = await fp.pair.waitFor('beta', 'in sync', (s) => s.role === 'active' && s.replication.inSync, 30_000);
    expect(b.replication.start).toMatch(/^synchronise/);
    expect(read(fp, 'alpha', 'alpha-only.txt')).toBeUndefined();
    expect(read(fp, 'alpha', 'beta-only.txt')).toBe('beta\n');
    expect(treeDiff(digestTree(fp.pair.data('beta')), digestTree(fp.pair.data('alpha')))).toBe('');
  });

  it('a side that changed nothing while apart loses nothing: the zero-changes policy keeps the other side by itself', async () => {
    const fp = await setUp();
    await splitApart(fp);
    // Only the old active writes; beta took over but nothing was written there.
    await writeAndJournal(fp, 'alpha', { 'written-while-apart.txt': 'keep me\n' });
    await reconnect(fp);
    // Beta (active, zero changes) hands the role back undrained and is caught up from alpha.
    const a = await fp.pair.waitFor('alpha', 'active again and in sync', (s) => s.role === 'active' && s.failover.serving && s.replication.inSync, 40_000);
    expect(a.failover.reason).not.toMatch(/operator/);
    await fp.pair.waitFor('beta', 'passive and in sync', (s) => s.role === 'passive' && s.replication.inSync, 30_000);
    expect(read(fp, 'beta', 'written-while-apart.txt')).toBe('keep me\n');
    expect(treeDiff(digestTree(fp.pair.data('alpha')), digestTree(fp.pair.data('beta')))).toBe('');
    const policyLine = fp.pair.logLines('beta').find((l) => /resolved by policy zero-changes/.test(String(l.msg)));
    expect(policyLine).toBeDefined();
  });
});
