import { runAgentForeground } from '../../agent/main.ts';
import { parseCommandArgs, requireOption } from '../args.ts';
import { EXIT, type Command } from '../command.ts';

export const agentCommand: Command = {
  name: 'agent',
  summary: 'run one node\'s agent in the foreground',
  help: `Usage: tandem agent -c CONFIG

Runs the agent of one node of a pair in the foreground: watches and replicates (active) or
receives and applies (passive), and serves the control API. Logs are NDJSON on standard output,
or in log.file when the config sets it. SIGTERM or SIGINT stops it cleanly (exit 0).

Options:
  -c, --config CONFIG   this node's tandem.yaml (required)
  -h, --help            show this help

The agent lets the JavaScript heap grow by 50 % over its live data before a full collection
(V8 alone allows up to 4×); node --heap-growing-percent=N on its command line overrides that.
The systemd unit, the installer and tandem demo start node with --initial-old-space-size=96
as well (a floor under that limit: a small heap with much data streaming through it is
otherwise collected several times a second), and set glibc's allocator to keep the memory of
large buffers (GLIBC_TUNABLES, added to yours: every batch would otherwise fault its pages in
afresh). Started by hand, give both too:
  GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864:glibc.malloc.arena_max=2 \\
  node --initial-old-space-size=96 /path/to/tandem/bin/tandem.mjs agent -c CONFIG

Exit codes: 0 stopped by a signal, 1 could not start (the error says why), 2 usage error.`,
  async run(args) {
    const { values } = parseCommandArgs('agent', args, { config: { type: 'string', short: 'c' } });
    if (values.help === true) {
      process.stdout.write(`${this.help}\n`);
      return EXIT.OK;
    }
    return runAgentForeground(requireOption('agent', values.config, '-c CONFIG'));
  },
};
