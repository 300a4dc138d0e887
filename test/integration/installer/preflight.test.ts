// Each failing preflight check, triggered for real on this machine, through the CLI: install
// stops with the check's FAIL line and its fix, and writes nothing.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify as stringifyYaml } from 'yaml';
import { tandem } from '../../helpers/cli.ts';
import { freePorts } from '../../helpers/install.ts';
import { exited, killAll, spawnTracked, TEST_MARKER } from '../../helpers/processes.ts';
import { PROJECT, TANDEM_BIN } from '../../helpers/pair.ts';

const dirs: string[] = [];
const cleanups: (() => void)[] = [];

afterEach(async () => {
  await killAll();
  for (const c of cleanups.splice(0).reverse()) c();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-preflight-'));
  fs.chmodSync(d, 0o755);
  dirs.push(d);
  return d;
}

interface Setup {
  work: string;
  root: string;
  answers: string;
  ports: number[];
}

/** A primary's answers under a new root; `edit` changes them before they are written. */
async function setup(edit: (a: Record<string, any>, s: { root: string; ports: number[] }) => void = () => {}): Promise<Setup> {
  const work = tmp();
  const root = path.join(work, 'root');
  fs.mkdirSync(path.join(root, 'srv/data'), { recursive: true });
  const ports = await freePorts(6);
  const a: Record<string, any> = {
    pair: 'p',
    node: 'alpha',
    nodes: {
      alpha: { channel: `127.0.0.1:${ports[0]}`, control: `127.0.0.1:${ports[1]}`, public: `127.0.0.1:${ports[2]}` },
      beta: { channel: `127.0.0.1:${ports[3]}`, control: `127.0.0.1:${ports[4]}`, public: `127.0.0.1:${ports[5]}` },
    },
    protect: ['/srv/data'],
  };
  edit(a, { root, ports });
  const answers = path.join(work, 'answers.yaml');
  fs.writeFileSync(answers, stringifyYaml(a));
  return { work, root, answers, ports };
}

const installArgs = (s: Setup) => ['install', 'primary', '--root', s.root, '--answers', s.answers, '--pack', path.join(s.work, 'p.pack'), '--no-start'];

/** install primary failed on exactly this check, printed its fix, and wrote nothing. */
function expectFailed(s: Setup, r: { code: number | null; stdout: string; stderr: string }, title: string, fix: RegExp): void {
  expect(r.code, r.stdout + r.stderr).toBe(1);
  const fails = r.stdout.split('\n').filter((l) => l.startsWith('  FAIL'));
  expect(fails.map((l) => l.slice(8, 8 + title.length))).toEqual([title]);
  const at = r.stdout.indexOf(`FAIL  ${title}`);
  expect(r.stdout.slice(at).split('\n')[1]).toMatch(new RegExp(`^ {8}fix: .*${fix.source}`));
  expect(r.stderr).toMatch(/TANDEM_ERR_PREFLIGHT_FAILED: tandem install primary: .* failed; nothing was written/);
  expect(fs.existsSync(path.join(s.root, 'etc/tandem'))).toBe(false);
  expect(fs.existsSync(path.join(s.root, 'var/lib/tandem'))).toBe(false);
  expect(fs.existsSync(path.join(s.work, 'p.pack'))).toBe(false);
}

/** The CLI in a private mount namespace after `mounts` (bind mounts that vanish with it). */
async function tandemWithMounts(mounts: [string, string][], args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = `${mounts.map(([from, to]) => `mount --bind '${from}' '${to}' || exit 97`).join(' && ')} && exec '${process.execPath}' --title=${TEST_MARKER} '${TANDEM_BIN}' "$@"`;
  const child = spawnTracked('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await exited(child);
  return { code, stdout, stderr };
}

describe('preflight checks that fail, for real', () => {
  it('protected directories: a file where a directory should be', async () => {
    const s = await setup((_, { root }) => {
      fs.rmSync(path.join(root, 'srv/data'), { recursive: true });
      fs.writeFileSync(path.join(root, 'srv/data'), 'not a directory');
    });
    expectFailed(s, await tandem(installArgs(s)), 'protected directories', /protect a directory: move \/tmp\/tandem-preflight-\w+\/root\/srv\/data away/);
  });

  it('protected directories: one its user cannot read (tandem check as nobody)', async () => {
    const s = await setup();
    expect((await tandem(installArgs(s))).code).toBe(0);
    fs.chmodSync(path.join(s.root, 'srv/data'), 0o700);
    // The same check as an unprivileged operator would run it.
    const run = spawnSync(process.execPath, [TANDEM_BIN, 'check', '-c', path.join(s.root, 'etc/tandem/tandem.yaml')], { uid: 65534, gid: 65534, encoding: 'utf8', cwd: '/', env: { ...process.env, HOME: '/tmp' } });
    expect(run.status, run.stderr).toBe(1);
    const dir = path.join(s.root, 'srv/data');
    expect(run.stdout).toContain(`FAIL  protected directories: ${dir} cannot be read (EACCES`);
    expect(run.stdout).toContain(`\n        fix: run as root, or fix its permissions: chmod u+rx ${dir}`);
  });

  it('free disk for the journal: a root on a 64 MiB file system', async () => {
    const s = await setup();
    const mnt = s.root;
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', `tandem-preflight-${process.pid}`, mnt]);
    expect(m.status, String(m.stderr)).toBe(0);
    cleanups.push(() => spawnSync('umount', ['-l', mnt]));
    fs.mkdirSync(path.join(mnt, 'srv/data'), { recursive: true });
    expectFailed(s, await tandem(installArgs(s)), 'free disk for the journal', /lower the bound: settings: \{ journal: \{ maxBytes: \d\dMiB, segmentBytes: \d+MiB \} \}/);
  });

  it('inotify watches: more directories than fs.inotify.max_user_watches', async () => {
    const s = await setup((_, { root }) => {
      for (let i = 0; i < 12; i++) fs.mkdirSync(path.join(root, `srv/data/d${i}`), { recursive: true });
    });
    const limit = path.join(s.work, 'max_user_watches');
    fs.writeFileSync(limit, '10\n');
    const r = await tandemWithMounts([[limit, '/proc/sys/fs/inotify/max_user_watches']], installArgs(s));
    expectFailed(s, r, 'inotify watches', /sysctl -w fs\.inotify\.max_user_watches=524288 && echo fs\.inotify\.max_user_watches=524288 > \/etc\/sysctl\.d\/90-tandem\.conf/);
    expect(r.stdout).toMatch(/the protected tree has more than 11 directories, one watch each, and fs\.inotify\.max_user_watches is 10/);
  });

  it('ports free: the channel port in use', async () => {
    const s = await setup();
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(s.ports[0], '127.0.0.1', () => r()));
    cleanups.push(() => holder.close());
    expectFailed(s, await tandem(installArgs(s)), 'ports free', new RegExp(`ss -ltnp 'sport = :${s.ports[0]}' shows what holds ${s.ports[0]}: stop it, or choose another port for nodes\\.alpha\\.channel`));
  });

  it('ports free: an address that is not this server\'s', async () => {
    const s = await setup((a) => {
      a.nodes.alpha.channel = '192.0.2.77:7700';
    });
    expectFailed(s, await tandem(installArgs(s)), 'ports free', /192\.0\.2\.77 is not an address of this server: nodes\.alpha\.channel must name one of its addresses/);
  });

  it('clock skew with the peer: the primary\'s agent answers two minutes ahead', async () => {
    const s = await setup((a) => {
      a.packCode = 'a clock test pack code';
    });
    expect((await tandem(installArgs(s))).code).toBe(0);
    // alpha's presence answered by a stand-in with alpha's key and a clock two minutes fast.
    const key = fs.readFileSync(path.join(s.root, 'etc/tandem/pair.key'), 'utf8').trim();
    const fake = spawnTracked(process.execPath, [path.join(PROJECT, 'bin/run-ts.mjs'), path.join(PROJECT, 'test/integration/installer/skewed-presence.ts'), 'p', 'alpha', String(s.ports[2]), '120000'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, TANDEM_TEST_PAIR_KEY: key } });
    await new Promise<void>((r) => fake.stdout!.once('data', () => r()));
    const r2 = path.join(s.work, 'secondary');
    fs.writeFileSync(path.join(s.work, 'b.yaml'), stringifyYaml({ packCode: 'a clock test pack code' }));
    const r = await tandem(['install', 'secondary', '--root', r2, '--from', path.join(s.work, 'p.pack'), '--answers', path.join(s.work, 'b.yaml'), '--no-start']);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/FAIL {2}clock skew with the peer: alpha's clock is ahead by 1[12]\d\.\d s[^\n]*\n {8}fix: run NTP on both servers \(timedatectl set-ntp true, or chrony\); the channel refuses a peer more than 300 s off/);
    expect(fs.existsSync(path.join(r2, 'etc/tandem'))).toBe(false);
  });

  it('programs the scripts need: arping missing for the virtual IP module', async () => {
    const s = await setup((a) => {
      a.modules = [{ module: 'vip', address: '192.0.2.10/24', interface: 'lo' }];
    });
    const arping = spawnSync('sh', ['-c', 'command -v arping'], { encoding: 'utf8' }).stdout.trim();
    expect(arping).not.toBe('');
    // /dev/null has no execute bit: arping "is not installed" inside the namespace.
    const r = await tandemWithMounts([['/dev/null', fs.realpathSync(arping)]], installArgs(s));
    expectFailed(s, r, 'programs the scripts need', /install them: apt-get install iputils-arping/);
    expect(r.stdout).toMatch(/arping \(for virtual IP 192\.0\.2\.10\/24 on lo\) is not installed/);
  });

  it('programs the scripts need: ping missing for a ping:// public check (the node could not tell it is isolated)', async () => {
    const s = await setup((a) => {
      a.publicTargets = ['ping://127.0.0.1'];
    });
    const ping = spawnSync('sh', ['-c', 'command -v ping'], { encoding: 'utf8' }).stdout.trim();
    // Where ping is installed, it is masked in a mount namespace; where it is not, so much the better.
    const r = ping === '' ? await tandem(installArgs(s)) : await tandemWithMounts([['/dev/null', fs.realpathSync(ping)]], installArgs(s));
    expectFailed(s, r, 'programs the scripts need', /install them: apt-get install iputils-ping/);
    expect(r.stdout).toMatch(/ping \(for public check ping:\/\/127\.0\.0\.1\) is not installed/);
  });

  it('application modules: a PostgreSQL data directory outside every protected directory', async () => {
    const s = await setup((a) => {
      a.modules = [{ module: 'postgresql', dataDir: '/var/lib/postgresql/15/main' }];
    });
    expectFailed(s, await tandem(installArgs(s)), 'application modules', /protect \/var\/lib\/postgresql\/15\/main \(or a directory above it\)/);
  });

  it('Node.js version: an older Node.js than 20.19', async () => {
    const s = await setup();
    // The process reports an older release than it is: the check reads process.version.
    const child = spawn(process.execPath, ['--import', 'data:text/javascript,Object.defineProperty(process,"version",{value:"v20.11.1"})', TANDEM_BIN, ...installArgs(s)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await exited(child);
    expectFailed(s, { code, stdout, stderr }, 'Node.js 20.19.0 or later', /install Node\.js 20\.19\.0 or a later 20\.x or 22\.x/);
    expect(stdout).toMatch(/this is Node\.js v20\.11\.1/);
  });
});
