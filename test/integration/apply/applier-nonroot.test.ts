// An agent that does not run as root must be able to redo a batch on a file an earlier `meta`
// made read-only (git objects are 0444). Runs the applier as `nobody` through setpriv; skipped
// when the tests do not run as root or setpriv is missing.
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { initHash } from '../../../shared/hash.ts';
import { RecordBuilder, tmpDir } from '../../unit/apply/helpers.ts';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'crash-child.ts');
const NOBODY = 65534;

function setprivProblem(): string | undefined {
  if (process.getuid?.() !== 0) return 'the tests do not run as root';
  try {
    execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'true'], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return `setpriv does not work here: ${(err as Error).message}`;
  }
}

const problem = setprivProblem();
if (problem !== undefined) console.warn(`skipping the non-root applier test: ${problem}`);

let base: string;

beforeAll(async () => {
  await initHash();
});

beforeEach(() => {
  base = tmpDir('tandem-nonroot-');
  fs.chmodSync(base, 0o755);
});

afterEach(() => {
  fs.rmSync(base, { recursive: true, force: true });
});

describe.skipIf(problem !== undefined)('applier as an unprivileged user', () => {
  it('redoes a batch that writes a file a meta made read-only, and ends with the mode of the meta', () => {
    const root = path.join(base, 'root');
    fs.mkdirSync(root);
    fs.chownSync(root, NOBODY, NOBODY);
    const b = new RecordBuilder();
    b.content('objects/ab/cdef', 'blob 6\0object', 4096);
    b.meta('objects/ab/cdef', 0o444, 1_700_000_000_000);
    const recordsFile = path.join(base, 'records.bin');
    fs.writeFileSync(recordsFile, v8.serialize(b.records), { mode: 0o644 });
    for (let attempt = 0; attempt < 2; attempt++) {
      const run = spawnSync(
        'setpriv',
        ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--import', 'tsx', CHILD, recordsFile, root, '-1', 'tandem-test-marker'],
        { encoding: 'utf8', timeout: 30_000 },
      );
      expect({ attempt, status: run.status, stderr: run.stderr }).toEqual({ attempt, status: 0, stderr: '' });
      expect(run.stdout).toContain('durable 3');
    }
    const file = path.join(root, 'objects/ab/cdef');
    expect(fs.readFileSync(file, 'utf8')).toBe('blob 6\0object');
    const st = fs.statSync(file);
    expect(st.mode & 0o7777).toBe(0o444);
    expect(st.uid).toBe(NOBODY);
  });

  it("cannot give a file the active's owner: keeps its own, clears setuid, and says both", () => {
    const root = path.join(base, 'root');
    fs.mkdirSync(root);
    fs.chownSync(root, NOBODY, NOBODY);
    const b = new RecordBuilder();
    b.content('tool', '#!/bin/sh\nid -u\n', 4096);
    b.meta('tool', 0o4755, 1_700_000_000_000, { uid: 0, gid: 0, user: 'root', group: 'root' });
    const recordsFile = path.join(base, 'records.bin');
    fs.writeFileSync(recordsFile, v8.serialize(b.records), { mode: 0o644 });
    const run = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--import', 'tsx', CHILD, recordsFile, root, '-1', 'tandem-test-marker'], { encoding: 'utf8', timeout: 30_000 });
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
    expect(run.stdout).toContain('notice TANDEM_ERR_OWNER_UNAPPLIED');
    expect(run.stdout).toContain('notice TANDEM_ERR_SPECIAL_BITS_CLEARED');
    const st = fs.statSync(path.join(root, 'tool'));
    expect(st.uid).toBe(NOBODY);
    expect(st.mode & 0o7777).toBe(0o755);
  });
});
