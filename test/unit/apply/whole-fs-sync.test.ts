// The syncfs helper: one long-lived shell per directory runs `sync -f -- DIR` per request, so the
// agent forks a small shell once instead of itself every time. A stand-in for `sync` records the
// arguments it was given, so the tests see exactly what ran, and how often the shell was made.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SyncfsHelper, findSync } from '../../../agent/apply/whole-fs-sync.ts';

const dirs: string[] = [];
const helpers: SyncfsHelper[] = [];
afterEach(() => {
  for (const h of helpers.splice(0)) h.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-syncfs-'));
  dirs.push(d);
  return d;
}

/**
 * A stand-in for `sync`: appends each argument on a line of its own, then a separator; `body` runs
 * after. A body that waits must also stop once the test's directory is gone: a stand-in orphaned
 * by a killed shell would otherwise outlive the test.
 */
function fakeSync(dir: string, body = 'exit 0'): { bin: string; calls: () => string[][] } {
  const log = path.join(dir, 'calls.log');
  const bin = path.join(dir, 'fake-sync');
  fs.writeFileSync(bin, `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a" >> '${log}'; done\nprintf -- '--end--\\n' >> '${log}'\n${body}\n`, { mode: 0o755 });
  const calls = () => {
    if (!fs.existsSync(log)) return [];
    const out: string[][] = [];
    let cur: string[] = [];
    for (const line of fs.readFileSync(log, 'utf8').split('\n').slice(0, -1)) {
      if (line === '--end--') {
        out.push(cur);
        cur = [];
      } else cur.push(line);
    }
    return out;
  };
  return { bin, calls };
}

const helper = (bin: string, dir: string) => {
  const h = new SyncfsHelper(bin, dir);
  helpers.push(h);
  return h;
};

const alive = (pid: number | undefined) => {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('SyncfsHelper', () => {
  it('runs `sync -f -- DIR` once per request, all through one shell', async () => {
    const d = tmp();
    const { bin, calls } = fakeSync(d);
    const h = helper(bin, d);
    await h.sync();
    const pid = h.pid;
    expect(alive(pid)).toBe(true);
    await Promise.all([h.sync(), h.sync()]);
    expect(h.pid).toBe(pid);
    expect(calls()).toEqual([
      ['-f', '--', d],
      ['-f', '--', d],
      ['-f', '--', d],
    ]);
  });

  it('hands a hostile directory name over as it is: the shell never parses it', async () => {
    const d = tmp();
    const { bin, calls } = fakeSync(d);
    const marker = path.join(d, 'injected');
    const name = path.join(d, `a b'"; touch ${marker}; $(touch ${marker})\`touch ${marker}\`\nnext -x`);
    const h = helper(bin, name);
    await h.sync();
    expect(fs.existsSync(marker)).toBe(false);
    // The newline splits the logged name in two lines: the stand-in logs line by line.
    expect(calls()).toEqual([['-f', '--', ...name.split('\n')]]);
  });

  it('fails a request with what sync printed (on one line), and the next one works', async () => {
    const d = tmp();
    const flag = path.join(d, 'fail');
    fs.writeFileSync(flag, '');
    const { bin } = fakeSync(d, `if [ -e '${flag}' ]; then echo "sync: error syncing" >&2; echo "second line" >&2; exit 1; fi`);
    const h = helper(bin, d);
    await expect(h.sync()).rejects.toThrow(/failed: sync: error syncing second line$/);
    fs.rmSync(flag);
    await h.sync();
  });

  it('says ENOENT when sync is not there, as a failed spawn of it did (the applier then fsyncs each file)', async () => {
    const d = tmp();
    const h = helper(path.join(d, 'no-such-sync'), d);
    await expect(h.sync()).rejects.toMatchObject({ code: 'ENOENT' });
  });

  /** A helper whose first sync is running and waits until `open()`. */
  async function heldSync() {
    const d = tmp();
    const gate = path.join(d, 'gate');
    const { bin, calls } = fakeSync(d, `while [ ! -e '${gate}' ] && [ -d '${d}' ]; do sleep 0.02; done`);
    const h = helper(bin, d);
    const held = h.sync();
    // Observed, so that a failure of it never goes unhandled before the test looks.
    held.catch(() => undefined);
    await until(() => calls().length === 1, 'the first sync running');
    return { h, held, pid: h.pid!, open: () => fs.writeFileSync(gate, '') };
  }

  it('starts a new shell when the old one died, failing only the request it held', async () => {
    const { h, held, pid, open } = await heldSync();
    process.kill(pid, 'SIGKILL');
    await expect(held).rejects.toThrow(/helper shell ended/);
    open();
    await h.sync();
    expect(h.pid).not.toBe(pid);
  });

  it('ends its shell on close and fails what still waits; nothing runs after', async () => {
    const { h, held, pid, open } = await heldSync();
    h.close();
    await expect(held).rejects.toThrow(/closed before it answered/);
    await expect(h.sync()).rejects.toThrow(/closed/);
    open();
    await until(() => !alive(pid), 'the shell gone');
  });

  it('keeps a process alive while a request waits, and not once it is answered', async () => {
    // A process whose only work is the syncfs: before, the idle-unref'd shell let it end before
    // the answer (a script awaiting it at top level exited 13, the request never settled).
    const d = tmp();
    const { bin } = fakeSync(d, 'sleep 0.3');
    const mod = path.resolve('agent/apply/whole-fs-sync.ts');
    const script = `import { SyncfsHelper } from ${JSON.stringify(mod)};
const h = new SyncfsHelper(${JSON.stringify(bin)}, ${JSON.stringify(d)});
await h.sync();
console.log('synced');
await h.sync();
console.log('synced again');`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('synced\nsynced again\n');
    // And the idle shell did not keep it: it ended by itself, without close().
    expect(r.status).toBe(0);
  });

  it('makes the real syncfs call', async () => {
    const bin = findSync();
    expect(bin).toBeDefined();
    const d = tmp();
    fs.writeFileSync(path.join(d, 'f'), 'x');
    await helper(bin!, d).sync();
  });
});
