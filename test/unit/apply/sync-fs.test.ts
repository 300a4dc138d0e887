// SyncFile's writes behind: handed to the thread pool, the call returns before the bytes are in
// the file; the file's later calls wait for them, in order, and fail with the first failure;
// the descriptor is closed only once they are over.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { syncFs, skipBytes } from '../../../agent/apply/sync-fs.ts';
import { randomBytes } from 'node:crypto';
import { tmpDir } from './helpers.ts';

let dir: string;
let file: string;

beforeEach(() => {
  dir = tmpDir('tandem-sync-fs-');
  file = path.join(dir, 'f');
  fs.writeFileSync(file, Buffer.alloc(4096, 0x61));
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const keep = (err: unknown) => err as Error;

describe('SyncFile writes behind', () => {
  it('returns before the bytes are in the file; stat waits for them', async () => {
    const fh = await syncFs.open(file, fs.constants.O_WRONLY);
    const data = randomBytes(256 << 10);
    fh.writeBehind([data.subarray(0, 100_000), data.subarray(100_000)], 4096, keep);
    expect(fh.behind).toBe(true);
    // Nothing of it yet: the write waits for the thread pool (after this turn of the loop).
    expect(fs.statSync(file).size).toBe(4096);
    expect((await fh.stat()).size).toBe(4096 + data.length);
    expect(fh.behind).toBe(false);
    await fh.close();
    expect(fs.readFileSync(file).subarray(4096).equals(data)).toBe(true);
  });

  it('keeps the order of a file\'s calls: later writes win, and the times set behind them stay', async () => {
    const fh = await syncFs.open(file, fs.constants.O_WRONLY);
    for (let i = 1; i <= 20; i++) fh.writeBehind([Buffer.alloc(64 << 10, i)], (i % 3) * 1024, keep);
    fh.utimesBehind(1_600_000_000, 1_600_000_000);
    // A small write while writes are behind must not overtake them.
    await fh.writev([Buffer.from('zz')], 0);
    await fh.close();
    const got = fs.readFileSync(file);
    expect(got.subarray(0, 2).toString()).toBe('zz');
    // The last writes: i = 20 at 2 KiB, 19 at 1 KiB, 18 at 0.
    expect(got[2]).toBe(18);
    expect(got[1024]).toBe(19);
    expect(got[2048 + (64 << 10) - 1]).toBe(20);
    expect(got.length).toBe(2048 + (64 << 10));
    // writev ran after the times were set, so the times are its own now; without it they are the ones set behind.
    const fh2 = await syncFs.open(file, fs.constants.O_WRONLY);
    fh2.writeBehind([Buffer.alloc(64 << 10, 1)], 0, keep);
    fh2.utimesBehind(1_600_000_000, 1_600_000_000);
    await fh2.close();
    expect(fs.statSync(file).mtimeMs).toBe(1_600_000_000_000);
  });

  it('fails every later call with the first failure behind, wrapped; closes the descriptor all the same', async () => {
    // Read-only: the write behind fails with EBADF.
    const fh = await syncFs.open(file, fs.constants.O_RDONLY);
    fh.writeBehind([Buffer.alloc(64 << 10, 1)], 0, (err) => Object.assign(new Error(`write 7 failed: ${(err as Error).message}`), { code: (err as NodeJS.ErrnoException).code, seq: 7 }));
    fh.utimesBehind(1_600_000_000, 1_600_000_000);
    await expect(fh.stat()).rejects.toMatchObject({ code: 'EBADF', seq: 7 });
    await expect(fh.truncate(0)).rejects.toMatchObject({ seq: 7 });
    await expect(fh.close()).rejects.toMatchObject({ seq: 7 });
    expect(() => fs.fstatSync(fh.fd)).toThrow(/EBADF/);
    // Nothing after the failure ran: the times are untouched, the content too.
    expect(fs.statSync(file).mtimeMs).not.toBe(1_600_000_000_000);
    expect(fs.readFileSync(file)).toEqual(Buffer.alloc(4096, 0x61));
  });

  it('closes the descriptor only once the writes behind are over', async () => {
    const fh = await syncFs.open(file, fs.constants.O_WRONLY);
    const data = randomBytes(4 << 20);
    fh.writeBehind([data], 0, keep);
    const closing = fh.close();
    // A file opened now would get a descriptor the write could land in, were it closed already.
    const other = path.join(dir, 'other');
    const ofd = fs.openSync(other, fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o600);
    await closing;
    fs.closeSync(ofd);
    expect(fs.readFileSync(file).equals(data)).toBe(true);
    expect(fs.statSync(other).size).toBe(0);
  });

  it('skipBytes drops the bytes a short write wrote', () => {
    const b = [Buffer.from('abc'), Buffer.from('defg'), Buffer.from('h')];
    expect(skipBytes(b, 0).map(String)).toEqual(['abc', 'defg', 'h']);
    expect(skipBytes(b, 3).map(String)).toEqual(['defg', 'h']);
    expect(skipBytes(b, 5).map(String)).toEqual(['fg', 'h']);
    expect(skipBytes(b, 8)).toEqual([]);
  });
});
