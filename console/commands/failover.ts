// `tandem failover --force`: promote this passive because the operator vouches that the active
// is gone, when the node cannot tell by itself (failover.auto off, no presence address, its own
// public checks failing, damping, lag). The agent refuses, changing nothing, while anything of
// the peer answers (the channel, or its agent on the public network): a live peer is moved with
// tandem switchover, never with this.
import { TandemError } from '../../shared/errors.ts';
import { parseCommandArgs, requireOption } from '../args.ts';
import { EXIT, type Command } from '../command.ts';
import { askNode, pairTarget } from '../pair-target.ts';

export const failoverCommand: Command = {
  name: 'failover',
  summary: 'promote this passive by hand when the active is known to be gone (--force)',
  help: `Usage: tandem failover --force -c CONFIG [--json]

Promotes the node of CONFIG (a passive) to active at once, with a new epoch beyond anything
the old active had, and starts the applications. Use it when you know the active server is
gone and this node does not take over by itself (failover.auto off, no presence address, its
own public checks failing, too many role changes, or behind beyond failover.maxLagOnFailover:
what it did not receive is lost, and the event says how far behind it was).

Refused, with nothing changed, while the peer answers on the channel or its agent answers on
the public network (it is not gone: use tandem switchover), while this node is in the middle of
a synchronisation (its tree is no state of the active), or when it is active already. When the
old active comes back it sees the newer epoch and rejoins as passive.

Options:
      --force           required: you vouch that the active is gone
  -c, --config CONFIG   the tandem.yaml of the passive to promote (required)
      --json            print the agent's answer as one JSON object
  -h, --help            show this help

Exit codes: 0 this node is active and serves, 1 refused or failed, 3 the agent did not answer,
2 usage error.`,
  async run(args) {
    const { values } = parseCommandArgs('failover', args, { config: { type: 'string', short: 'c' }, force: { type: 'boolean' }, json: { type: 'boolean' } });
    if (values.help === true) {
      process.stdout.write(`${this.help}\n`);
      return EXIT.OK;
    }
    const configPath = requireOption('failover', values.config, '-c CONFIG');
    if (values.force !== true) {
      throw new TandemError({ code: 'TANDEM_ERR_USAGE', op: 'tandem failover', reason: '--force is required: a failover by hand is for an active you know is gone', hint: 'the passive fails over by itself when it can tell; a live active is moved with tandem switchover' });
    }
    const t = pairTarget(configPath);
    process.stderr.write(`asking ${t.self.name} (${t.self.url}) to take over: the operator vouches that ${t.peer.name} is gone\n`);
    const out = await askNode(t, t.self, '/v1/failover?force=1', 150_000);
    if ('error' in out) throw out.error;
    const b = out.answer.body;
    if (values.json === true) process.stdout.write(`${JSON.stringify({ node: out.node, ...b })}\n`);
    if (b.ok !== true) {
      const code = b.code === 'TANDEM_ERR_FAILOVER_FAILED' ? 'TANDEM_ERR_FAILOVER_FAILED' : 'TANDEM_ERR_FAILOVER_REFUSED';
      throw new TandemError({ code, op: `tandem failover --force: ${t.self.name}`, reason: String(b.message), hint: code === 'TANDEM_ERR_FAILOVER_REFUSED' ? 'tandem status -c CONFIG shows what the node sees of its peer' : `read ${t.self.name}'s agent log and tandem events -c CONFIG` });
    }
    if (values.json !== true) process.stdout.write(`${t.self.name}: ${String(b.message)}\n`);
    return EXIT.OK;
  },
};
