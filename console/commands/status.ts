import { formatBytes } from '../../shared/sizes.ts';
import type { AgentStatus } from '../../agent/control/index.ts';
import { parseCommandArgs, requireOption } from '../args.ts';
import { EXIT, type Command } from '../command.ts';
import { controlUrlFor, fetchStatus } from '../control-client.ts';

export const statusCommand: Command = {
  name: 'status',
  summary: 'show a node\'s role, replication state and alarms',
  help: `Usage: tandem status -c CONFIG [--json]

Asks the agent of the node described by CONFIG (through its control API) for its status.

Options:
  -c, --config CONFIG   the node's tandem.yaml (required)
      --json            print the status document as one JSON object (see docs/status.md)
  -h, --help            show this help

Exit codes: 0 the agent answered, 3 the agent did not answer, 1 other errors, 2 usage error.`,
  async run(args) {
    const { values } = parseCommandArgs('status', args, { config: { type: 'string', short: 'c' }, json: { type: 'boolean' } });
    if (values.help === true) {
      process.stdout.write(`${this.help}\n`);
      return EXIT.OK;
    }
    const status = await fetchStatus(controlUrlFor(requireOption('status', values.config, '-c CONFIG')));
    process.stdout.write(values.json === true ? `${JSON.stringify(status)}\n` : formatStatus(status));
    return EXIT.OK;
  },
};

/** "; peer 0.1.0, protocol 1 (session at 1)" once a hello came. */
function versionOfPeer(v: AgentStatus['peer']['version']): string {
  if (v === null || v === undefined) return '';
  return `; peer ${v.tandem ?? 'of an older release'}, protocol ${v.protocol} (session at ${v.session})`;
}

export function formatStatus(s: AgentStatus): string {
  const r = s.replication;
  const lines = [
    `${s.node}  ${s.role}  ${s.state}  (pair ${s.pair}, generation ${s.generation || 'none yet'})`,
    `  peer         ${s.peer.name}: ${s.peer.connected ? `connected, ${s.peer.role}` : 'not connected'}`,
    // An agent older than this CLI may send no version at all.
    `  version      tandem ${s.version?.tandem ?? 'unknown'}, protocol ${s.version?.protocol ?? 'unknown'}${versionOfPeer(s.peer.version)}`,
    `  links        channel ${s.links.channel}, public ${s.links.public}`,
    `  replication  head ${r.headSeq}, applied ${r.appliedSeq}, lag ${r.lagMs} ms, queue ${formatBytes(r.queueBytes)}, ${r.inSync ? 'in sync' : 'NOT in sync'}`,
  ];
  if (r.sync !== null) {
    const pct = r.sync.bytesTotal > 0 ? ((100 * r.sync.bytesDone) / r.sync.bytesTotal).toFixed(1) : '0.0';
    const eta = r.sync.etaMs === null ? 'unknown' : `${Math.round(r.sync.etaMs / 1000)} s`;
    lines.push(`  sync         ${formatBytes(r.sync.bytesDone)} of ${formatBytes(r.sync.bytesTotal)} (${pct}%), ETA ${eta}`);
  }
  if (s.capture !== null) {
    lines.push(`  capture      ${s.capture.state}, ${s.capture.pendingPaths} pending, ${s.capture.filesHashed} files hashed${s.capture.waitingForSpace ? ', WAITING FOR JOURNAL SPACE' : ''}`);
  }
  lines.push(`  channel      ${formatBytes(s.channel.bytesIn)} in, ${formatBytes(s.channel.bytesOut)} out`);
  if (s.alarms.length === 0) lines.push('  alarms       none');
  for (const a of s.alarms) lines.push(`  ALARM        ${a.code}: ${a.message}${a.hint === undefined ? '' : `\n               hint: ${a.hint}`}`);
  return `${lines.join('\n')}\n`;
}
