// `tandem console` with a real agent: a login link (one-time ticket, never the token), the URL
// alone with --print-url (a stable interface: outside checks load it in Chromium), the desktop's
// browser started with it for --open, and exit 3 when the agent does not answer.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tandem } from '../../helpers/cli.ts';
import { TestPair, until } from '../../helpers/pair.ts';
import { killAll } from '../../helpers/processes.ts';

let pair: TestPair | undefined;
afterEach(async () => {
  await killAll();
  await pair?.cleanup();
  pair = undefined;
});

describe('tandem console', () => {
  it('prints a link that logs a browser in once, only the URL with --print-url, and opens it with --open', async () => {
    pair = await TestPair.create();
    await pair.start('alpha');
    const cfg = pair.node('alpha').config;
    const base = pair.node('alpha').controlUrl;

    const plain = await tandem(['console', '-c', cfg]);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(new RegExp(`^Console of alpha \\(pair demo; it shows beta too\\):\\n  ${base}/console/login\\?ticket=[0-9a-f]{64}\\nThe link logs one browser in, once, within 10 minutes; run this command again for a new one\\.\\n$`));
    const key = fs.readFileSync(path.join(path.dirname(cfg), 'pair.key'), 'utf8').trim();
    expect(plain.stdout).not.toContain(key);

    const only = await tandem(['console', '-c', cfg, '--print-url']);
    expect(only.code).toBe(0);
    expect(only.stdout).toMatch(new RegExp(`^${base}/console/login\\?ticket=[0-9a-f]{64}\\n$`));
    const url = only.stdout.trim();
    const login = await fetch(url, { redirect: 'manual' });
    expect(login.status).toBe(303);
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const session = await (await fetch(`${base}/v1/session`, { headers: { cookie } })).json();
    expect(session).toMatchObject({ loggedIn: true, node: 'alpha' });
    expect((await fetch(url, { redirect: 'manual' })).headers.get('location')).toBe('/console/?login=refused');

    // --open: $BROWSER gets the link (a stand-in that writes down what it was given, into a
    // file it then renames: the test never reads the file between its creation and the write).
    const seen = path.join(pair.dir, 'browser-got');
    const fake = path.join(pair.dir, 'fake-browser.sh');
    fs.writeFileSync(fake, `#!/bin/sh\nprintf '%s' "$1" > ${JSON.stringify(`${seen}.tmp`)} && mv ${JSON.stringify(`${seen}.tmp`)} ${JSON.stringify(seen)}\n`, { mode: 0o755 });
    const prev = process.env.BROWSER;
    process.env.BROWSER = fake;
    try {
      const opened = await tandem(['console', '-c', cfg, '--open', '--print-url']);
      expect(opened.code).toBe(0);
      const got = await until('the browser started with the link', () => (fs.existsSync(seen) ? fs.readFileSync(seen, 'utf8') : undefined), 10_000);
      expect(got).toBe(opened.stdout.trim());
    } finally {
      if (prev === undefined) delete process.env.BROWSER;
      else process.env.BROWSER = prev;
    }
  });

  it('exits 3 with what to do when the agent does not answer', async () => {
    pair = await TestPair.create();
    const r = await tandem(['console', '-c', pair.node('beta').config, '--print-url']);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^error TANDEM_ERR_CONTROL_UNREACHABLE: POST http:\/\/127\.0\.0\.1:\d+\/v1\/session\/ticket: .*\nhint: is the agent running\?/);
  });
});
