// The whole flow under --root, as an operator (and the outside checks) run it: install primary
// and install secondary from its pack with docs/install.md's own example answers, both agents
// started from the written configs, in sync (verify: 0 differences), then uninstall both: each
// root's tree is as it was before (path, mode, content), protected data aside.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify as stringifyYaml } from 'yaml';
import { fetchStatus } from '../../../console/control-client.ts';
import { tandem } from '../../helpers/cli.ts';
import { docsExample, docsExampleDocument, freePorts, killInstalledAgent, snapshotTree, treeChanges } from '../../helpers/install.ts';
import { exited, killAll, spawnTracked, TEST_MARKER } from '../../helpers/processes.ts';
import { sleep, TANDEM_BIN } from '../../helpers/pair.ts';
import { AGENT_NODE_ARGS, agentEnv } from '../../../shared/agent-node-args.ts';

const dirs: string[] = [];
const roots: string[] = [];

afterEach(async () => {
  await killAll();
  for (const r of roots.splice(0)) {
    if (fs.existsSync(path.join(r, 'var/lib/tandem/install-manifest.json'))) await tandem(['uninstall', '--root', r, '--force'], 120_000);
    killInstalledAgent(r);
  }
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-install-'));
  fs.chmodSync(d, 0o755);
  dirs.push(d);
  return d;
}

/** Writes a tree of files under `dir` (created). */
function files(dir: string, entries: Record<string, string | Buffer>): void {
  for (const [rel, content] of Object.entries(entries)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), content);
  }
}

