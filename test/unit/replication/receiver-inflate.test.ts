// The passive inflates compressed blocks in slices of its event loop: a batch of 64 MiB of text
// blocks is checked on arrival and inflated again to be applied, and all that time the loop
// keeps running timers (a heartbeat is one). The sender and the receiver are joined by the
// in-memory link (./helpers.ts); the applier records what it is given.
import { performance } from 'node:perf_hooks';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hash64, initHash } from '../../../shared/hash.ts';
import { compressWrite, decompressWrite, type DataRecord, type WriteRecord } from '../../../shared/protocol/index.ts';
import { removeTempDirs } from '../journal/helpers.ts';
import { replicationPair } from './helpers.ts';

beforeAll(initHash);
afterEach(removeTempDirs);

const BLOCK = 64 * 1024;
/** 64 MiB once inflated: the most a batch may hold. */
const BLOCKS = 1024;

/** Log-like text: what deflate shrinks about six times. */
function textBlock(): Buffer {
  const lines: string[] = [];
  let x = 7;
  let n = 0;
  while (n < BLOCK) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const line = `2026-11-23T08:${x % 60} INFO request id=${x.toString(16)} path=/api/v1/items/${x % 9973} status=${200 + (x % 5)} took=${x % 731}ms\n`;
    lines.push(line);
    n += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, BLOCK);
}

describe('receiver: compressed blocks', () => {
  it('checks and inflates a batch of compressed blocks while timers keep running, and applies them raw', async () => {
    const p = await replicationPair(4, 3, { journalSegmentBytes: 64 << 20 });
    const raw = textBlock();
    const block = compressWrite<WriteRecord>({ op: 'write', seq: 0, root: 'data', path: 'big.log', offset: 0, data: raw, hash: hash64(raw) }, 6);
    expect(block.encoding).toBe('deflate-raw');
    p.journal.append({ op: 'file', root: 'data', path: 'big.log', size: BLOCKS * BLOCK });
    for (let i = 0; i < BLOCKS; i++) p.journal.append({ ...block, offset: i * BLOCK });
    await p.journal.commit(true);
    // What the applier is given: every block raw, and the bytes its hash names.
    let rawBlocks = 0;
    let badBlocks = 0;
    const apply = p.applier.apply.bind(p.applier);
    p.applier.apply = async (records: DataRecord[], durable: (seq: number) => Promise<void>) => {
      for (const r of records) {
        if (r.op !== 'write') continue;
        if (r.encoding === undefined && r.data.length === BLOCK && hash64(r.data).equals(r.hash)) rawBlocks++;
        else badBlocks++;
      }
      return apply(records, durable);
    };

    // A timer every millisecond: how often it ran between the batch's arrival (it counts as
    // received before its blocks are checked) and its last record applied, and the longest the
    // loop went without running it meanwhile.
    let ticks = 0;
    let longestGapMs = 0;
    let last = performance.now();
    const ticker = setInterval(() => {
      const now = performance.now();
      if (p.receiver.status().receivedSeq > 0 && p.applier.applied.length < BLOCKS + 1) {
        ticks++;
        longestGapMs = Math.max(longestGapMs, now - last);
      }
      last = now;
    }, 1);
    p.connect();
    await p.until(() => p.sender.acked === BLOCKS + 1, 'the batch applied and acknowledged', 120_000);
    clearInterval(ticker);
    expect({ rawBlocks, badBlocks }).toEqual({ rawBlocks: BLOCKS, badBlocks: 0 });

    // For the record, side by side: inflating the same blocks in one go, as the check on arrival
    // did before (and the applier again, 16 MiB at a time): the timer waited that long then.
    const t0 = performance.now();
    for (let i = 0; i < BLOCKS; i++) decompressWrite({ ...block, offset: i * BLOCK });
    const oneInflateMs = performance.now() - t0;
    process.stdout.write(`[receiver-inflate] the timer ran ${ticks} times while the batch was checked and applied, after at most ${longestGapMs.toFixed(1)} ms; inflating the batch in one go takes ${oneInflateMs.toFixed(0)} ms\n`);
    // Inflating 64 MiB twice takes ~100 ms on a fast machine: in slices of 5 ms the timer runs a
    // dozen times or more; in one go it ran a few times at most, between the I/O steps.
    expect(ticks).toBeGreaterThanOrEqual(12);
    await p.close();
  });
});
