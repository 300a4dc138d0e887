// replication.protectPassive with real agents and real mounts (the tests run as root): while
// passive, nobody writes into the protected root (an unprivileged user, and root through the
// root's path), replication still applies; a clean stop and a failover lift it (the failover
// before its start script runs); a SIGKILLed passive agent leaves its mounts and its next start
// lifts them before anything else. Mounts live under the pair's own temp directory (unique per
// run) and are lifted in afterEach whatever happened.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { mountsAt, parseMountInfo, type MountEntry } from '../../../agent/standby/mount-info.ts';
import { FailoverPair, TUNED } from '../../helpers/failover-pair.ts';
import { killAll } from '../../helpers/processes.ts';
import { TestPair, type NodeName } from '../../helpers/pair.ts';

let pair: TestPair | undefined;
let failoverPair: FailoverPair | undefined;

/** Lifts every mount left under `dir` (innermost first), so the directory can be removed. */
function liftMounts(dir: string): void {
  for (let i = 0; i < 16; i++) {
    const under = parseMountInfo(fs.readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) => m.mountPoint === dir || m.mountPoint.startsWith(`${dir}/`));
    if (under.length === 0) return;
    for (const m of under.reverse()) spawnSync('umount', ['-l', m.mountPoint], { stdio: 'ignore' });
  }
}

afterEach(async () => {
  await killAll();
  for (const p of [pair, failoverPair?.pair]) if (p !== undefined) liftMounts(p.dir);
  await pair?.cleanup();
  await failoverPair?.cleanup();
  pair = undefined;
  failoverPair = undefined;
});

const NOBODY = 65534;

function mounts(at: string): MountEntry[] {
  return mountsAt(parseMountInfo(fs.readFileSync('/proc/self/mountinfo', 'utf8')), fs.realpathSync(at));
}

/** Writes `file` as `uid` (65534: nobody) in a child process; 'ok' or the errno code. */
function writeAs(uid: number, file: string, flag = 'w'): string {
  const r = spawnSync(process.execPath, ['-e', "try { require('fs').writeFileSync(process.argv[1], 'x\\n', { flag: process.argv[2] }); console.log('ok') } catch (e) { console.log(e.code) }", file, flag], {
    uid,
    gid: uid,
    encoding: 'utf8',
  });
  return r.stdout.trim() || `exit ${r.status}: ${r.stderr}`;
}

function rwPath(p: TestPair, node: NodeName): string {
  return path.join(p.node(node).stateDir, 'standby/rw/data');
}

function setProtect(p: TestPair, node: NodeName, on: boolean): void {
  const file = p.node(node).config;
  const doc = parseYaml(fs.readFileSync(file, 'utf8')) as Record<string, any>;
  doc.replication = { ...(doc.replication ?? {}), protectPassive: on };
  fs.writeFileSync(file, stringifyYaml(doc));
}

/** A pair whose beta protects its roots, with a directory everyone may write on the active. */
async function protectedPair(): Promise<TestPair> {
  const p = (pair = await TestPair.create({ emptyData: true, config: (doc) => ((doc.replication = { protectPassive: true }), (doc.failover = { auto: false })) }));
  // Let an unprivileged user reach the roots: only the protection may stop it on the passive.
  fs.chmodSync(p.dir, 0o755);
  fs.mkdirSync(p.data('alpha', 'shared'));
  fs.chmodSync(p.data('alpha', 'shared'), 0o777);
  fs.writeFileSync(p.data('alpha', 'shared/a.txt'), 'from the active\n');
  fs.chmodSync(p.data('alpha', 'shared/a.txt'), 0o666);
  return p;
}

