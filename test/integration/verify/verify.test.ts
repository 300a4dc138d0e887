// `tandem verify` against two real agents and real files: what it reports, what --repair
// resends (only the differing blocks), that replication in flight is no difference, and that a
// verification interrupted by the death of the active agent resumes at its cursor.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { exited, killAll, spawnTracked, TEST_MARKER } from '../../helpers/processes.ts';
import { tandem } from '../../helpers/cli.ts';
import { sleep, TANDEM_BIN, TestPair } from '../../helpers/pair.ts';
import { digestTree, treeDiff } from '../../helpers/tree-hash.ts';

let pair: TestPair | undefined;

afterEach(async () => {
  await killAll();
  await pair?.cleanup();
  pair = undefined;
});

const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 64 * KiB;

function fill(file: string, size: number, seed: number): void {
  const b = Buffer.alloc(size);
  for (let i = 0; i + 4 <= size; i += 4) b.writeUInt32LE((Math.imul(i + 1, 2654435761) ^ seed) >>> 0, i);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, b);
}

function expectIdentical(p: TestPair): void {
  expect(treeDiff(digestTree(p.data('alpha')), digestTree(p.data('beta')))).toBe('');
}

async function inSyncPair(opts: { rate?: string; noFailover?: boolean } = {}): Promise<TestPair> {
  pair = await TestPair.create({
    emptyData: true,
    config: (doc) => {
      doc.verify = { rate: opts.rate ?? '0' };
      if (opts.noFailover === true) doc.failover = { ...(doc.failover ?? {}), auto: false };
    },
  });
  return pair;
}

