// Tandem's own state is its user's alone: after a real run (replication, a switchover, a
// verify) every directory of both state directories is 0700 and every file 0600, and so are the
// logs; an install left with loose modes is tightened when its agent starts, with one log line,
// without following a symlink out of the state directory; and an agent refuses to start on
// scripts other users could change.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { killAll } from '../../helpers/processes.ts';
import { tandem } from '../../helpers/cli.ts';
import { TestPair, until, type NodeName } from '../../helpers/pair.ts';
import { digestTree, treeDiff } from '../../helpers/tree-hash.ts';

let pair: TestPair | undefined;

afterEach(async () => {
  await killAll();
  await pair?.cleanup();
  pair = undefined;
});

/** Every entry below `dir` (itself included) with its mode, symlinks not followed. */
function modesBelow(dir: string): { path: string; kind: 'dir' | 'file' | 'other'; mode: number }[] {
  const out: { path: string; kind: 'dir' | 'file' | 'other'; mode: number }[] = [];
  const visit = (p: string) => {
    const st = fs.lstatSync(p);
    const kind = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
    out.push({ path: p, kind, mode: st.mode & 0o7777 });
    if (st.isDirectory()) for (const n of fs.readdirSync(p)) visit(path.join(p, n));
  };
  visit(dir);
  return out;
}

function loose(p: TestPair, node: NodeName): string[] {
  const n = p.node(node);
  const entries = [...modesBelow(n.stateDir), ...modesBelow(n.logFile)];
  return entries.filter((e) => (e.kind === 'dir' ? e.mode !== 0o700 : e.kind === 'file' ? e.mode !== 0o600 : true)).map((e) => `${e.path} ${e.kind} ${e.mode.toString(8)}`);
}

describe('private state', () => {
  it('keeps every state directory 0700 and every state file and log 0600 through replication, a switchover and a verify', async () => {
    const p = await TestPair.create();
    pair = p;
    await p.startBoth();
    fs.mkdirSync(p.data('alpha', 'secret'), { recursive: true });
    fs.writeFileSync(p.data('alpha', 'secret/payroll.csv'), 'name,salary\n'.repeat(5000), { mode: 0o600 });
    fs.writeFileSync(p.data('alpha', 'big.bin'), Buffer.alloc(3 * 1024 * 1024, 7));
    await p.waitIdentical();
    const verify = await tandem(['verify', '-c', p.node('alpha').config, '--json']);
    expect(verify.code, verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout).differences).toBe(0);
    const sw = await tandem(['switchover', '-c', p.node('alpha').config], 120_000);
    expect(sw.code, sw.stderr).toBe(0);
    await p.waitFor('beta', 'active with its passive in sync', (s) => s.role === 'active' && s.replication.inSync && s.failover.serving);
    fs.writeFileSync(p.data('beta', 'after-switchover.txt'), 'written on beta\n');
    // beta is the active now (waitIdentical reads alpha as the active).
    await until(
      'alpha holds what beta wrote',
      async () => {
        const b = await p.status('beta');
        return b.replication.inSync && b.capture?.pendingPaths === 0 && treeDiff(digestTree(p.data('beta')), digestTree(p.data('alpha'))) === '' ? true : undefined;
      },
      40_000,
    );

    for (const node of ['alpha', 'beta'] as const) {
      const n = p.node(node);
      // What a run leaves: the journal or receive log segments, the manifest, the node state,
      // the lock, the verify record (on the node that was active then).
      const files = modesBelow(n.stateDir).filter((e) => e.kind === 'file').map((e) => path.relative(n.stateDir, e.path));
      expect(files.length, node).toBeGreaterThan(4);
      expect(loose(p, node), `${node}: ${files.join(' ')}`).toEqual([]);
    }
    expect(modesBelow(p.node('alpha').stateDir).some((e) => e.path.endsWith('verify.json'))).toBe(true);
    // The demo scripts' own log says who served when: private too.
    expect(fs.statSync(p.info.scriptsLog).mode & 0o777).toBe(0o600);
    // The replicated file keeps its own mode: the agent's private umask is not the copy's.
    expect(fs.statSync(p.data('beta', 'big.bin')).mode & 0o777).toBe(fs.statSync(p.data('alpha', 'big.bin')).mode & 0o777);
  }, 180_000);

  it('tightens an install left with loose modes when the agent starts, says so in one line, and follows no symlink out', async () => {
    const p = await TestPair.create();
    pair = p;
    await p.start('alpha');
    await p.waitFor('alpha', 'capture running', (s) => s.capture?.state === 'running');
    await p.kill('alpha', 'SIGTERM');
    const n = p.node('alpha');
    // What an older version (umask 022) left behind, and a link planted to an outside file.
    const outside = path.join(p.dir, 'outside.txt');
    fs.writeFileSync(outside, 'not tandem\'s\n');
    fs.chmodSync(outside, 0o644);
    for (const e of modesBelow(n.stateDir)) fs.chmodSync(e.path, e.kind === 'dir' ? 0o755 : 0o644);
    fs.chmodSync(n.logFile, 0o644);
    fs.symlinkSync(outside, path.join(n.stateDir, 'link-out'));
    const before = loose(p, 'alpha');
    expect(before.length).toBeGreaterThan(4);
    const linesBefore = p.logLines('alpha').length;

    await p.start('alpha');
    await p.waitFor('alpha', 'capture running', (s) => s.capture?.state === 'running');
    expect(loose(p, 'alpha').filter((l) => !l.includes('link-out'))).toEqual([]);
    expect(fs.statSync(outside).mode & 0o777).toBe(0o644);
    const lines = p.logLines('alpha').slice(linesBefore).filter((l) => String(l.msg).startsWith('state: tightened modes'));
    expect(lines).toHaveLength(1);
    // Every loose path but the link, and the log file itself, counted.
    expect(lines[0]!.fixed).toBe(before.filter((l) => !l.includes('link-out')).length);
    expect(lines[0]!.paths).toContain('. 755->700');
    expect(p.logLines('alpha').slice(linesBefore).some((l) => l.msg === 'state: left alone entries that are not plain files or directories' && (l.skipped as string[]).includes('link-out'))).toBe(true);
  });

  it('refuses to start on a script writable by its group, naming the key, and creates nothing', async () => {
    const p = await TestPair.create();
    pair = p;
    const n = p.node('alpha');
    fs.chmodSync(path.join(n.scriptsDir, 'check.sh'), 0o775);
    fs.rmSync(n.stateDir, { recursive: true });
    const run = await tandem(['agent', '-c', n.config], 30_000);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('TANDEM_ERR_CONFIG_INVALID');
    expect(run.stderr).toContain('"scripts.check"');
    expect(run.stderr).toContain('writable by its group');
    expect(fs.existsSync(n.stateDir)).toBe(false);
    // tandem config check says the same before anything is started.
    const check = await tandem(['config', 'check', n.config]);
    expect(check.code).toBe(1);
    expect(check.stdout).toContain('scripts.check: ');
    expect(check.stdout).toContain('writable by its group');
    expect(check.stdout).toContain('1 problem\n');
  });
});
