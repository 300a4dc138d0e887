// The demo application's page shows each file's first 80 characters: it must read no more than
// that, so a page with a huge file answers at once (it once read every file whole: 2-31 s with a
// 50 MB file; a file past 512 MiB showed nothing at all), and a named pipe, which an open
// would wait on for ever, must not hang it.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freeLoopbackPort } from '../../helpers/demo-dir.ts';
import { PROJECT, until } from '../../helpers/pair.ts';
import { killAll, spawnTracked, TEST_MARKER } from '../../helpers/processes.ts';

const dirs: string[] = [];
afterEach(async () => {
  await killAll();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});


describe('the demo application', () => {
  it('shows the first 80 characters of each file without reading it whole, and is not held by a named pipe', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), `tandem-demo-app-${process.pid}-`));
    dirs.push(root);
    const long = `${'0123456789'.repeat(8)}THE-REST-IS-NOT-SHOWN`;
    fs.writeFileSync(path.join(root, 'a-note.txt'), long);
    // 600 MiB, sparse: its text starts it, zeros follow. Read whole, it could not even become a string.
    const big = path.join(root, 'big.log');
    fs.writeFileSync(big, 'BIG-FILE-STARTS-HERE ');
    fs.truncateSync(big, 600 * 1024 * 1024);
    execFileSync('mkfifo', [path.join(root, 'pipe')]);
    fs.writeFileSync(path.join(root, 'é-utf8.txt'), 'é'.repeat(100));
    const port = await freeLoopbackPort();
    spawnTracked(process.execPath, [`--title=${TEST_MARKER}`, path.join(PROJECT, 'console/demo/demo-app.mjs'), '--root', root, '--host', '127.0.0.1', '--port', String(port), '--node', 'alpha'], { stdio: 'ignore' });
    const url = `http://127.0.0.1:${port}/`;
    await until('the application answers', async () => ((await fetch(`${url}healthz`).catch(() => undefined))?.ok === true ? true : undefined), 20_000);
    const t0 = performance.now();
    const page = await (await fetch(url, { signal: AbortSignal.timeout(20_000) })).text();
    const ms = performance.now() - t0;
    expect(page).toContain(`<a href="/files/a-note.txt">a-note.txt</a> <small>${long.slice(0, 80)}</small>`);
    expect(page).not.toContain('THE-REST');
    expect(page).toContain('<small>BIG-FILE-STARTS-HERE ');
    expect(page).toContain('<a href="/files/pipe">pipe</a> <small></small>');
    expect(page).toContain(`<small>${'é'.repeat(80)}</small>`);
    expect(ms).toBeLessThan(2000);
    // A file is sent as it is, streamed; a pipe is not a file to send.
    const file = await fetch(`${url}files/a-note.txt`);
    expect(await file.text()).toBe(long);
    expect((await fetch(`${url}files/pipe`, { signal: AbortSignal.timeout(5000) })).status).toBe(404);
  }, 60_000);
});
