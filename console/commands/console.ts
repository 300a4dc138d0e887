// `tandem console`: a link that logs a browser into a node's dashboard (served by that node's
// control API, showing both nodes), printed, or opened in the desktop's browser. The link
// carries a one-time ticket, never the token (console/console-link.ts).
import { spawn } from 'node:child_process';
import { parseCommandArgs, requireOption } from '../args.ts';
import { EXIT, type Command } from '../command.ts';
import { consoleLink } from '../console-link.ts';
import { pairTarget } from '../pair-target.ts';

export const consoleCommand: Command = {
  name: 'console',
  summary: 'print (or open) a link that logs a browser into the pair\'s web dashboard',
  help: `Usage: tandem console -c CONFIG [--open] [--print-url]

Prints a link to the web dashboard of CONFIG's node (served by its control API, at
http://CONTROL/console/). The dashboard shows both nodes, their links, replication with charts
and progress, the protected data and the events, live; it switches over, pauses and resumes,
sets maintenance, verifies and resolves a split brain. The link logs one browser in, once,
within 10 minutes (the token never goes into it); run the command again for a new one. Without
the link, the dashboard asks for the control token (tandem token show -c CONFIG).

It needs the pair key (keyFile in CONFIG) and the node's agent running.

Options:
  -c, --config CONFIG   the node's tandem.yaml (required)
      --open            also open the link in this desktop's browser ($BROWSER, else
                        xdg-open or open)
      --print-url       print the link alone, nothing else (for scripts)
  -h, --help            show this help

Exit codes: 0 printed, 3 the agent does not answer, 1 other errors, 2 usage error.`,
  async run(args) {
    const { values } = parseCommandArgs('console', args, { config: { type: 'string', short: 'c' }, open: { type: 'boolean' }, 'print-url': { type: 'boolean' } });
    if (values.help === true) {
      process.stdout.write(`${this.help}\n`);
      return EXIT.OK;
    }
    const t = pairTarget(requireOption('console', values.config, '-c CONFIG'));
    const link = await consoleLink(t.self.url, t.creds);
    if (values['print-url'] === true) process.stdout.write(`${link.url}\n`);
    else {
      process.stdout.write(`Console of ${t.self.name} (pair ${t.config.pair}; it shows ${t.peer.name} too):\n  ${link.url}\n`);
      process.stdout.write(`The link logs one browser in, once, within ${Math.round(link.expiresInMs / 60_000)} minutes; run this command again for a new one.\n`);
    }
    if (values.open === true) {
      const opened = await openBrowser(link.url);
      if (!opened.ok) process.stderr.write(`could not open a browser (${opened.reason}): open the link yourself\n`);
    }
    return EXIT.OK;
  },
};

/** Starts the desktop's browser on `url` and leaves it running; false when none could start. */
function openBrowser(url: string): Promise<{ ok: true } | { ok: false; reason: string }> {
  const browser = process.env.BROWSER?.split(':')[0]?.trim();
  const [cmd, args] = browser !== undefined && browser !== '' ? [browser, [url]] : process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '""', url]] : ['xdg-open', [url]];
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: 'ignore', detached: true });
    child.once('error', (err) => resolve({ ok: false, reason: `${cmd}: ${err.message}` }));
    child.once('spawn', () => {
      child.unref();
      resolve({ ok: true });
    });
  });
}
