// `tandem status` against two real agents: both nodes on one screen from either node's config,
// JSON whatever answers, and --watch printing again when the roles change (and not while
// nothing does).
import { afterEach, describe, expect, it } from 'vitest';
import { tandem } from '../../helpers/cli.ts';
import { killAll, spawnTracked, TEST_MARKER } from '../../helpers/processes.ts';
import { TANDEM_BIN, TestPair, until } from '../../helpers/pair.ts';

let pair: TestPair | undefined;

afterEach(async () => {
  await killAll();
  await pair?.cleanup();
  pair = undefined;
});

async function steadyPair(): Promise<TestPair> {
  const p = await TestPair.create();
  pair = p;
  await p.startBoth();
  await p.waitIdentical();
  await p.waitFor('alpha', 'active, serving, passive in sync', (s) => s.role === 'active' && s.failover.serving && s.failover.phase === 'steady' && s.replication.inSync);
  await p.waitFor('beta', 'passive, in sync, round-trip measured', (s) => s.role === 'passive' && s.replication.inSync && typeof s.links.heartbeat.rttMs === 'number');
  return p;
}

describe('tandem status (pair-wide)', () => {
  it('shows both nodes from either node\'s config, keeping the asked node\'s document at the top of --json', async () => {
    const p = await steadyPair();
    const r = await tandem(['status', '-c', p.node('beta').config, '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    // DESIGN.md's stable interface, for the node asked.
    expect(doc).toMatchObject({ node: 'beta', role: 'passive', peer: { connected: true, role: 'active' }, links: { channel: 'up' }, replication: { inSync: true } });
    expect(typeof doc.generation).toBe('string');
    expect(doc.nodes).toMatchObject([
      { name: 'beta', ok: true, status: { node: 'beta', role: 'passive' } },
      { name: 'alpha', ok: true, status: { node: 'alpha', role: 'active', failover: { serving: true } } },
    ]);
    for (const n of doc.nodes) {
      expect(n.status.links.heartbeat.rttMs).toBeGreaterThanOrEqual(0);
      expect(n.status.links.heartbeat.rttMs).toBeLessThan(1000);
    }

    const screen = await tandem(['status', '-c', p.node('alpha').config]);
    expect(screen.code).toBe(0);
    expect(screen.stdout).toContain('Pair demo: alpha active and serving; beta in sync');
    expect(screen.stdout).toMatch(/alpha\s+active\s+in-sync\s+yes\s+\d+\s+\d+\/\d+\s+\d+ ms\s+up\s+\d+(\.\d)? ms\s+/);
    expect(screen.stdout).toMatch(/beta\s+passive\s+in-sync\s+no\s+/);
  }, 120_000);

  it('prints JSON with the error per node when an agent is down, and exits 3 only when the asked one is', async () => {
    const p = await steadyPair();
    await p.kill('beta');

    const fromAlpha = await tandem(['status', '-c', p.node('alpha').config, '--json']);
    expect(fromAlpha.code).toBe(0);
    const a = JSON.parse(fromAlpha.stdout);
    expect(a).toMatchObject({ node: 'alpha', role: 'active' });
    expect(a.nodes).toMatchObject([{ name: 'alpha', ok: true }, { name: 'beta', ok: false, error: { code: 'TANDEM_ERR_CONTROL_UNREACHABLE', message: expect.stringContaining('ECONNREFUSED') } }]);

    const fromBeta = await tandem(['status', '-c', p.node('beta').config, '--json']);
    expect(fromBeta.code).toBe(3);
    const b = JSON.parse(fromBeta.stdout);
    expect(b).toMatchObject({ node: 'beta', pair: 'demo', error: { code: 'TANDEM_ERR_CONTROL_UNREACHABLE' } });
    expect(b.role).toBeUndefined();
    expect(b.nodes).toMatchObject([{ name: 'beta', ok: false }, { name: 'alpha', ok: true, status: { role: 'active' } }]);

    const screen = await tandem(['status', '-c', p.node('beta').config]);
    expect(screen.code).toBe(3);
    expect(screen.stdout).toContain('beta does not answer');
    expect(screen.stdout).toMatch(/alpha\s+active\s+/);

    // Even a config that cannot be read answers in JSON.
    const missing = await tandem(['status', '-c', `${p.dir}/nowhere.yaml`, '--json']);
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stdout)).toMatchObject({ error: { code: 'TANDEM_ERR_CONFIG_READ' } });
  }, 120_000);

  it('--watch prints again when the roles change, and not while nothing changes', async () => {
    const p = await steadyPair();
    const watch = spawnTracked(process.execPath, [`--title=${TEST_MARKER}`, TANDEM_BIN, 'status', '-c', p.node('alpha').config, '--watch', '--json', '--interval', '100ms'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    watch.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const docs = () => out.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, any>);
    await until('the first screen', () => (docs().length > 0 ? true : undefined), 20_000);
    expect(docs()[0]).toMatchObject({ node: 'alpha', role: 'active' });

    // A quiet pair: the watcher reads every 100 ms, and prints only what changed. Two seconds
    // is twenty reads; heartbeat ages and round-trips move at each, none of them is a change.
    const t0 = Date.now();
    await until('two seconds of a quiet pair', () => (Date.now() - t0 >= 2000 ? true : undefined), 5000);
    expect(docs().length).toBeLessThanOrEqual(3);

    const sw = await tandem(['switchover', '-c', p.node('alpha').config, '--timeout', '90s'], 120_000);
    expect(sw.code, sw.stderr).toBe(0);
    const after = await until(
      'a screen with beta active and serving',
      () => docs().find((d) => d.role === 'passive' && d.nodes?.[1]?.status?.role === 'active' && d.nodes[1].status.failover.serving === true),
      30_000,
    );
    expect(after.failover.lastRoleChange).toMatchObject({ from: 'active', to: 'passive' });
    expect(after.nodes[1].status.failover.lastRoleChange).toMatchObject({ from: 'passive', to: 'active', reason: expect.stringContaining('switchover') });
    watch.kill('SIGINT');

    // The screen names the change and its reason.
    const screen = await tandem(['status', '-c', p.node('alpha').config]);
    expect(screen.stdout).toContain('Pair demo: beta active and serving');
    expect(screen.stdout).toMatch(/alpha\s+active → passive at \d\d:\d\d:\d\d/);
    expect(screen.stdout).toMatch(/beta\s+passive → active at \d\d:\d\d:\d\d \(\d+ s ago\), epoch \d+: .*switchover/);
  }, 180_000);
});
