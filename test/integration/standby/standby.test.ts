// Standby protection's watch, between two real agents: a change made by hand on the passive is
// reported on both nodes (and the pair is no longer in sync) until `tandem verify --repair`
// puts it back; the passive's own writes never are, even under a heavy mixed workload, while a
// hand-made change in the middle of that workload still is.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentStatus } from '../../../agent/control/index.ts';
import { tandem } from '../../helpers/cli.ts';
import { killAll } from '../../helpers/processes.ts';
import { sleep, TestPair, type NodeName } from '../../helpers/pair.ts';
import { digestTree, treeDiff } from '../../helpers/tree-hash.ts';
import { FailoverPair, TUNED } from '../../helpers/failover-pair.ts';
import { rng, Workload } from '../../helpers/workload.ts';

let pair: TestPair | undefined;
let failoverPair: FailoverPair | undefined;

afterEach(async () => {
  await killAll();
  await pair?.cleanup();
  await failoverPair?.cleanup();
  pair = undefined;
  failoverPair = undefined;
});

const MODIFIED = 'TANDEM_ERR_PASSIVE_MODIFIED';
/** Hand-made changes are seen through inotify: well under a second; generous for a busy machine. */
const REPORT_WITHIN_MS = 5_000;

function modifiedAlarm(s: AgentStatus): AgentStatus['alarms'][number] | undefined {
  return s.alarms.find((a) => a.code === MODIFIED);
}

/** Waits until `node` reports the alarm naming every path of `paths`; returns the status and the time it took. */
async function waitReported(p: TestPair, node: NodeName, paths: string[], from: number): Promise<{ status: AgentStatus; ms: number }> {
  const status = await p.waitFor(node, `alarm naming ${paths.join(', ')}`, (s) => {
    const a = modifiedAlarm(s);
    return a !== undefined && paths.every((x) => a.message.includes(x));
  });
  return { status, ms: Date.now() - from };
}

function fill(file: string, size: number, seed: number): void {
  const b = Buffer.alloc(size);
  for (let i = 0; i + 4 <= size; i += 4) b.writeUInt32LE((Math.imul(i + 1, 2654435761) ^ seed) >>> 0, i);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, b);
}

/** By hand: `n` bytes rewritten in place, then the mtime put back to the nanosecond: no stat shows it. */
function rewriteKeepingMtime(file: string, offset: number, n: number, fillByte: number): void {
  const before = fs.statSync(file, { bigint: true });
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.alloc(n, fillByte), 0, n, offset);
  fs.closeSync(fd);
  const ns = before.mtimeNs;
  execFileSync('touch', ['-m', '-d', `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`, file]);
  const after = fs.statSync(file, { bigint: true });
  expect([after.mtimeNs, after.size, after.ino]).toEqual([before.mtimeNs, before.size, before.ino]);
}

async function repairAndWaitClear(p: TestPair): Promise<void> {
  const r = await tandem(['verify', '-c', p.node('alpha').config, '--json', '--repair']);
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  for (const n of ['beta', 'alpha'] as const) {
    const s = await p.waitFor(n, 'the alarm cleared and in sync', (x) => modifiedAlarm(x) === undefined && x.replication.inSync, 20_000);
    expect(s.state).toBe('in-sync');
  }
  expect(treeDiff(digestTree(p.data('alpha')), digestTree(p.data('beta')))).toBe('');
}

