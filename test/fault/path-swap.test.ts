// A user who may write in a protected tree swaps one of its directories for a symbolic link to
// a root-only directory outside it, hoping the agent (root) reads or writes through the link
// (issue 8, item 2). On the active: not a byte of the outside file may reach the journal, the
// passive's receive log or the passive's tree. On the passive, during a batch: nothing may be
// written outside the root. Both are reported with TANDEM_ERR_PATH_SWAPPED and replication goes
// on. The attacker runs as `daemon` through setpriv; needs root, skipped otherwise.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { exited, killAll, spawnTracked } from '../helpers/processes.ts';
import { tandem } from '../helpers/cli.ts';
import { TestPair, until, type NodeName } from '../helpers/pair.ts';
import { digestTree, treeDiff } from '../helpers/tree-hash.ts';

const DAEMON = 1;

function problem(): string | undefined {
  if (process.getuid?.() !== 0) return 'the tests do not run as root';
  if (spawnSync('sh', ['-c', 'command -v setpriv']).status !== 0) return 'setpriv is not installed';
  return undefined;
}
const skip = problem();
if (skip !== undefined) console.warn(`skipping the path swap tests: ${skip}`);

let pair: TestPair | undefined;
const outsides: string[] = [];

afterEach(async () => {
  await killAll();
  await pair?.cleanup();
  pair = undefined;
  for (const d of outsides.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A root-only directory outside the pair holding `name`, whose bytes carry a random marker. */
function secretDir(p: TestPair, name: string, size: number): { dir: string; marker: Buffer } {
  const dir = `${p.dir}-secret-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
  outsides.push(dir);
  fs.mkdirSync(dir, { mode: 0o700 });
  const marker = Buffer.from(`SECRET-${crypto.randomBytes(16).toString('hex')}`);
  const content = Buffer.alloc(size);
  for (let off = 0; off < size; off += marker.length + 7) marker.copy(content, off);
  fs.writeFileSync(path.join(dir, name), content, { mode: 0o600 });
  return { dir, marker };
}

/** Paths of every regular file below `dir` (not following links). */
function filesBelow(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as fs.Dirent[])
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name));
}

function holding(files: string[], marker: Buffer): string[] {
  return files.filter((f) => fs.readFileSync(f).includes(marker));
}

/** Every directory from the pair's dir down to both data dirs traversable by the attacker. */
function traversable(p: TestPair): void {
  for (const n of ['alpha', 'beta'] as NodeName[]) {
    for (let d = p.data(n); d.startsWith(p.dir); d = path.dirname(d)) fs.chmodSync(d, 0o755);
  }
}

/** Runs a shell script as daemon in `cwd`; resolves with its exit code. */
async function asDaemon(cwd: string, script: string): Promise<number | null> {
  const child = spawnTracked('setpriv', [`--reuid=${DAEMON}`, `--regid=${DAEMON}`, '--clear-groups', 'sh', '-c', script], { cwd, stdio: 'ignore' });
  return exited(child);
}

const noFailover = (doc: Record<string, any>) => (doc.failover = { auto: false });

describe.skipIf(skip !== undefined)('a directory swapped for a link to the outside', () => {
  it('on the active: no byte of the outside file in the journal, the receive log or the passive tree; reported, and replication goes on', async () => {
    pair = await TestPair.create({ emptyData: true, config: noFailover });
    const p = pair;
    traversable(p);
    // The attacker owns home/ and what is in it, as a user owns a home directory.
    fs.mkdirSync(p.data('alpha', 'home/d'), { recursive: true });
    fs.chownSync(p.data('alpha', 'home'), DAEMON, DAEMON);
    fs.chownSync(p.data('alpha', 'home/d'), DAEMON, DAEMON);
    const secret = secretDir(p, 'big', 6 * 1024 * 1024);
    await p.startBoth();
    await p.waitIdentical();

    // A file large enough that capture waits for it to be quiet before reading it, then the
    // directory swapped under it: the read comes after the swap.
    const home = p.data('alpha', 'home');
    expect(await asDaemon(home, `head -c 6291456 /dev/urandom > d/big && mv d d.old && ln -s ${secret.dir} d`)).toBe(0);
    // And the quick race: files written into d while it is swapped back and forth.
    expect(await asDaemon(home, `i=0; while [ $i -lt 60 ]; do mv d.old d 2>/dev/null; echo $i > d/big; mv d d.old && ln -s ${secret.dir} d && sleep 0.005 && rm d; i=$((i+1)); done; ln -s ${secret.dir} d`)).toBe(0);
    const alpha = await p.waitFor('alpha', 'the swap reported', (s) => s.alarms.some((a) => a.code === 'TANDEM_ERR_PATH_SWAPPED'), 20_000);
    expect(alpha.alarms.find((a) => a.code === 'TANDEM_ERR_PATH_SWAPPED')?.message).toMatch(/home\/d\/.*: not read: "home\/d" is a symbolic link/);

    // Replication goes on: a new file arrives, and the trees end identical (d is a link there too, as data).
    fs.writeFileSync(p.data('alpha', 'after.txt'), 'still replicating');
    await p.waitIdentical();
    expect(fs.readlinkSync(p.data('beta', 'home/d'))).toBe(secret.dir);
    const places = [...filesBelow(path.join(p.node('alpha').stateDir, 'journal')), ...filesBelow(path.join(p.node('beta').stateDir, 'receive')), ...filesBelow(p.data('beta'))];
    expect(places.length).toBeGreaterThan(3);
    expect(holding(places, secret.marker)).toEqual([]);
  });

  it('on the passive, while a batch is applied: nothing written outside the root, reported, and replication goes on', { timeout: 150_000 }, async () => {
    pair = await TestPair.create({ emptyData: true, config: noFailover });
    const p = pair;
    traversable(p);
    fs.mkdirSync(p.data('alpha', 'home/d'), { recursive: true });
    fs.chownSync(p.data('alpha', 'home'), DAEMON, DAEMON);
    fs.chownSync(p.data('alpha', 'home/d'), DAEMON, DAEMON);
    const secret = secretDir(p, 'keep', 4096);
    fs.chmodSync(secret.dir, 0o755); // the attacker may point at it; only root may write in it
    await p.startBoth();
    await p.waitIdentical();

    // On the passive, the attacker swaps home/d for a link to the root-owned directory, back
    // and forth, while the active sends files for home/d, 100 every round: until the passive
    // reports that an apply met the link (a fixed 150 swaps and 600 files once ended with none
    // met in a full run under load). Then the attack stops.
    const stop = path.join(p.dir, 'attack.stop');
    const attack = asDaemon(p.data('beta', 'home'), `while [ ! -e ${stop} ]; do mv d d.x 2>/dev/null; ln -s ${secret.dir} d 2>/dev/null; sleep 0.002; rm -f d 2>/dev/null; mv d.x d 2>/dev/null; done`);
    const swapped = (s: { alarms: { code: string }[] } | undefined) => s?.alarms.some((a) => a.code === 'TANDEM_ERR_PATH_SWAPPED') === true;
    try {
      for (let round = 0; round < 60; round++) {
        for (let i = 0; i < 100; i++) fs.writeFileSync(p.data('alpha', `home/d/f${round}-${i}`), `file ${round}-${i} `.repeat(20));
        await new Promise((r) => setTimeout(r, 100));
        if (round >= 5 && swapped(await p.status('beta').catch(() => undefined))) break;
      }
    } finally {
      fs.writeFileSync(stop, '');
      await attack;
    }
    const beta = await p.waitFor('beta', 'the swap reported', swapped, 30_000);
    expect(beta.alarms.find((a) => a.code === 'TANDEM_ERR_PATH_SWAPPED')?.message).toMatch(/home\/d/);
    expect(fs.readdirSync(secret.dir)).toEqual(['keep']);
    expect(fs.readFileSync(path.join(secret.dir, 'keep')).includes(secret.marker)).toBe(true);

    // Replication went on: a file written now arrives; and verify --repair puts back what the
    // attacker moved aside.
    fs.writeFileSync(p.data('alpha', 'after.txt'), 'still replicating');
    await p.waitFor('beta', 'the file written after the attack', () => fs.existsSync(p.data('beta', 'after.txt')), 30_000);
    // What the attacker moved aside on the passive is a change made by hand there: reported as
    // such (the standby watch) until the repair, so "in sync" waits for it.
    await p.waitFor('beta', 'everything applied', (s) => s.replication.appliedSeq >= s.replication.headSeq && s.replication.queueBytes === 0, 30_000);
    const r = await tandem(['verify', '-c', p.node('alpha').config, '--repair', '--json'], 120_000);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    await p.waitFor('beta', 'the repair applied', (s) => s.replication.appliedSeq >= s.replication.headSeq && s.replication.queueBytes === 0, 30_000);
    // The data is the active's again. (The standby watch may keep a few of the paths the attack
    // raced reported after the repair: docs/security.md, "Known limits".)
    await until('identical trees', () => (treeDiff(digestTree(p.data('alpha')), digestTree(p.data('beta'))) === '' ? true : undefined), 40_000);
    expect(fs.readdirSync(secret.dir)).toEqual(['keep']);
  });
});