describe('replication.protectPassive', () => {
  it('stops an unprivileged user and root (through the root) from writing on the passive, while replication applies; a clean stop lifts it', async () => {
    const p = await protectedPair();
    await p.startBoth();
    await p.waitIdentical();
    // On the active the permissions let anyone write there.
    expect(writeAs(NOBODY, p.data('alpha', 'shared/by-nobody.txt'))).toBe('ok');
    await p.waitIdentical();

    const top = mounts(p.data('beta')).at(-1);
    expect(top?.options[0]).toBe('ro');
    expect(writeAs(NOBODY, p.data('beta', 'shared/new.txt'))).toBe('EROFS');
    expect(writeAs(NOBODY, p.data('beta', 'shared/a.txt'), 'a')).toBe('EROFS');
    expect(writeAs(0, p.data('beta', 'by-root.txt'))).toBe('EROFS');
    expect(() => fs.chmodSync(p.data('beta', 'shared/a.txt'), 0o600)).toThrow(/EROFS/);
    // The applier's read-write path is root's alone.
    expect(writeAs(NOBODY, path.join(rwPath(p, 'beta'), 'shared/new.txt'))).toBe('EACCES');

    // Replication still applies, and the passive is in sync with no alarm.
    fs.writeFileSync(p.data('alpha', 'shared/b.txt'), 'replicated through the private path\n');
    fs.rmSync(p.data('alpha', 'shared/a.txt'));
    await p.waitIdentical();
    const b = await p.waitFor('beta', 'in sync', (s) => s.state === 'in-sync');
    expect(b.alarms).toEqual([]);
    expect(fs.readFileSync(p.data('beta', 'shared/b.txt'), 'utf8')).toBe('replicated through the private path\n');

    // A clean stop lifts it: the same user may write there now (so the mount was what stopped it).
    await p.kill('beta', 'SIGTERM');
    expect(mounts(p.data('beta'))).toEqual([]);
    expect(mounts(rwPath(p, 'beta'))).toEqual([]);
    expect(writeAs(NOBODY, p.data('beta', 'shared/new.txt'))).toBe('ok');
  }, 120_000);

  it('a SIGKILLed passive agent leaves its mounts; its next start lifts them first (with protection on or off)', async () => {
    const p = await protectedPair();
    await p.startBoth();
    await p.waitIdentical();
    await p.kill('beta', 'SIGKILL');
    // What a kill leaves: the root still read-only.
    expect(mounts(p.data('beta')).map((m) => m.options[0])).toEqual(['ro']);
    expect(writeAs(0, p.data('beta', 'by-root.txt'))).toBe('EROFS');

    // Restarted: lifted, then protected again: one read-only mount, not two stacked.
    await p.start('beta');
    await p.waitFor('beta', 'in sync', (s) => s.state === 'in-sync');
    expect(mounts(p.data('beta')).map((m) => m.options[0])).toEqual(['ro']);
    expect(mounts(rwPath(p, 'beta')).map((m) => m.options[0])).toEqual(['rw']);
    fs.writeFileSync(p.data('alpha', 'after-restart.txt'), 'still replicated\n');
    await p.waitIdentical();

    // Killed again and restarted without protection: nothing of it stays.
    await p.kill('beta', 'SIGKILL');
    setProtect(p, 'beta', false);
    await p.start('beta');
    await p.waitFor('beta', 'in sync', (s) => s.state === 'in-sync');
    expect(mounts(p.data('beta'))).toEqual([]);
    expect(mounts(rwPath(p, 'beta'))).toEqual([]);
    expect(writeAs(NOBODY, p.data('beta', 'shared/new.txt'))).toBe('ok');
  }, 120_000);

  it('a failover lifts the protection before the start script runs', async () => {
    const fp = (failoverPair = await FailoverPair.create(TUNED, (doc) => (doc.replication = { protectPassive: true })));
    const betaData = fp.pair.data('beta');
    const probe = path.join(fp.pair.dir, 'start-probe');
    const start = path.join(fp.pair.node('beta').scriptsDir, 'start.sh');
    const [shebang, ...rest] = fs.readFileSync(start, 'utf8').split('\n');
    // The first thing beta's start script does: try to write into its protected root, as root.
    const check = `if touch '${betaData}/.start-probe' 2>/dev/null; then rm -f '${betaData}/.start-probe'; echo writable >> '${probe}'; else echo read-only >> '${probe}'; fi`;
    fs.writeFileSync(start, [shebang, check, ...rest].join('\n'));
    await fp.pair.startBoth();
    await fp.waitServedBy('alpha');
    await fp.pair.waitFor('beta', 'passive and in sync', (s) => s.role === 'passive' && s.replication.inSync);
    expect(mounts(betaData).map((m) => m.options[0])).toEqual(['ro']);
    expect(fs.existsSync(probe)).toBe(false);

    await fp.pair.kill('alpha', 'SIGKILL');
    await fp.waitServedBy('beta', 30_000);
    expect(fs.readFileSync(probe, 'utf8')).toBe('writable\n');
    expect(mounts(betaData)).toEqual([]);
    expect(mounts(rwPath(fp.pair, 'beta'))).toEqual([]);
    const b = await fp.pair.status('beta');
    expect(b.role).toBe('active');
    expect(fp.overlaps()).toEqual([]);
  }, 120_000);
});
