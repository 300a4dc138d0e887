import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentStatus } from '../../../agent/control/index.ts';
import { killAll } from '../../helpers/processes.ts';
import { sleep, TestPair } from '../../helpers/pair.ts';

let pair: TestPair | undefined;

afterEach(async () => {
  await killAll();
  await pair?.cleanup();
  pair = undefined;
});

const MiB = 1024 * 1024;

function fill(file: string, size: number, seed: number): void {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) b.writeUInt32LE((Math.imul(i + 1, 2654435761) ^ seed) >>> 0, i);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, b);
}

describe('initial synchronisation', () => {
  it('sends only the blocks that differ to a passive that already holds most of the data', async () => {
    pair = await TestPair.create({ emptyData: true });
    const p = pair;
    for (let i = 0; i < 20; i++) {
      fill(p.data('alpha', `set/f${i}.bin`), MiB, i);
      fill(p.data('beta', `set/f${i}.bin`), MiB, i);
    }
    // Three files differ by one block each; the passive has two files the active lacks.
    for (const i of [3, 9, 15]) {
      const fd = fs.openSync(p.data('alpha', `set/f${i}.bin`), 'r+');
      fs.writeSync(fd, Buffer.alloc(100, 0xee), 0, 100, 5 * 65536 + 7);
      fs.closeSync(fd);
    }
    fill(p.data('beta', 'stale/old.bin'), 200_000, 99);
    fill(p.data('beta', 'set/extra.bin'), 10_000, 98);
    await p.startBoth();
    await p.waitIdentical();
    const alpha = await p.status('alpha');
    // 20 MiB are protected; three 64 KiB blocks differ. Hashes travel both ways, not data.
    expect(alpha.channel.bytesOut).toBeLessThan(600 * 1024);
    const started = p.logLines('alpha').find((l) => l.msg === 'sync: started');
    expect(started?.bytesTotal).toBe(3 * 65536);
    expect(p.logLines('beta').some((l) => l.msg === 'sync: manifest sent to the active' && l.rehashed === 22)).toBe(true);
  });

  it('reports progress (bytes done, bytes total, ETA) in status and the log while it runs', async () => {
    pair = await TestPair.create({ emptyData: true });
    const p = pair;
    for (let i = 0; i < 6; i++) fill(p.data('alpha', `big/f${i}.bin`), 32 * MiB, i);
    await p.start('alpha');
    await p.start('beta');
    const seen: NonNullable<AgentStatus['replication']['sync']>[] = [];
    const deadline = Date.now() + 60_000;
    for (;;) {
      const [a, b] = await Promise.all([p.status('alpha'), p.status('beta')]);
      for (const s of [a, b]) if (s.replication.sync !== null) seen.push(s.replication.sync);
      if (a.replication.inSync && b.replication.inSync) break;
      if (Date.now() > deadline) throw new Error('synchronisation did not finish');
      await sleep(20);
    }
    await p.waitIdentical();
    expect(seen.length).toBeGreaterThan(0);
    for (const s of seen) {
      expect(s.bytesTotal).toBe(192 * MiB);
      expect(s.bytesDone).toBeLessThanOrEqual(s.bytesTotal);
    }
    expect(seen.some((s) => s.bytesDone > 0 && s.etaMs !== null)).toBe(true);
    expect(p.logLines('alpha').some((l) => l.msg === 'sync: complete, passive in sync')).toBe(true);
  });

  it('synchronises a passive whose state was lost but whose files remain, sending only differences', async () => {
    pair = await TestPair.create({ emptyData: true });
    const p = pair;
    for (let i = 0; i < 10; i++) fill(p.data('alpha', `f${i}.bin`), 512 * 1024, i);
    await p.startBoth();
    await p.waitIdentical();
    await p.kill('beta', 'SIGTERM');
    fs.rmSync(p.node('beta').stateDir, { recursive: true });
    fs.writeFileSync(p.data('alpha', 'f0.bin'), 'changed while the passive was reinstalled');
    const before = (await p.status('alpha')).channel.bytesOut;
    await p.start('beta');
    await p.waitIdentical();
    expect((await p.status('alpha')).channel.bytesOut - before).toBeLessThan(200 * 1024);
  });
});