async function waitStatus(url: string, what: string, pred: (s: Awaited<ReturnType<typeof fetchStatus>>) => boolean, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    const s = await fetchStatus(url, 2000).catch(() => undefined);
    last = s?.replication;
    if (s !== undefined && pred(s)) return s;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}: ${JSON.stringify(last)}`);
}

describe('install under --root', () => {
  it('installs the docs example pair, runs it in sync, and uninstalls both without residues', async () => {
    const work = tmp();
    const [r1, r2] = [path.join(work, 'primary'), path.join(work, 'secondary')];
    roots.push(r1, r2);
    // The primary's root already has a system of its own, and data to protect.
    files(r1, { 'etc/hostname': 'alpha\n', 'srv/data/hello.txt': 'hello\n', 'srv/data/docs/a.bin': Buffer.alloc(300_000, 7) });
    fs.mkdirSync(path.join(r1, 'etc/systemd/system'), { recursive: true });
    files(r2, { 'etc/hostname': 'beta\n' });
    const before = [snapshotTree(r1), snapshotTree(r2)];
    fs.writeFileSync(path.join(work, 'primary.yaml'), docsExample('answers: primary'));
    fs.writeFileSync(path.join(work, 'secondary.yaml'), docsExample('answers: secondary'));
    const pack = path.join(work, 'pair.pack');

    const p = await tandem(['install', 'primary', '--root', r1, '--answers', path.join(work, 'primary.yaml'), '--pack', pack, '--no-start'], 120_000);
    expect(p.code, p.stderr + p.stdout).toBe(0);
    expect(p.stdout).toMatch(/warn {2}peer reachable on the channel: .*\n {8}fix: install beta: .*This install goes on without it/);
    const s = await tandem(['install', 'secondary', '--root', r2, '--from', pack, '--answers', path.join(work, 'secondary.yaml'), '--no-start'], 120_000);
    expect(s.code, s.stderr + s.stdout).toBe(0);

    // The stable places, and the modes that keep secrets and state private.
    for (const r of [r1, r2]) {
      const mode = (rel: string) => (fs.statSync(path.join(r, rel)).mode & 0o777).toString(8);
      expect(mode('etc/tandem/tandem.yaml')).toBe('644');
      expect(mode('etc/tandem/pair.key')).toBe('600');
      expect(mode('var/lib/tandem/state')).toBe('700');
      expect(mode('etc/tandem/scripts/start.sh')).toBe('755');
      expect(fs.readlinkSync(path.join(r, 'etc/systemd/system/multi-user.target.wants/tandem.service'))).toBe('/etc/systemd/system/tandem.service');
      const unit = path.join(r, 'etc/systemd/system/tandem.service');
      expect(fs.readFileSync(unit, 'utf8')).toContain(`agent -c ${path.join(r, 'etc/tandem/tandem.yaml')}`);
      expect(fs.readFileSync(unit, 'utf8')).toContain('\nEnvironment=GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864:glibc.malloc.arena_max=2\n');
      const verify = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
      expect(verify.status, verify.stderr).toBe(0);
      expect(verify.stderr.split('\n').filter((l) => l.includes('tandem.service'))).toEqual([]);
    }
    // Both nodes hold the same key; the pack is not the key.
    expect(fs.readFileSync(path.join(r1, 'etc/tandem/pair.key'), 'utf8')).toBe(fs.readFileSync(path.join(r2, 'etc/tandem/pair.key'), 'utf8'));
    expect(fs.readFileSync(pack, 'utf8')).not.toContain(fs.readFileSync(path.join(r1, 'etc/tandem/pair.key'), 'utf8').trim());

    // Both agents, started from the written configs as the unit would start them.
    const agents = [r1, r2].map((r) => spawnTracked(process.execPath, [`--title=${TEST_MARKER}`, ...AGENT_NODE_ARGS, TANDEM_BIN, 'agent', '-c', path.join(r, 'etc/tandem/tandem.yaml')], { stdio: 'ignore', env: agentEnv() }));
    const ex = docsExampleDocument('answers: primary');
    const url = (n: 'alpha' | 'beta') => `http://${ex.nodes[n].control}`;
    files(path.join(r1, 'srv/data'), { 'later/b.txt': 'written after the start\n' });
    await waitStatus(url('alpha'), 'alpha active, beta in sync', (st) => st.role === 'active' && st.peer.connected && st.replication.inSync && st.capture?.pendingPaths === 0);
    const v = await tandem(['verify', '-c', path.join(r2, 'etc/tandem/tandem.yaml'), '--json'], 120_000);
    expect(v.code, v.stderr).toBe(0);
    expect(JSON.parse(v.stdout).differences).toBe(0);
    expect(fs.readFileSync(path.join(r2, 'srv/data/later/b.txt'), 'utf8')).toBe('written after the start\n');
    // tandem check on the running secondary: every check ok (its clock measured against alpha's).
    const c = await tandem(['check', '--root', r2, '--json'], 60_000);
    expect(c.code, c.stdout).toBe(0);
    const checks = JSON.parse(c.stdout).checks as { id: string; level: string }[];
    expect(checks.filter((x) => x.level !== 'ok' && x.id !== 'user')).toEqual([]);

    // Uninstall: each stops its agent (the processes exit) and removes what the install created.
    for (const [i, r] of [r2, r1].entries()) {
      const u = await tandem(['uninstall', '--root', r], 120_000);
      expect(u.code, u.stderr + u.stdout).toBe(0);
      expect(u.stdout).toMatch(/Agent stopped/);
      expect(await Promise.race([exited(agents[1 - i]!), sleep(30_000).then(() => 'still running')])).not.toBe('still running');
    }
    expect(treeChanges(before[0]!, snapshotTree(r1), ['srv/data'])).toEqual([]);
    // The secondary's protected directory (and /srv above it) were created to receive the data.
    expect(treeChanges(before[1]!, snapshotTree(r2), ['srv'])).toEqual([]);
    expect(fs.readFileSync(path.join(r2, 'srv/data/hello.txt'), 'utf8')).toBe('hello\n');
    // A second uninstall finds nothing to remove.
    const again = await tandem(['uninstall', '--root', r1], 60_000);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/TANDEM_ERR_INSTALL_FAILED: .*no install manifest/);
  }, 300_000);

  it('starts both agents itself and shows the secondary\'s initial synchronisation until in sync', async () => {
    const work = tmp();
    const [r1, r2] = [path.join(work, 'a'), path.join(work, 'b')];
    roots.push(r1, r2);
    files(r1, Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`srv/www/f${i}.bin`, Buffer.alloc(512 * 1024, i)])));
    const [a1, a2, a3, b1, b2, b3] = await freePorts(6);
    const answers = {
      pair: 'web',
      node: 'alpha',
      nodes: {
        alpha: { channel: `127.0.0.1:${a1}`, control: `127.0.0.1:${a2}`, public: `127.0.0.1:${a3}` },
        beta: { channel: `127.0.0.1:${b1}`, control: `127.0.0.1:${b2}`, public: `127.0.0.1:${b3}` },
      },
      protect: ['/srv/www'],
      settings: { channel: { bandwidthLimit: '4MiB' } },
    };
    fs.writeFileSync(path.join(work, 'a.yaml'), stringifyYaml(answers));
    const pack = path.join(work, 'web.pack');
    const p = await tandem(['install', 'primary', '--root', r1, '--answers', path.join(work, 'a.yaml'), '--pack', pack], 120_000);
    expect(p.code, p.stderr + p.stdout).toBe(0);
    expect(p.stdout).toMatch(/Agent started \(process \d+/);
    // Started with the agent's allocator settings, as the unit starts it.
    const pid = fs.readFileSync(path.join(r1, 'run/tandem/agent.pid'), 'utf8').trim();
    // (glibc cuts the variable where it parsed it, in the process's own copy: each tunable is looked for alone.)
    const environ = fs.readFileSync(`/proc/${pid}/environ`, 'latin1');
    for (const t of agentEnv({}).GLIBC_TUNABLES!.split(':')) expect(environ).toContain(t);
    expect(environ).toContain('\0GLIBC_TUNABLES=glibc.malloc.');
    const code = /Pack code \(shown once; the pack opens only with it\): {2}([0-9A-Z-]{23})/.exec(p.stdout)?.[1];
    expect(code).toBeDefined();
    fs.writeFileSync(path.join(work, 'b.yaml'), stringifyYaml({ packCode: code }));
    const s = await tandem(['install', 'secondary', '--root', r2, '--from', pack, '--answers', path.join(work, 'b.yaml'), '--json'], 180_000);
    expect(s.code, s.stderr).toBe(0);
    // The progress lines: a bar with bytes and rate (4 MiB/s for 20 MiB: several seconds of them).
    expect(s.stderr).toMatch(/\[#*-*\] +\d+\.\d% +[\d.]+ [KMG]?i?B of [\d.]+ MiB +[\d.]+ [KMG]?i?B\/s +ETA/);
    expect(s.stderr).toMatch(/In sync with alpha after \d+\.\d s/);
    const out = JSON.parse(s.stdout);
    expect(out).toMatchObject({ ok: true, node: 'beta', role: 'secondary' });
    expect(out.syncMs).toBeGreaterThan(0);
    expect(snapshotTree(path.join(r2, 'srv/www'))).toEqual(snapshotTree(path.join(r1, 'srv/www')));
    for (const r of [r2, r1]) expect((await tandem(['uninstall', '--root', r], 120_000)).code).toBe(0);
    expect(fs.existsSync(path.join(r1, 'etc/tandem'))).toBe(false);
  }, 300_000);

  it('refuses to install over an installed node, changing nothing', async () => {
    const work = tmp();
    const r = path.join(work, 'r');
    roots.push(r);
    const [a1, a2, b1, b2] = await freePorts(4);
    const answers = { pair: 'p', node: 'alpha', nodes: { alpha: { channel: `127.0.0.1:${a1}`, control: `127.0.0.1:${a2}` }, beta: { channel: `127.0.0.1:${b1}`, control: `127.0.0.1:${b2}` } }, protect: ['/srv/data'] };
    fs.writeFileSync(path.join(work, 'a.yaml'), stringifyYaml(answers));
    expect((await tandem(['install', 'primary', '--root', r, '--answers', path.join(work, 'a.yaml'), '--pack', path.join(work, 'p1.pack'), '--no-start'])).code).toBe(0);
    const tree = snapshotTree(r);
    const again = await tandem(['install', 'primary', '--root', r, '--answers', path.join(work, 'a.yaml'), '--pack', path.join(work, 'p2.pack'), '--no-start']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/installed here already[\s\S]*hint: tandem uninstall --root/);
    expect(treeChanges(tree, snapshotTree(r))).toEqual([]);
    expect(fs.existsSync(path.join(work, 'p2.pack'))).toBe(false);
  }, 120_000);
});
