// `tandem pause` / `tandem resume`: hold replication on the active node and let it go again
// (DRBD's pause-sync, an operator's "not now"). While paused the active keeps journaling up to
// journal.maxBytes, the passive falls behind (status: state paused on both nodes), and a
// failover would lose what it did not receive; resumed, the passive catches up from the journal.
import { TandemError } from '../../shared/errors.ts';
import { parseCommandArgs, requireOption } from '../args.ts';
import { EXIT, type Command } from '../command.ts';
import { askActive, pairTarget } from '../pair-target.ts';

function command(name: 'pause' | 'resume'): Command {
  const pausing = name === 'pause';
  return {
    name,
    summary: pausing ? 'pause replication on the active node (the journal keeps what is written)' : 'resume paused replication (the passive catches up from the journal)',
    help: `Usage: tandem ${name} -c CONFIG [--reason TEXT] [--json]

${
  pausing
    ? `Pauses replication: the active node sends nothing more to the passive until tandem resume.
Writes go on and are journaled (up to journal.maxBytes; beyond that capture waits). Both nodes
show state "paused"; the pause survives a restart of the active's agent and ends when the
node stops being active. A switchover is refused while paused, and a failover would lose what
the passive did not receive (it refuses beyond failover.maxLagOnFailover).`
    : `Resumes replication paused with tandem pause: the passive catches up from the journal, and
both nodes show state "syncing" until it is in sync.`
}

CONFIG may be either node's: the command asks that node, and its peer when that node is not
active. It needs the pair key (keyFile in CONFIG).

Options:
  -c, --config CONFIG   either node's tandem.yaml (required)
      --reason TEXT     why, for the event stream and status (at most 200 characters)
      --json            print the agent's answer as one JSON object
  -h, --help            show this help

Exit codes: 0 done (or already so), 1 refused, 3 no agent answered, 2 usage error.`,
    async run(args) {
      const { values } = parseCommandArgs(name, args, { config: { type: 'string', short: 'c' }, reason: { type: 'string' }, json: { type: 'boolean' } });
      if (values.help === true) {
        process.stdout.write(`${this.help}\n`);
        return EXIT.OK;
      }
      const t = pairTarget(requireOption(name, values.config, '-c CONFIG'));
      const q = values.reason === undefined ? '' : `?reason=${encodeURIComponent(values.reason)}`;
      const out = await askActive(t, `/v1/replication/${name}${q}`, (line) => process.stderr.write(`${line}\n`));
      if ('error' in out) throw out.error;
      const b = out.answer.body;
      if (values.json === true) process.stdout.write(`${JSON.stringify({ node: out.node, ...b })}\n`);
      if (b.ok !== true) {
        throw new TandemError({ code: b.code === 'TANDEM_ERR_ACTION_REFUSED' ? 'TANDEM_ERR_ACTION_REFUSED' : 'TANDEM_ERR_CONTROL_REFUSED', op: `tandem ${name}`, reason: `${out.node} answered: ${String(b.message)}`, hint: 'tandem status -c CONFIG on both nodes' });
      }
      if (values.json !== true) process.stdout.write(`${out.node}: ${String(b.message)}\n`);
      return EXIT.OK;
    },
  };
}

export const pauseCommand = command('pause');
export const resumeCommand = command('resume');
