// `tandem events`: what happened to a node and why, read from its event history (GET
// /v1/events): role changes, states, links, alarms, operator actions, each with its trigger.
// --follow keeps reading (long polls) until Ctrl-C; the history survives agent restarts.
import { loadConfig } from '../../shared/config/index.ts';
import { TandemError } from '../../shared/errors.ts';
import type { TandemEvent } from '../../agent/events/index.ts';
import { parseCommandArgs, requireOption } from '../args.ts';
import { EXIT, type Command } from '../command.ts';
import { callControl, controlUrlOf, optionalCredentials, type ControlCredentials } from '../control-client.ts';

const FOLLOW_WAIT = '30s';
/** After a failed read while following, wait this long before the next. */
const FOLLOW_RETRY_MS = 2000;

/** Control characters (a terminal's escape sequences) in text a peer or a path may have put there. */
const visible = (t: string) => t.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

export function formatEvent(e: TandemEvent): string {
  const move = e.from === null && e.to === null ? '' : `${e.from ?? '-'} → ${e.to ?? '-'}`;
  const phase = typeof e.details.phase === 'string' ? ` (${e.details.phase})` : '';
  const what = e.kind === 'link' ? `link ${String(e.details.link)}` : e.kind === 'alarm' ? `alarm ${String(e.details.code)}` : e.kind === 'script' ? `script ${String(e.details.script)}` : e.kind;
  return visible(`${new Date(e.time).toISOString()}  #${e.seq}  ${e.node}  ${what}  ${move}  [${e.trigger}]  ${e.reason}${phase}`) + '\n';
}

interface EventsPage {
  node: string;
  history: string;
  lastSeq: number;
  truncated: boolean;
  events: TandemEvent[];
}

async function page(url: string, creds: ControlCredentials | undefined, since: number, wait: string | undefined): Promise<EventsPage> {
  const a = await callControl(url, 'GET', `/v1/events?since=${since}${wait === undefined ? '' : `&wait=${wait}`}`, creds, wait === undefined ? 10_000 : 70_000);
  if (a.httpStatus !== 200) {
    throw new TandemError({ code: a.httpStatus === 404 ? 'TANDEM_ERR_CONTROL_REFUSED' : 'TANDEM_ERR_INTERNAL', op: `GET ${url}/v1/events`, reason: typeof a.body.message === 'string' ? a.body.message : `HTTP ${a.httpStatus}`, hint: a.httpStatus === 404 ? 'this agent predates the event stream' : 'read the agent log' });
  }
  return a.body as EventsPage;
}

export const eventsCommand: Command = {
  name: 'events',
  summary: 'show what happened to a node and why (role changes, states, links, alarms…)',
  help: `Usage: tandem events -c CONFIG [--node NODE] [--since N] [--follow] [--json]

Prints the events of the node of CONFIG (or NODE), oldest first: every change of its role,
state, serving, links, alarms, replication pause and maintenance, every failover and
switchover, failed script and token rotation, each with what triggered it (automatic,
operator, planned) and why (docs/events.md). The history survives agent restarts and keeps
events.keep events.

Options:
  -c, --config CONFIG   a node's tandem.yaml (required)
      --node NODE       read the peer's events instead (its address is in CONFIG)
      --since N         only events after sequence N (default: all kept)
  -f, --follow          keep printing new events as they come, until Ctrl-C
      --json            one JSON object per event and line (NDJSON)
  -h, --help            show this help

Exit codes: 0 done, 3 the agent did not answer, 1 other errors, 2 usage error.`,
  async run(args) {
    const { values } = parseCommandArgs('events', args, {
      config: { type: 'string', short: 'c' },
      node: { type: 'string' },
      since: { type: 'string' },
      follow: { type: 'boolean', short: 'f' },
      json: { type: 'boolean' },
    });
    if (values.help === true) {
      process.stdout.write(`${this.help}\n`);
      return EXIT.OK;
    }
    const config = loadConfig(requireOption('events', values.config, '-c CONFIG'));
    const node = values.node === undefined || values.node === config.self.name ? config.self : values.node === config.peer.name ? config.peer : undefined;
    if (node === undefined) throw new TandemError({ code: 'TANDEM_ERR_USAGE', op: 'tandem events', reason: `${values.node} is not a node of this pair`, hint: `${config.self.name} or ${config.peer.name}` });
    if (values.since !== undefined && !/^\d+$/.test(values.since)) throw new TandemError({ code: 'TANDEM_ERR_USAGE', op: 'tandem events', reason: `--since ${values.since}: expected a sequence number`, hint: 'tandem events --json shows each event\'s seq' });
    const url = controlUrlOf(node);
    // Reads on the loopback need no token; beyond it they do, and then the key must be readable.
    const creds = optionalCredentials(config.keyFile);
    const print = (e: TandemEvent) => process.stdout.write(values.json === true ? `${JSON.stringify(e)}\n` : formatEvent(e));
    let since = Number(values.since ?? 0);
    let history: string | undefined;
    let first = true;
    for (;;) {
      let p: EventsPage;
      try {
        p = await page(url, creds, since, first || values.follow !== true ? undefined : FOLLOW_WAIT);
      } catch (err) {
        if (values.follow !== true || first) throw err;
        process.stderr.write(`${(err as Error).message}; trying again\n`);
        await new Promise((r) => setTimeout(r, FOLLOW_RETRY_MS));
        continue;
      }
      if (history !== undefined && p.history !== history) {
        // The agent's history was started over (its file was lost): read it from the start.
        process.stderr.write(`the event history of ${p.node} started over; reading it from the beginning\n`);
        history = p.history;
        since = 0;
        continue;
      }
      history = p.history;
      if (p.truncated && first) process.stderr.write(`events before #${p.events[0]?.seq ?? p.lastSeq} are no longer kept (events.keep)\n`);
      for (const e of p.events) print(e);
      since = p.events.at(-1)?.seq ?? since;
      first = false;
      // More than one page waiting: read on at once.
      if (since < p.lastSeq) continue;
      if (values.follow !== true) return EXIT.OK;
    }
  },
};