describe('standby watch', () => {
  it('reports a file written by hand on the passive on both nodes, not in sync, until verify --repair puts it back; likewise a chmod, an unlink and a new file', async () => {
    const p = (pair = await TestPair.create({ emptyData: true }));
    fill(p.data('alpha', 'a.txt'), 5000, 1);
    fill(p.data('alpha', 'dir/b.bin'), 200 * 1024, 2);
    fill(p.data('alpha', 'c.txt'), 100, 3);
    await p.startBoth();
    await p.waitIdentical();
    expect(modifiedAlarm(await p.status('beta'))).toBeUndefined();
    // The active is past its start (it says "starting" until it has heard its peer, which may
    // come after the trees are identical on a busy machine): what follows is about the watch.
    await p.waitFor('alpha', 'in sync, its start over', (s) => s.state === 'in-sync');

    // A file written by hand on the passive.
    const t0 = Date.now();
    fs.appendFileSync(p.data('beta', 'a.txt'), 'written on the passive by hand\n');
    const seen = await waitReported(p, 'beta', ['data/a.txt written'], t0);
    process.stdout.write(`[standby] a hand-written file reported on the passive after ${seen.ms} ms\n`);
    expect(seen.ms).toBeLessThan(REPORT_WITHIN_MS);
    const b = seen.status;
    expect(b.replication.inSync).toBe(false);
    expect(b.state).toBe('degraded');
    const alarm = modifiedAlarm(b)!;
    expect(alarm.source).toBe('standby');
    expect(alarm.message).toMatch(/1 path \(data\/a\.txt written\)/);
    // What the operator risks if this node takes over now.
    expect(alarm.hint).toMatch(/tandem verify --repair/);
    expect(alarm.hint).toMatch(/takes over/);
    // The active's view of the pair says the same.
    const a = await p.waitFor('alpha', "the passive's alarm", (s) => modifiedAlarm(s) !== undefined);
    expect(a.replication.inSync).toBe(false);
    expect(a.state).toBe('degraded');
    expect(modifiedAlarm(a)!.source).toBe('peer');
    expect(Date.now() - t0).toBeLessThan(REPORT_WITHIN_MS);
    // A switchover onto it is refused, saying why (once alpha's start script is done: a role
    // change in progress is refused first).
    await p.waitFor('alpha', 'serving, no role change running', (s) => s.failover.phase === 'steady' && s.failover.serving);
    const sw = await tandem(['switchover', '-c', p.node('alpha').config]);
    expect(sw.code).toBe(1);
    expect(sw.stderr).toMatch(/TANDEM_ERR_SWITCHOVER_REFUSED.*changed by hand/);
    expect(sw.stderr).toMatch(/tandem verify --repair/);

    await repairAndWaitClear(p);

    // A chmod, an unlink and a new file, all by hand.
    const t1 = Date.now();
    fs.chmodSync(p.data('beta', 'dir/b.bin'), 0o600);
    fs.rmSync(p.data('beta', 'c.txt'));
    fs.writeFileSync(p.data('beta', 'dir/new.txt'), 'made on the passive\n');
    const three = await waitReported(p, 'beta', ['data/dir/b.bin mode changed', 'data/c.txt removed', 'data/dir/new.txt created'], t1);
    process.stdout.write(`[standby] a chmod, an unlink and a new file reported after ${three.ms} ms\n`);
    expect(three.ms).toBeLessThan(REPORT_WITHIN_MS);
    expect(modifiedAlarm(three.status)!.message).toMatch(/: 3 paths \(/);
    await p.waitFor('alpha', 'not in sync', (s) => !s.replication.inSync && modifiedAlarm(s) !== undefined);

    await repairAndWaitClear(p);
    expect(fs.existsSync(p.data('beta', 'dir/new.txt'))).toBe(false);
    expect(fs.statSync(p.data('beta', 'dir/b.bin')).mode & 0o777).toBe(fs.statSync(p.data('alpha', 'dir/b.bin')).mode & 0o777);
  }, 120_000);

  it('reports bytes rewritten in place with the mtime put back (no stat shows it), and keeps reporting it across a restart of the passive agent', async () => {
    const p = (pair = await TestPair.create({ emptyData: true, config: (doc) => (doc.failover = { auto: false }) }));
    fill(p.data('alpha', 'db.bin'), 256 * 1024, 4);
    await p.startBoth();
    await p.waitIdentical();
    rewriteKeepingMtime(p.data('beta', 'db.bin'), 100_000, 16, 0x55);
    const t0 = Date.now();
    const seen = await waitReported(p, 'beta', ['data/db.bin written'], t0);
    expect(seen.ms).toBeLessThan(REPORT_WITHIN_MS);

    // The change survives a restart of the passive agent: no stat shows it any more.
    await p.kill('beta', 'SIGTERM');
    await p.start('beta');
    const again = await p.waitFor('beta', 'connected again', (s) => s.peer.connected && s.replication.appliedSeq > 0);
    expect(modifiedAlarm(again)?.message).toMatch(/data\/db\.bin written/);
    expect(again.replication.inSync).toBe(false);

    await repairAndWaitClear(p);
  }, 120_000);

  it('raises no alarm while the active replicates a heavy mixed workload, and still reports the one file written by hand in the middle of it', async () => {
    const p = (pair = await TestPair.create({ emptyData: true, config: (doc) => (doc.failover = { auto: false }) }));
    await p.startBoth();
    await p.waitIdentical();
    const w = new Workload(p.data('alpha'), rng(8));
    const alarms: string[] = [];
    let polls = 0;
    let stop = false;
    const poller = (async () => {
      while (!stop) {
        const s = await p.status('beta').catch(() => undefined);
        if (s !== undefined) {
          polls++;
          const a = modifiedAlarm(s);
          if (a !== undefined) alarms.push(a.message);
        }
        await sleep(100);
      }
    })();
    // A large file written in 1 MiB pieces throughout, next to many small files created,
    // changed, renamed (a directory too) and deleted.
    const big = fs.openSync(p.data('alpha', 'big.bin'), 'w');
    let bigBytes = 0;
    const round = async (i: number) => {
      w.create(50, 20_000);
      w.modify(30);
      w.rename(10);
      w.remove(10);
      fs.writeSync(big, Buffer.alloc(512 * 1024, i & 0xff), 0, 512 * 1024, bigBytes);
      bigBytes += 512 * 1024;
      if (i % 10 === 5) w.renameDir(`d${i % 20}`, `moved-${i}`);
      await sleep(50);
    };
    const t0 = Date.now();
    let i = 0;
    try {
      for (; Date.now() - t0 < 12_000; i++) await round(i);
      expect(alarms, 'the applier\'s own writes were reported as changes by hand').toEqual([]);

      // In the middle of it, one file written by hand on the passive.
      fs.writeFileSync(p.data('beta', 'intruder.txt'), 'written by hand during replication\n');
      const t1 = Date.now();
      for (; Date.now() - t1 < 8_000; i++) await round(i);
    } finally {
      fs.closeSync(big);
      stop = true;
      await poller;
    }
    // Everything journaled is applied (the pair is not in sync: intruder.txt).
    await p.waitFor('alpha', 'everything applied', (x) => x.capture?.pendingPaths === 0 && x.replication.appliedSeq === x.replication.headSeq, 120_000);
    const s = await p.status('beta');
    process.stdout.write(`[standby] ${i} rounds, ${w.files.length} files, a big file of ${bigBytes >> 20} MiB, ${polls} status polls of the passive, none with another path\n`);
    // Exactly the one path, all along: nothing the applier wrote.
    expect(modifiedAlarm(s)?.message).toMatch(/: 1 path \(data\/intruder\.txt created\)$/);
    expect(new Set(alarms).size, alarms.join('\n')).toBe(1);
    expect(polls).toBeGreaterThan(10);
    await repairAndWaitClear(p);
  }, 240_000);

  it('after a failover, serves the changed copy as it is and replicates exactly that to the old active, even bytes no stat shows', async () => {
    const fp = (failoverPair = await FailoverPair.create(TUNED));
    const p = fp.pair;
    fill(p.data('alpha', 'db.bin'), 256 * 1024, 6);
    await p.startBoth();
    await fp.waitServedBy('alpha');
    await p.waitIdentical();
    // By hand on the passive: bytes rewritten in place, the mtime put back; and a new file.
    const file = p.data('beta', 'db.bin');
    rewriteKeepingMtime(file, 70_000, 32, 0x77);
    fs.writeFileSync(p.data('beta', 'only-here.txt'), 'made on the passive\n');
    await waitReported(p, 'beta', ['data/db.bin written', 'data/only-here.txt created'], Date.now());

    await p.kill('alpha', 'SIGKILL');
    await fp.waitServedBy('beta', 30_000);
    const served = fs.readFileSync(file);
    // The old active comes back as passive and receives what beta serves, bytes and all.
    await p.start('alpha');
    await p.waitFor('alpha', 'passive and in sync', (s) => s.role === 'passive' && s.replication.inSync, 60_000);
    await p.waitFor('beta', 'active, in sync, no alarm of the old passive', (s) => s.role === 'active' && s.replication.inSync && modifiedAlarm(s) === undefined, 60_000);
    expect(fs.readFileSync(p.data('alpha', 'db.bin')).equals(served)).toBe(true);
    expect(fs.readFileSync(p.data('alpha', 'only-here.txt'), 'utf8')).toBe('made on the passive\n');
    expect(treeDiff(digestTree(p.data('beta')), digestTree(p.data('alpha')))).toBe('');
  }, 180_000);
});
