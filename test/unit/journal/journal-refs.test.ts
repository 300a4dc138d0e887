// Referenced blocks (docs/journal.md): a large file's writes journaled as where their bytes are.
// What is sent is always the write as captured, from memory or read back from the file and
// checked against its hash; what the disk holds is small; a file that no longer holds the bytes
// makes the batch unsendable (REF_LOST), never sent with other bytes.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Journal, ProtectedFiles, REF_LOST, Waiters, batchProblem, segmentName, type BatchInfo, type JournalOptions } from '../../../agent/journal/index.ts';
import { FakeClock } from '../../../shared/clock.ts';
import { TandemError } from '../../../shared/errors.ts';
import { hash64 } from '../../../shared/hash.ts';
import { silentLogger } from '../../../shared/log.ts';
import { encodeFrame, encodeFrameOf, parseFrames, parseStoredFrames, type WriteRecord } from '../../../shared/protocol/index.ts';
import { journalTestHooks, segmentFiles, tempDir } from './helpers.ts';

const open = journalTestHooks();

const BLOCK = 64 * 1024;
const BLOCKS = 32; // 2 MiB

interface Setup {
  jdir: string;
  root: string;
  file: string;
  content: Buffer;
  ino: number;
}

async function setup(): Promise<Setup> {
  const jdir = await tempDir();
  const root = await tempDir('tandem-refs-root-');
  const file = path.join(root, 'big.bin');
  const content = crypto.randomBytes(BLOCK * BLOCKS);
  fs.writeFileSync(file, content);
  return { jdir, root, file, content, ino: fs.statSync(file).ino };
}

async function openJournal(s: Setup, extra: Partial<JournalOptions> = {}): Promise<Journal> {
  const j = await Journal.open({
    dir: s.jdir,
    segmentBytes: 1 << 20,
    maxBytes: 1 << 30,
    generation: 'gen-1',
    log: silentLogger(),
    clock: new FakeClock(),
    refs: new ProtectedFiles([{ name: 'data', path: s.root }]),
    ...extra,
  });
  open.push(j);
  return j;
}

async function reopen(j: Journal, s: Setup): Promise<Journal> {
  open.splice(open.indexOf(j), 1);
  await j.close();
  return openJournal(s);
}

function writeOf(s: Setup, i: number): Omit<WriteRecord, 'seq'> {
  const data = s.content.subarray(i * BLOCK, (i + 1) * BLOCK);
  return { op: 'write', root: 'data', path: 'big.bin', offset: i * BLOCK, data, hash: hash64(data) };
}

/** The whole file journaled in one batch, every block with its reference. */
async function journalFile(j: Journal, s: Setup): Promise<BatchInfo> {
  for (let i = 0; i < BLOCKS; i++) j.append(writeOf(s, i), { ino: s.ino });
  return (await j.commit(false))!;
}

/** The batch as sent: plain log entries only, each write with exactly the bytes captured. */
function expectWireBatch(buf: Buffer, b: BatchInfo, s: Setup): void {
  expect(batchProblem(buf, b)).toBeUndefined();
  const writes = parseFrames(buf).frames.map((f) => f.entry).filter((e): e is WriteRecord => e.op === 'write');
  expect(writes.length).toBe(BLOCKS);
  for (const [i, w] of writes.entries()) {
    expect(w.offset).toBe(i * BLOCK);
    expect(Buffer.from(w.data).equals(s.content.subarray(i * BLOCK, (i + 1) * BLOCK))).toBe(true);
  }
}

const diskBytes = (dir: string): number => segmentFiles(dir).reduce((n, f) => n + f.size, 0);

async function lost(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return err instanceof TandemError ? err.code : String(err);
  }
}

