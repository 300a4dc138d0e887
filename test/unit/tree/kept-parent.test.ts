// KeptParent: the directory of the last path stays open for the next path of it, and is used
// again only while it is still exactly where the path says: a directory moved away, removed or
// swapped for a link since is never read through.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KeptParent, type Parent } from '../../../agent/tree/index.ts';

let base: string;
let root: string;
let kept: KeptParent;

beforeEach(() => {
  base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-kept-parent-')));
  root = path.join(base, 'root');
  fs.mkdirSync(path.join(root, 'd'), { recursive: true });
  for (const n of ['one', 'two', 'three']) fs.writeFileSync(path.join(root, 'd', n), `d/${n}`);
  fs.mkdirSync(path.join(root, 'e'));
  fs.writeFileSync(path.join(root, 'e', 'one'), 'e/one');
  fs.writeFileSync(path.join(root, 'top'), 'top');
  fs.mkdirSync(path.join(base, 'outside'));
  kept = new KeptParent();
});

afterEach(() => {
  kept.close();
  fs.rmSync(base, { recursive: true, force: true });
});

const openFds = () => fs.readdirSync('/proc/self/fd').length;

/** What the entry named by `p` holds, read through its open parent (never following its last component). */
function readVia(p: Parent | undefined): string | undefined {
  return p === undefined ? undefined : fs.readFileSync(p.at, 'utf8');
}

describe('KeptParent', () => {
  it('opens a directory once for the paths of it that follow one another, reads each right, and closes it', () => {
    const before = openFds();
    const first = kept.parentOf(root, 'd/one');
    expect(readVia(first)).toBe('d/one');
    const second = kept.parentOf(root, 'd/two');
    expect(second?.fd).toBe(first?.fd);
    expect(readVia(second)).toBe('d/two');
    // The caller's close leaves the kept descriptor open: the keeper closes it.
    second?.close();
    expect(readVia(kept.parentOf(root, 'd/three'))).toBe('d/three');
    expect(openFds()).toBe(before + 1);
    // Another directory, then the root: one descriptor open at a time.
    expect(readVia(kept.parentOf(root, 'e/one'))).toBe('e/one');
    expect(openFds()).toBe(before + 1);
    expect(readVia(kept.parentOf(root, 'top'))).toBe('top');
    expect(readVia(kept.parentOf(root, 'top'))).toBe('top');
    expect(openFds()).toBe(before + 1);
    kept.close();
    expect(openFds()).toBe(before);
  });

  it('reads through the directory now at the path, never the one it kept that was moved away', () => {
    expect(readVia(kept.parentOf(root, 'd/one'))).toBe('d/one');
    // Someone moves the directory out of the root and puts another one at its name.
    fs.renameSync(path.join(root, 'd'), path.join(base, 'outside', 'd'));
    fs.mkdirSync(path.join(root, 'd'));
    fs.writeFileSync(path.join(root, 'd', 'two'), 'the new d/two');
    expect(readVia(kept.parentOf(root, 'd/two'))).toBe('the new d/two');
    // Moved away with nothing put back: absent, not read from outside the root.
    fs.renameSync(path.join(root, 'd'), path.join(base, 'outside', 'd2'));
    expect(kept.parentOf(root, 'd/two')).toBeUndefined();
  });

  it('answers nothing below a directory swapped for a link, or removed, after it was kept', () => {
    expect(readVia(kept.parentOf(root, 'd/one'))).toBe('d/one');
    // The directory goes out of the root and a link to it takes its name: the kept descriptor
    // still reaches the same files, but its real path is no longer below the root.
    fs.renameSync(path.join(root, 'd'), path.join(base, 'outside', 'd'));
    fs.symlinkSync(path.join(base, 'outside', 'd'), path.join(root, 'd'));
    expect(kept.parentOf(root, 'd/two')).toBeUndefined();
    expect(kept.parentOf(root, 'd/three')).toBeUndefined();

    fs.unlinkSync(path.join(root, 'd'));
    fs.mkdirSync(path.join(root, 'd'));
    fs.writeFileSync(path.join(root, 'd', 'one'), 'again');
    expect(readVia(kept.parentOf(root, 'd/one'))).toBe('again');
    fs.rmSync(path.join(root, 'd'), { recursive: true });
    expect(kept.parentOf(root, 'd/one')).toBeUndefined();
  });
});
