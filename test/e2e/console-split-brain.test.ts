// A split brain seen and resolved from the console, in headless Chromium, on a real pair whose
// links run through TCP proxies: the channel and alpha's presence cut, beta takes over, both
// nodes are active and both write. The console (alpha's) says so while they are apart; once the
// links are back it shows the split brain with each side's changes since they parted, and keeping
// alpha's data from it (relayed to beta, the active) overwrites beta's changes and ends it.
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumInstalled, launchBrowser, waitInPage, type Browser } from '../helpers/browser.ts';
import { tandem } from '../helpers/cli.ts';
import { FailoverPair, TUNED } from '../helpers/failover-pair.ts';
import { PROJECT, type NodeName } from '../helpers/pair.ts';

const ARTIFACTS = path.join(PROJECT, 'test-results', 'console');

let fp: FailoverPair;
let browser: Browser;
let page: Page;

async function writeAndJournal(node: NodeName, files: Record<string, string>): Promise<void> {
  const before = (await fp.pair.status(node)).replication.headSeq;
  for (const [rel, text] of Object.entries(files)) fs.writeFileSync(fp.pair.data(node, rel), text);
  await fp.pair.waitFor(node, 'its writes journaled', (s) => s.replication.headSeq > before && s.capture?.pendingPaths === 0, 20_000);
}

const read = (n: NodeName, rel: string) => (fs.existsSync(fp.pair.data(n, rel)) ? fs.readFileSync(fp.pair.data(n, rel), 'utf8') : undefined);

describe.skipIf(!chromiumInstalled())('a split brain in the console', { timeout: 150_000 }, () => {
  beforeAll(async () => {
    fp = await FailoverPair.create(TUNED);
    await fp.pair.startBoth();
    await fp.pair.waitFor('alpha', 'serving', (s) => s.role === 'active' && s.failover.serving, 60_000);
    await fp.pair.waitFor('beta', 'passive and in sync', (s) => s.role === 'passive' && s.replication.inSync && s.peer.connected, 60_000);
    browser = await launchBrowser();
    page = browser.page;
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await fp?.cleanup();
  });

  it('says both nodes are active while apart, shows each side\'s changes, and keeps the side the operator chooses', async () => {
    const link = await tandem(['console', '-c', fp.pair.node('alpha').config, '--print-url']);
    expect(link.code).toBe(0);
    await page.goto(link.stdout.trim());
    await page.locator('#dashboard').waitFor({ state: 'visible' });

    await fp.cutChannel(true);
    await fp.proxies.presAlpha.refuse();
    await fp.pair.waitFor('beta', 'active after the takeover', (s) => s.role === 'active' && !s.failover.pending, 30_000);
    await waitInPage(page, 'two active nodes on the page', () => /^ACTION NEEDED Both alpha and beta are active/.test(document.getElementById('headline')?.textContent ?? ''), undefined);
    expect(await page.title()).toMatch(/^✗ TWO ACTIVE NODES/);

    await writeAndJournal('alpha', { 'alpha-only.txt': 'alpha\n', 'shared.txt': 'alpha wrote this while apart\n' });
    await writeAndJournal('beta', { 'beta-only.txt': 'beta\n' });
    await fp.proxies.presAlpha.pass();
    await fp.cutChannel(false);
    await fp.pair.waitFor('beta', 'split brain', (s) => s.state === 'split-brain' && s.replication.splitBrain !== null, 30_000);

    // The block names both sides with their changes since they parted.
    const block = await waitInPage(page, 'the split-brain block', () => document.querySelector('#split-brain table')?.textContent ?? false, undefined);
    expect(block).toMatch(/beta \(active\)\d+ changes/);
    expect(block).toMatch(/alpha \(passive\)\d+ changes/);
    expect(await page.locator('#split-brain').innerText()).toMatch(/both changed data while they were apart/);
    await fs.promises.mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'split-brain.png'), fullPage: true });

    await page.getByRole('button', { name: "Keep alpha's data…" }).click();
    await page.locator('#confirm').waitFor({ state: 'visible' });
    expect(await page.locator('#confirm-body').innerText()).toMatch(/^alpha keeps its data and is active afterwards\. beta's \d+ changes made since the two parted .* are overwritten by a synchronisation from alpha\. This cannot be undone\.$/);
    await page.locator('#confirm-ok').click();

    await waitInPage(page, 'alpha active again', () => (document.querySelector('article[data-node="alpha"]') as HTMLElement | null)?.dataset.role === 'active', undefined, 90_000);
    await waitInPage(page, 'the resolution in words', () => /Split brain resolved: keeping alpha/.test(document.getElementById('action-result')?.textContent ?? ''), undefined, 90_000);
    await fp.pair.waitFor('beta', 'passive and in sync', (s) => s.role === 'passive' && s.replication.inSync, 60_000);
    await waitInPage(page, 'the split-brain block gone', () => document.querySelector('#split-brain')?.textContent === '', undefined);
    expect(read('beta', 'alpha-only.txt')).toBe('alpha\n');
    expect(read('beta', 'shared.txt')).toBe('alpha wrote this while apart\n');
    expect(read('beta', 'beta-only.txt')).toBeUndefined();
    expect(fp.overlaps()).toEqual([]);
  });
});
