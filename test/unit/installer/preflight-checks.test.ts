// Every verdict of tandem check from plain facts: each failing check says what failed and how to
// fix it (test/integration/installer/preflight.test.ts triggers them on a real node).
import { describe, expect, it } from 'vitest';
import { evaluatePreflight, formatChecks, type CheckResult, type PreflightContext, type PreflightFacts } from '../../../installer/preflight-checks.ts';

const facts = (f: Partial<PreflightFacts> = {}): PreflightFacts => ({
  nodeVersion: 'v20.20.2',
  uid: 0,
  protectedDirs: [{ path: '/srv/data', state: 'ok', entries: 3 }],
  disk: { path: '/var/lib', freeBytes: 50 * 1024 ** 3 },
  inotify: { maxUserWatches: 100_000, dirs: 10, capped: false },
  ports: [{ key: 'nodes.alpha.channel', host: '10.0.0.1', port: 7700, state: 'free' }],
  peer: { name: 'beta', host: '10.0.0.2', port: 7700, state: 'open' },
  presence: { state: 'alive', skewMs: 20, rttMs: 2 },
  programs: [{ name: 'ip', found: true, neededBy: 'virtual IP' }],
  ...f,
});

const ctx = (c: Partial<PreflightContext> = {}): PreflightContext => ({ mode: 'installed', node: 'alpha', journalMaxBytes: 1024 ** 3, protectedSystemPaths: ['/srv/data'], modules: [], ...c });

function one(id: CheckResult['id'], f: Partial<PreflightFacts>, c: Partial<PreflightContext> = {}): CheckResult {
  return evaluatePreflight(facts(f), ctx(c)).find((r) => r.id === id)!;
}

