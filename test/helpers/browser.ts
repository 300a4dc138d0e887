// A real headless Chromium for the console's end-to-end tests: Debian's /usr/bin/chromium driven
// by playwright-core (no browser download), with a fresh profile per run, nothing fetched from
// the network by the browser itself, and closed (profile removed) by the test that opened it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.TANDEM_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export function chromiumInstalled(): boolean {
  return fs.existsSync(CHROMIUM);
}

export interface Browser {
  context: BrowserContext;
  /** A first tab, waiting up to 60 s for what the tests ask of it. */
  page: Page;
  close(): Promise<void>;
}

export async function launchBrowser(viewport = { width: 1280, height: 900 }): Promise<Browser> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), `tandem-chromium-${process.pid}-`));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport, timeout: 60_000 });
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  return {
    context,
    page,
    async close() {
      await context.close().catch(() => {});
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** WCAG 2 contrast ratio of two CSS colours as getComputedStyle gives them (rgb(…) / rgba(…)). */
export function contrastRatio(fg: string, bg: string): number {
  const lum = (css: string) => {
    const m = /rgba?\((\d+(?:\.\d+)?)[, ]+(\d+(?:\.\d+)?)[, ]+(\d+(?:\.\d+)?)/.exec(css);
    if (m === null) throw new Error(`not an rgb colour: ${css}`);
    const [r, g, b] = [m[1], m[2], m[3]].map((v) => {
      const c = Number(v) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    }) as [number, number, number];
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x) as [number, number];
  return (a + 0.05) / (b + 0.05);
}

/** Waits until `f(arg)`, run in the page (it sees nothing of the test's scope), returns something truthy; returns it. */
export async function waitInPage<A, T>(page: Page, what: string, f: (arg: A) => T, arg: A, timeoutMs = 60_000): Promise<Exclude<T, false | null | undefined>> {
  try {
    const handle = await page.waitForFunction(f as (arg: unknown) => T, arg as unknown, { timeout: timeoutMs, polling: 200 });
    return (await handle.jsonValue()) as Exclude<T, false | null | undefined>;
  } catch (err) {
    throw new Error(`timed out waiting in the page for ${what}: ${(err as Error).message.split('\n')[0]}\npage text: ${(await page.innerText('body').catch(() => '?')).slice(0, 3000)}`);
  }
}