describe('Journal: referenced blocks', () => {
  it('stores where a streaming passive\'s blocks are, sends them whole from memory, and reads them back from the file after a restart', async () => {
    const s = await setup();
    const j = await openJournal(s);
    j.setRefsWanted(true);
    const b = await journalFile(j, s);
    // On disk: a few hundred bytes per block, not 64 KiB.
    expect(diskBytes(s.jdir)).toBeLessThan(BLOCKS * 200);
    expect(b.length).toBeLessThan(BLOCKS * 200);
    expect(b.bytes).toBeGreaterThan(BLOCK * BLOCKS);
    expect(b.payloadBytes).toBe(BLOCK * BLOCKS);
    const stored = parseStoredFrames(fs.readFileSync(path.join(s.jdir, segmentFiles(s.jdir)[0]!.name))).frames.map((f) => f.entry.op);
    expect(stored.filter((op) => op === 'write-ref').length).toBe(BLOCKS);
    // What the passive is sent never holds a reference.
    const fromMemory = await j.readBatch(b);
    expectWireBatch(fromMemory, b, s);

    const again = await reopen(j, s);
    const b2 = again.batchStartingAt(b.first)!;
    expect(b2.bytes).toBeGreaterThanOrEqual(BLOCK * BLOCKS);
    const fromFile = await again.readBatch(b2);
    expectWireBatch(fromFile, b2, s);
    expect(fromFile.equals(fromMemory)).toBe(true);
  });

  it('journals every block whole while no passive streams', async () => {
    const s = await setup();
    const j = await openJournal(s);
    const b = await journalFile(j, s);
    expect(diskBytes(s.jdir)).toBeGreaterThan(BLOCK * BLOCKS);
    expect(b.bytes).toBe(b.length);
    const again = await reopen(j, s);
    fs.rmSync(s.file);
    // Whole blocks need no file.
    expectWireBatch(await again.readBatch(again.batchStartingAt(b.first)!), b, s);
  });

  it('never sends other bytes: a block rewritten, a file cut, replaced by another inode, or swapped for a link makes the batch unsendable', async () => {
    const cases: [string, (s: Setup) => void][] = [
      ['one block rewritten', (s) => {
        const fd = fs.openSync(s.file, 'r+');
        fs.writeSync(fd, Buffer.alloc(100, 7), 0, 100, 5 * BLOCK + 10);
        fs.closeSync(fd);
      }],
      ['cut short', (s) => fs.truncateSync(s.file, 3 * BLOCK)],
      ['removed', (s) => fs.rmSync(s.file)],
      ['another inode with the same bytes', (s) => {
        fs.writeFileSync(`${s.file}.new`, s.content);
        fs.renameSync(`${s.file}.new`, s.file);
      }],
      ['a link to the same file', (s) => {
        // Moved out of the root, into the journal's directory: a temporary one, removed after
        // the test like the root (a sibling of the root was left behind).
        const moved = path.join(s.jdir, 'moved.bin');
        fs.renameSync(s.file, moved);
        fs.symlinkSync(moved, s.file);
      }],
    ];
    for (const [what, change] of cases) {
      const s = await setup();
      const j = await openJournal(s);
      j.setRefsWanted(true);
      const b = await journalFile(j, s);
      change(s);
      // From memory the batch is still the bytes captured.
      expectWireBatch(await j.readBatch(b), b, s);
      const again = await reopen(j, s);
      expect(await lost(again.readBatch(again.batchStartingAt(b.first)!)), what).toBe(REF_LOST);
    }
  });

  it('reads a batch back from the file once it left the cache, without a restart', async () => {
    const s = await setup();
    const j = await openJournal(s, { cacheBytes: BLOCK * 8 }); // smaller than one batch: never cached
    j.setRefsWanted(true);
    const b = await journalFile(j, s);
    expectWireBatch(await j.readBatch(b), b, s);
  });

  it('gives the manifest\'s replay a referenced block by its length and hash, its file unread', async () => {
    const s = await setup();
    const j = await openJournal(s);
    j.setRefsWanted(true);
    const b = await journalFile(j, s);
    const again = await reopen(j, s);
    fs.rmSync(s.file);
    const records = await again.readRecords(again.batchStartingAt(b.first)!);
    expect(records.length).toBe(BLOCKS);
    for (const [i, r] of records.entries()) {
      expect(r).toMatchObject({ op: 'write', seq: b.first + i, offset: i * BLOCK, rawLength: BLOCK });
      if (r.op !== 'write') throw new Error('not a write');
      expect(Buffer.from(r.hash).equals(hash64(s.content.subarray(i * BLOCK, (i + 1) * BLOCK)))).toBe(true);
    }
  });

  it('holds a reader back to what the passive acknowledged, and lets it go when the passive does or goes', async () => {
    const s = await setup();
    const j = await openJournal(s);
    j.setRefsWanted(true);
    const b = await journalFile(j, s);
    expect(j.unackedBytes).toBe(b.bytes);
    let released = false;
    const wait = j.waitForAcks(BLOCK).then(() => {
      released = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(released).toBe(false);
    j.acknowledged(b.last);
    await wait;
    expect(j.unackedBytes).toBe(0);

    await journalFile(j, s);
    const wait2 = j.waitForAcks(BLOCK);
    j.setRefsWanted(false); // the passive went: capture reads on, and journals whole blocks
    await wait2;
    expect(j.refsStored).toBe(false);
  });

  it('takes a released waiter\'s abort listener off the signal', async () => {
    const w = new Waiters();
    const ac = new AbortController();
    for (let i = 0; i < 50; i++) {
      const p = w.wait(ac.signal);
      w.resolveAll();
      await p;
    }
    expect(getEventListeners(ac.signal, 'abort').length).toBe(0);
  });
});

describe('referenced writes on the wire', () => {
  it('are refused by the passive\'s parse, read only from the active\'s own journal', async () => {
    const s = await setup();
    const j = await openJournal(s);
    j.setRefsWanted(true);
    await journalFile(j, s);
    const seg = fs.readFileSync(path.join(s.jdir, segmentFiles(s.jdir)[0]!.name));
    expect(parseStoredFrames(seg).stop.kind).toBe('end');
    const wire = parseFrames(seg);
    expect(wire.stop).toMatchObject({ kind: 'malformed' });
    expect(wire.frames.length).toBe(0);
  });
});

describe('a journal whose references ask for more than a batch may carry', () => {
  it('is refused as damaged before a byte is read or allocated for them', async () => {
    const s = await setup();
    // Written by hand, as a damaged or forged segment would be: five references of 16 MiB each.
    const frames: Buffer[] = [];
    for (let i = 0; i < 5; i++) {
      frames.push(encodeFrameOf({ op: 'write-ref', seq: i + 1, root: 'data', path: 'big.bin', offset: i * 16 * 2 ** 20, length: 16 * 2 ** 20, hash: Buffer.alloc(8), ino: s.ino }));
    }
    frames.push(encodeFrame({ op: 'commit', first: 1, last: 5, consistent: false, ts: 1, generation: 'gen-1' }));
    fs.mkdirSync(s.jdir, { recursive: true });
    fs.writeFileSync(path.join(s.jdir, segmentName(1)), Buffer.concat(frames));
    let read = 0;
    const j = await openJournal(s, { refs: { open: () => ({ read: () => ((read += 1), false), close: () => undefined }) } });
    const b = j.batchStartingAt(1)!;
    expect(await lost(j.readBatch(b))).toBe('TANDEM_ERR_JOURNAL_CORRUPT');
    expect(read).toBe(0);
  });
});
