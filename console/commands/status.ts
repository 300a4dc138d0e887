// `tandem status`: both nodes of the pair on one screen (console/pair-view.ts), once or
// redrawn as they change. Reads only: the control API of each node named in CONFIG.
import { readPairAddresses, type PairAddresses } from '../../shared/config/pair-addresses.ts';
import { TandemError } from '../../shared/errors.ts';
import { parseCommandArgs, requireOption } from '../args.ts';
import { EXIT, type Command } from '../command.ts';
import { fetchStatus } from '../control-client.ts';
import { formatPairView, pairViewJson, pairViewKey, readPairView, type PairView } from '../pair-view.ts';

const DEFAULT_INTERVAL_MS = 1000;
const DEFAULT_TIMEOUT_MS = 5000;

export const statusCommand: Command = {
  name: 'status',
  summary: 'show both nodes of the pair: roles, states, lag, links, alarms',
  help: `Usage: tandem status -c CONFIG [--json] [--watch] [--interval DURATION] [--timeout DURATION]

Shows both nodes of the pair on one screen: role, state, whether it serves, epoch, replication
(applied/head, lag), the channel and its heartbeat round-trip, the public link, the last role
change and its reason, synchronisation progress and alarms. CONFIG may be either node's: both
nodes' control APIs are named in it (nodes.<node>.control). A node that does not answer is
shown with the error.

Options:
  -c, --config CONFIG     a node's tandem.yaml (required)
      --json              print one JSON object: the status document of CONFIG's node, as
                          GET /v1/status answers it, plus "nodes": both nodes, each with its
                          "status" or its "error" (docs/status.md); JSON also when agents are down
      --watch             keep reading, and print again whenever something changes (role, state,
                          serving, lag, links, alarms…); with --json, one object per line.
                          Ctrl-C ends it.
      --interval DURATION how often --watch reads (default 1s)
      --timeout DURATION  how long to wait for each agent's answer (default 5s)
  -h, --help              show this help

Durations take a unit: 500ms, 10s, 2m.

Exit codes: 0 CONFIG's node answered (its peer may not have: see the screen or "nodes"), 3 it
did not answer, 1 other errors (the config cannot be read), 2 usage error.`,
  async run(args) {
    try {
      return await runStatus(args, this.help);
    } catch (err) {
      // --json promises JSON on stdout whatever happens (a usage error, a config that cannot
      // be read); the error also goes to stderr, with the exit code it always had.
      if (args.includes('--json') && err instanceof TandemError) process.stdout.write(`${JSON.stringify({ error: err.toJSON() })}\n`);
      throw err;
    }
  },
};

async function runStatus(args: string[], help: string): Promise<number> {
  const { values } = parseCommandArgs('status', args, {
    config: { type: 'string', short: 'c' },
    json: { type: 'boolean' },
    watch: { type: 'boolean' },
    interval: { type: 'duration', minMs: 100 },
    timeout: { type: 'duration', minMs: 10 },
  });
  if (values.help === true) {
    process.stdout.write(`${help}\n`);
    return EXIT.OK;
  }
  const json = values.json === true;
  const timeoutMs = values.timeout ?? DEFAULT_TIMEOUT_MS;
  const addresses: PairAddresses = readPairAddresses(requireOption('status', values.config, '-c CONFIG'));
  const read = () => readPairView(addresses, (url) => fetchStatus(url, timeoutMs), Date.now);
  const print = (v: PairView) => process.stdout.write(json ? `${JSON.stringify(pairViewJson(v))}\n` : formatPairView(v));
  if (values.watch !== true) {
    const v = await read();
    print(v);
    return exitCodeOf(v);
  }
  return watch(read, print, values.interval ?? DEFAULT_INTERVAL_MS, !json && process.stdout.isTTY === true);
}

function exitCodeOf(v: PairView): number {
  return v.nodes[0].ok ? EXIT.OK : EXIT.UNREACHABLE;
}

/**
 * Reads every `intervalMs` and prints only when the pair changed (pairViewKey), so a quiet pair
 * prints once. On a terminal each print replaces the screen; elsewhere (a pipe, a log) it is
 * appended, separated by a blank line. Ends on SIGINT or SIGTERM with the last exit code.
 */
async function watch(read: () => Promise<PairView>, print: (v: PairView) => void, intervalMs: number, tty: boolean): Promise<number> {
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const onSignal = () => stop();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let last = '';
  let code: number = EXIT.OK;
  let first = true;
  try {
    for (;;) {
      const v = await read();
      code = exitCodeOf(v);
      const key = pairViewKey(v);
      if (key !== last) {
        last = key;
        if (tty) process.stdout.write('\x1b[H\x1b[2J');
        else if (!first) process.stdout.write('\n');
        print(v);
        first = false;
      }
      let timer: NodeJS.Timeout | undefined;
      const tick = new Promise<'tick'>((resolve) => (timer = setTimeout(() => resolve('tick'), intervalMs)));
      const r = await Promise.race([tick, stopped.then(() => 'stop' as const)]);
      clearTimeout(timer);
      if (r === 'stop') return code;
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
