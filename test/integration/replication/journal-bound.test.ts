import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { killAll } from '../../helpers/processes.ts';
import { sleep, TestPair } from '../../helpers/pair.ts';

let pair: TestPair | undefined;

afterEach(async () => {
  await killAll();
  await pair?.cleanup();
  pair = undefined;
});

/** A journal far smaller than what is written, so capture must wait for room many times. */
const smallJournal = (doc: Record<string, any>) => {
  doc.journal = { ...(doc.journal ?? {}), maxBytes: '8MiB', segmentBytes: '2MiB', batchBytes: '1MiB' };
  doc.channel = { ...(doc.channel ?? {}), windowBytes: '4MiB', maxFrameBytes: '2MiB' };
};

function randomFile(file: string, bytes: number, seed: number): void {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i += 4) b.writeUInt32LE((Math.imul(i + 7, 2654435761) ^ seed) >>> 0, i);
  fs.writeFileSync(file, b);
}

describe('a journal smaller than the data', () => {
  it('replicates a file eight times the journal bound, waiting for room without ever jamming', async () => {
    // Compressed blocks are journaled whole (only raw ones may be references): the journal fills.
    pair = await TestPair.create({ emptyData: true, config: (doc) => {
      smallJournal(doc);
      doc.channel.compression = 1;
    } });
    await pair.startBoth();
    await pair.waitIdentical();
    randomFile(pair.data('alpha', 'big.bin'), 64 * 1024 * 1024, 1);
    randomFile(pair.data('alpha', 'second.bin'), 20 * 1024 * 1024, 2);
    await pair.waitIdentical(90_000);
    expect(pair.logLines('alpha').some((l) => l.msg === 'capture: journal full, waiting for the passive to acknowledge')).toBe(true);
  }, 120_000);

  it('keeps a streamed large file\'s blocks as references: the journal stays far under its bound, and capture waits for acknowledgements instead', async () => {
    pair = await TestPair.create({ emptyData: true, config: smallJournal });
    await pair.startBoth();
    await pair.waitIdentical();
    const journalDir = path.join(pair.node('alpha').stateDir, 'journal');
    const onDisk = () => fs.readdirSync(journalDir).reduce((n, f) => n + fs.statSync(path.join(journalDir, f)).size, 0);
    let peak = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, onDisk());
    }, 5);
    try {
      randomFile(pair.data('alpha', 'big.bin'), 64 * 1024 * 1024, 1);
      randomFile(pair.data('alpha', 'second.bin'), 20 * 1024 * 1024, 2);
      await pair.waitIdentical(90_000);
    } finally {
      clearInterval(sampler);
    }
    // 84 MiB through a journal of 8 MiB that never filled: ~150 bytes on disk per 64 KiB block.
    expect(peak).toBeLessThan(2 * 1024 * 1024);
    expect(pair.logLines('alpha').some((l) => l.msg === 'capture: journal full, waiting for the passive to acknowledge')).toBe(false);
  }, 120_000);

  it('holds back capture while the passive is away with a full journal, and catches up when it returns', async () => {
    pair = await TestPair.create({ emptyData: true, config: smallJournal });
    await pair.startBoth();
    await pair.waitIdentical();
    await pair.kill('beta', 'SIGTERM');
    for (let i = 0; i < 6; i++) randomFile(pair.data('alpha', `f${i}.bin`), 3 * 1024 * 1024, i);
    await pair.waitFor('alpha', 'capture waiting for room', (s) => s.capture?.waitingForSpace === true);
    // Still waiting a while later: nothing is dropped to make room.
    await sleep(300);
    expect((await pair.status('alpha')).capture?.waitingForSpace).toBe(true);
    await pair.start('beta');
    await pair.waitIdentical(90_000);
  }, 120_000);
});