describe('tandem verify', () => {
  it('finds no difference on a pair in sync, and says so with exit code 0', async () => {
    const p = await inSyncPair();
    for (let i = 0; i < 5; i++) fill(p.data('alpha', `d${i % 2}/f${i}.bin`), 300 * KiB + i, i);
    fs.symlinkSync('d0/f0.bin', p.data('alpha', 'link'));
    await p.startBoth();
    await p.waitIdentical();
    const r = await tandem(['verify', '-c', p.node('beta').config, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.differences).toBe(0);
    expect(out.paths).toEqual([]);
    // Every path was compared: 2 directories, 5 files, 1 link.
    expect(out.pathsDone).toBe(8);
    expect(out.bytesDone).toBe(5 * 300 * KiB + 10);
    const human = await tandem(['verify', '-c', p.node('alpha').config]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/no differences/);
  });

  it('reports exactly a block corrupted and a file deleted on the passive behind its back; --repair resends only those', async () => {
    const p = await inSyncPair();
    fill(p.data('alpha', 'big.bin'), 4 * MiB, 1);
    fill(p.data('alpha', 'dir/small.txt'), 3000, 2);
    fill(p.data('alpha', 'dir/other.bin'), 200 * KiB, 3);
    await p.startBoth();
    await p.waitIdentical();
    // Behind Tandem's back: one block of big.bin changes, small.txt disappears.
    const fd = fs.openSync(p.data('beta', 'big.bin'), 'r+');
    fs.writeSync(fd, Buffer.alloc(100, 0xee), 0, 100, 3 * BLOCK + 17);
    fs.closeSync(fd);
    fs.rmSync(p.data('beta', 'dir/small.txt'));

    const r = await tandem(['verify', '-c', p.node('alpha').config, '--json']);
    expect(r.code, r.stderr).toBe(4);
    const out = JSON.parse(r.stdout);
    expect(out.differences).toBe(2);
    expect(out.paths).toEqual(['data/big.bin', 'data/dir/small.txt']);
    expect(out.details).toEqual([
      { path: 'data/big.bin', what: 'content', blocks: 1, repaired: false },
      { path: 'data/dir/small.txt', what: 'missing-on-passive', blocks: 1, repaired: false },
    ]);
    // Verify alone changed nothing.
    expect(fs.existsSync(p.data('beta', 'dir/small.txt'))).toBe(false);

    const before = (await p.status('alpha')).channel.bytesOut;
    const fixed = await tandem(['verify', '-c', p.node('beta').config, '--json', '--repair']);
    expect(fixed.code, fixed.stderr).toBe(0);
    const fo = JSON.parse(fixed.stdout);
    expect(fo.differences).toBe(2);
    expect(fo.repaired).toBe(2);
    // One block of big.bin and the 3000 bytes of small.txt: not the 4 MiB file.
    expect(fo.bytesRepaired).toBe(BLOCK + 3000);
    const sent = (await p.status('alpha')).channel.bytesOut - before;
    expect(sent).toBeLessThan(BLOCK + 3000 + 64 * KiB);
    expectIdentical(p);

    const again = await tandem(['verify', '-c', p.node('alpha').config, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).differences).toBe(0);
  });

  it('reports a file and a directory present only on the passive, and a mode that differs; --repair removes and fixes them', async () => {
    const p = await inSyncPair();
    fill(p.data('alpha', 'a.bin'), 10 * KiB, 1);
    await p.startBoth();
    await p.waitIdentical();
    fill(p.data('beta', 'extra.txt'), 10, 5);
    fill(p.data('beta', 'stale/x/y.bin'), 10, 6);
    fs.chmodSync(p.data('beta', 'a.bin'), 0o600);
    const r = await tandem(['verify', '-c', p.node('alpha').config, '--json']);
    expect(r.code, r.stderr).toBe(4);
    const out = JSON.parse(r.stdout);
    expect(out.details.map((d: { path: string; what: string }) => `${d.path} ${d.what}`)).toEqual(['data/a.bin mode', 'data/extra.txt only-on-passive', 'data/stale only-on-passive']);
    const fixed = await tandem(['verify', '-c', p.node('alpha').config, '--json', '--repair']);
    expect(fixed.code, fixed.stderr).toBe(0);
    expectIdentical(p);
    expect(fs.statSync(p.data('beta', 'a.bin')).mode & 0o777).toBe(fs.statSync(p.data('alpha', 'a.bin')).mode & 0o777);
  });

  it('reports no false difference while a writer keeps changing files', async () => {
    const p = await inSyncPair();
    for (let i = 0; i < 40; i++) fill(p.data('alpha', `w/f${i}.bin`), 128 * KiB, i);
    await p.startBoth();
    await p.waitIdentical();
    let stop = false;
    let writes = 0;
    const writer = (async () => {
      for (let n = 0; !stop; n++) {
        const i = n % 40;
        const fd = fs.openSync(p.data('alpha', `w/f${i}.bin`), 'r+');
        fs.writeSync(fd, Buffer.alloc(4096, n & 0xff), 0, 4096, (n * 4096) % (128 * KiB));
        fs.closeSync(fd);
        if (n % 7 === 0) fs.writeFileSync(p.data('alpha', `w/new${n % 5}.txt`), `write ${n}`);
        writes++;
        await sleep(10);
      }
    })();
    try {
      for (let k = 0; k < 2; k++) {
        const r = await tandem(['verify', '-c', p.node('alpha').config, '--json'], 100_000);
        expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
        expect(JSON.parse(r.stdout).differences).toBe(0);
      }
    } finally {
      stop = true;
      await writer;
    }
    expect(writes).toBeGreaterThan(50);
    await p.waitIdentical();
  }, 240_000);

  it('resumes at its cursor after the active agent is killed during a verification, and completes', async () => {
    // About 4 s at 16 MiB/s: long enough to be killed in the middle.
    const p = await inSyncPair({ rate: '16MiB', noFailover: true });
    for (let d = 0; d < 8; d++) for (let i = 0; i < 32; i++) fill(p.data('alpha', `t${d}/f${i}.bin`), 256 * KiB, d * 100 + i);
    await p.startBoth();
    await p.waitIdentical(60_000);
    const cli = spawnTracked(process.execPath, [`--title=${TEST_MARKER}`, TANDEM_BIN, 'verify', '-c', p.node('alpha').config, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    cli.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    cli.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const mid = await p.waitFor('alpha', 'verification half done', (s) => (s.verify?.pathsDone ?? 0) >= 150, 30_000);
    expect(mid.verify?.state).toBe('walking');
    await p.kill('alpha', 'SIGKILL');
    await p.start('alpha');
    const resumed = await p.waitFor('alpha', 'verification resumed', (s) => s.verify !== null && s.verify.resumedAt !== null, 20_000);
    // It did not start over: the paths done before the kill (at least the persisted cursor's) count.
    expect(resumed.verify!.resumedAt!).toBeGreaterThanOrEqual(60);
    const code = await exited(cli);
    await sleep(20);
    expect(code, stderr).toBe(0);
    const out = JSON.parse(stdout);
    expect(out.differences).toBe(0);
    expect(out.pathsDone).toBe(8 + 8 * 32);
    expect(stderr).toMatch(/does not answer/);
    const resumeLog = p.logLines('alpha').find((l) => l.msg === 'verify: resuming an interrupted verification at its cursor');
    expect(resumeLog?.pathsDone).toBeGreaterThanOrEqual(60);
    // The files read after the restart are fewer than all of them.
    const done = p.logLines('alpha').filter((l) => l.msg === 'verify: complete').pop();
    expect(done?.pathsDone).toBe(8 + 8 * 32);
  }, 120_000);
});
