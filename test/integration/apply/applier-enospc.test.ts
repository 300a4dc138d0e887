// A real full disk: the protected root is a 256 KiB tmpfs. The applier must fail with
// TANDEM_ERR_APPLY_FAILED (errno ENOSPC), and once the space is there (remounted at 4 MiB) a redo
// from the last durable seq must end in the clean tree. Needs root (mount); skipped otherwise.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { initHash } from '../../../shared/hash.ts';
import { TandemError } from '../../../shared/errors.ts';
import { silentLogger } from '../../../shared/log.ts';
import type { DataRecord } from '../../../shared/protocol/index.ts';
import { Manifest } from '../../../agent/manifest/index.ts';
import { Applier } from '../../../agent/apply/applier.ts';
import { ROOT, RecordBuilder, bytes, manifestDifferences, snapshot, tmpDir } from '../../unit/apply/helpers.ts';

const BS = 4096;
const T0 = 1_700_000_000_000;

function mountProblem(): string | undefined {
  const probe = tmpDir('tandem-mount-probe-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', probe], { stdio: 'pipe' });
    execFileSync('umount', [probe], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return (err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message;
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}

const problem = mountProblem();
if (problem !== undefined) console.warn(`skipping the tmpfs ENOSPC tests: cannot mount a tmpfs here (${problem}); they need root`);

let base: string;
let mnt: string;
let mounted = false;

beforeAll(async () => {
  await initHash();
});

beforeEach(() => {
  base = tmpDir('tandem-enospc-');
  mnt = path.join(base, 'mnt');
  fs.mkdirSync(mnt);
});

afterEach(() => {
  if (mounted) execFileSync('umount', [mnt]);
  mounted = false;
  fs.rmSync(base, { recursive: true, force: true });
});

/** 8 files of 64 KiB (512 KiB: twice the tmpfs), a rename after every second one. */
function fillingBatch(): DataRecord[] {
  const b = new RecordBuilder();
  b.mkdir('dir', 0o750);
  for (let i = 0; i < 8; i++) {
    const p = `dir/f${i}`;
    b.content(p, bytes(64 << 10, i + 1), BS);
    b.meta(p, 0o640, T0 - i * 1000);
    if (i % 2 === 1) b.rename(p, `dir/moved${i}`);
  }
  return b.records;
}

function newApplier(dir: string): { applier: Applier; manifest: Manifest } {
  const manifest = new Manifest([ROOT]);
  return { applier: new Applier({ roots: [{ name: ROOT, path: dir, exclude: [] }], manifest, blockSize: BS, log: silentLogger() }), manifest };
}

describe.skipIf(problem !== undefined)('applier on a full file system', () => {
  it('fails with ENOSPC, then completes from the last durable seq once there is room', async () => {
    const records = fillingBatch();
    const cleanDir = path.join(base, 'clean');
    const clean = newApplier(cleanDir);
    await clean.applier.init();
    await clean.applier.apply(records, async () => undefined);
    await clean.applier.close();

    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0755', 'tmpfs', mnt]);
    mounted = true;
    const { applier, manifest } = newApplier(mnt);
    await applier.init();
    const durable: number[] = [];
    let error: unknown;
    try {
      await applier.apply(records, async (seq) => {
        durable.push(seq);
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TandemError);
    const err = error as TandemError;
    expect(err.code).toBe('TANDEM_ERR_APPLY_FAILED');
    expect(err.details).toMatchObject({ root: ROOT, errno: 'ENOSPC' });
    expect(err.hint).toMatch(/free space/);
    expect(durable.length).toBeGreaterThan(0);
    const last = durable.at(-1)!;
    // Nothing after the failing record was reported durable.
    expect(last).toBeLessThan(err.details.seq as number);

    // Retrying while still full fails the same way and reports nothing new as durable.
    const again: number[] = [];
    await expect(applier.apply(records.filter((r) => r.seq > last), async (s) => void again.push(s))).rejects.toMatchObject({
      code: 'TANDEM_ERR_APPLY_FAILED',
    });

    execFileSync('mount', ['-o', 'remount,size=4m', mnt]);
    await applier.apply(records.filter((r) => r.seq > Math.max(last, again.at(-1) ?? 0)), async () => undefined);
    await applier.close();
    expect(snapshot(mnt)).toEqual(snapshot(cleanDir));
    expect(manifestDifferences(manifest, ROOT, mnt, BS)).toEqual([]);
  });
});