describe('preflight verdicts', () => {
  it('are all ok on a good node, without fixes', () => {
    const all = evaluatePreflight(facts(), ctx());
    expect(all.map((r) => [r.id, r.level])).toEqual(['node', 'user', 'protect', 'disk', 'inotify', 'ports', 'peer', 'clock', 'programs', 'modules'].map((id) => [id, 'ok']));
    expect(all.filter((r) => r.fix !== undefined)).toEqual([]);
  });

  it('say how each protected directory would be captured: consistency points or file-level only; fail a snapshot setting the root cannot have', () => {
    expect(one('protect', { consistency: [{ mode: 'snapshot', reason: 'btrfs subvolume: read-only snapshots give consistency points' }] })).toMatchObject({ level: 'ok', detail: '/srv/data readable (3 entries), consistency points (btrfs subvolume)' });
    const file = one('protect', { consistency: [{ mode: 'file', reason: 'file-level consistency only: the root is on ext4, not btrfs' }] });
    expect(file).toMatchObject({ level: 'ok', detail: '/srv/data readable (3 entries), file-level consistency only: the root is on ext4, not btrfs' });
    const refused = one('protect', { consistency: [{ mode: 'file', reason: 'file-level consistency only: the root is on ext4, not btrfs', refused: 'the root is on ext4, not btrfs' }] });
    expect(refused.level).toBe('fail');
    expect(refused.fix).toMatch(/consistency: snapshot but the root is on ext4, not btrfs: make it a btrfs subvolume/);
  });

  it('fail an old Node.js, with the version to install', () => {
    const r = one('node', { nodeVersion: 'v18.19.0' });
    expect(r).toMatchObject({ level: 'fail', detail: 'this is Node.js v18.19.0' });
    expect(r.fix).toMatch(/install Node\.js 20\.19\.0/);
    expect(one('node', { nodeVersion: 'v20.18.9' }).level).toBe('fail');
    expect(one('node', { nodeVersion: 'v22.1.0' }).level).toBe('ok');
  });

  it('warn when not root', () => {
    expect(one('user', { uid: 1000 })).toMatchObject({ level: 'warn', fix: expect.stringMatching(/as root/) });
  });

  it('judge protected directories by mode: missing, not a directory, unreadable, not empty on a secondary', () => {
    expect(one('protect', { protectedDirs: [{ path: '/r/srv/data', state: 'not-dir' }] })).toMatchObject({ level: 'fail', fix: expect.stringMatching(/protect a directory: move \/r\/srv\/data away/) });
    expect(one('protect', { protectedDirs: [{ path: '/r/srv/data', state: 'unreadable', error: 'EACCES' }] })).toMatchObject({ level: 'fail', fix: expect.stringMatching(/chmod u\+rx \/r\/srv\/data/) });
    expect(one('protect', { protectedDirs: [{ path: '/r/srv/data', state: 'missing' }] })).toMatchObject({ level: 'fail', fix: expect.stringMatching(/create or mount \/r\/srv\/data/) });
    expect(one('protect', { protectedDirs: [{ path: '/r/srv/data', state: 'missing' }] }, { mode: 'primary' })).toMatchObject({ level: 'warn', detail: expect.stringMatching(/created empty/) });
    expect(one('protect', { protectedDirs: [{ path: '/r/srv/data', state: 'missing' }] }, { mode: 'secondary' }).level).toBe('ok');
    expect(one('protect', { protectedDirs: [{ path: '/r/srv/data', state: 'ok', entries: 4 }] }, { mode: 'secondary' })).toMatchObject({ level: 'warn', detail: expect.stringMatching(/replaces them/) });
  });

  it('fail too little disk for the journal bound, and say how much to free or how to lower it', () => {
    const r = one('disk', { disk: { path: '/var/lib', freeBytes: 512 * 1024 ** 2 } });
    expect(r.level).toBe('fail');
    expect(r.fix).toMatch(/journal: \{ maxBytes: 256MiB \}/);
    expect(one('disk', { disk: { path: '/var/lib', freeBytes: 1.1 * 1024 ** 3 } }).level).toBe('warn');
    // Below two default segments, the segments shrink too (the config needs maxBytes ≥ 2 segments).
    expect(one('disk', { disk: { path: '/var/lib', freeBytes: 100 * 1024 ** 2 } }).fix).toMatch(/journal: \{ maxBytes: 50MiB, segmentBytes: 12MiB \}/);
  });

  it('fail more directories than inotify watches, with the exact sysctl', () => {
    const r = one('inotify', { inotify: { maxUserWatches: 8192, dirs: 8193, capped: true } });
    expect(r.level).toBe('fail');
    expect(r.fix).toBe('sysctl -w fs.inotify.max_user_watches=524288 && echo fs.inotify.max_user_watches=524288 > /etc/sysctl.d/90-tandem.conf');
    expect(one('inotify', { inotify: { maxUserWatches: 1_000_000, dirs: 600_000, capped: false } })).toMatchObject({ level: 'warn', fix: expect.stringMatching(/max_user_watches=2097152/) });
  });

  it('fail a port in use or an address not of this server, naming the key', () => {
    const inUse = one('ports', { ports: [{ key: 'nodes.alpha.channel', host: '10.0.0.1', port: 7700, state: 'in-use' }] });
    expect(inUse).toMatchObject({ level: 'fail', detail: '10.0.0.1:7700 (nodes.alpha.channel) is in use' });
    expect(inUse.fix).toMatch(/ss -ltnp 'sport = :7700'.*nodes\.alpha\.channel/);
    expect(one('ports', { ports: [{ key: 'nodes.alpha.channel', host: '192.0.2.99', port: 7700, state: 'not-local' }] }).fix).toMatch(/192\.0\.2\.99 is not an address of this server/);
    expect(one('ports', { ports: [{ key: 'nodes.alpha.channel', host: '10.0.0.1', port: 7700, state: 'ours' }] }).level).toBe('ok');
  });

  it('warn an unreachable peer, and tell the primary that the install goes on', () => {
    const r = one('peer', { peer: { name: 'beta', host: '10.0.0.2', port: 7700, state: 'refused' } }, { mode: 'primary', peerInstallHint: 'run: tandem install secondary --from x.pack' });
    expect(r.level).toBe('warn');
    expect(r.fix).toMatch(/install beta: run: tandem install secondary --from x\.pack\. This install goes on without it/);
    expect(r.fix).toMatch(/TCP 7700 open both ways/);
  });

  it('fail a clock far off, warn a clock a little off, warn what cannot be measured', () => {
    const far = one('clock', { presence: { state: 'alive', skewMs: -120_000, rttMs: 3 } });
    expect(far).toMatchObject({ level: 'fail', detail: expect.stringMatching(/behind by 120\.0 s/) });
    expect(far.fix).toMatch(/timedatectl set-ntp true/);
    expect(one('clock', { presence: { state: 'alive', skewMs: 2_500, rttMs: 3 } }).level).toBe('warn');
    expect(one('clock', { presence: { state: 'dead', error: 'refused' } }).level).toBe('warn');
    expect(one('clock', { presence: { state: 'unconfigured' } })).toMatchObject({ level: 'warn', fix: expect.stringMatching(/nodes\.NODE\.public/) });
    expect(one('clock', { presence: { state: 'invalid', error: 'bad proof' } }).level).toBe('fail');
  });

  it('fail a missing program, with the Debian package to install', () => {
    const r = one('programs', { programs: [{ name: 'arping', found: false, neededBy: 'virtual IP 192.0.2.10/24' }] });
    expect(r).toMatchObject({ level: 'fail', fix: 'install them: apt-get install iputils-arping' });
  });

  it('fail a PostgreSQL data directory outside the protected directories', () => {
    const r = one('modules', {}, { modules: [{ module: 'postgresql', dataDir: '/var/lib/postgresql/15/main', user: 'postgres', startTimeout: 120 }] });
    expect(r.level).toBe('fail');
    expect(r.fix).toMatch(/protect \/var\/lib\/postgresql\/15\/main/);
    expect(one('modules', {}, { modules: [{ module: 'postgresql', dataDir: '/srv/data/pg', user: 'postgres', startTimeout: 120 }] }).level).toBe('ok');
  });

  it('print each fix under its warn or fail', () => {
    const text = formatChecks(evaluatePreflight(facts({ uid: 1000 }), ctx()));
    expect(text).toMatch(/ {2}warn {2}running as root: .*\n {8}fix: run tandem install/);
  });
});
