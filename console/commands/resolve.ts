// `tandem resolve --keep NODE`: ends a split brain (docs/failover.md, "Split brain"). The agents
// hold replication until an operator says whose data survives; this command finds the active,
// checks that it reports the split brain, asks it to keep NODE, and waits until the pair is in
// sync again: the other node's changes since the split are then overwritten.
import { systemClock, type Clock } from '../../shared/clock.ts';
import { loadConfig } from '../../shared/config/index.ts';
import { TandemError } from '../../shared/errors.ts';
import { parseDuration } from '../../shared/sizes.ts';
import type { AgentStatus } from '../../agent/control/index.ts';
import { parseCommandArgs, requireOption } from '../args.ts';
import { EXIT, type Command } from '../command.ts';
import { controlTokenFor, controlUrlOf, fetchStatus, postControl } from '../control-client.ts';

const DEFAULT_TIMEOUT = '30m';
const STATUS_TIMEOUT_MS = 5000;
const POLL_MS = 250;
const PROGRESS_EVERY_MS = 5000;

export const resolveCommand: Command = {
  name: 'resolve',
  summary: 'end a split brain: keep one node\'s data, overwrite the other\'s changes',
  help: `Usage: tandem resolve --keep NODE -c CONFIG [--json] [--timeout DURATION]

Ends a split brain: both nodes changed data while they were apart, and replication holds
(status shows state "split-brain" and replication.splitBrain). NODE's data is kept; the
other node's changes since the split are overwritten by exactly the paths and blocks that
differ. If NODE is the passive, the roles are swapped first (without draining): NODE becomes
active and serves. Copy anything you need from the other node before running this.

CONFIG may be either node's: the command finds the active node. It needs the pair key
(keyFile in CONFIG). It waits until the pair is in sync again, printing progress on stderr.

Options:
      --keep NODE        the node whose data survives (required)
  -c, --config CONFIG    either node's tandem.yaml (required)
      --json             print one JSON object: {"ok": true, "kept", "discarded", "ms"}, or the error
      --timeout DURATION how long to wait until in sync again (default ${DEFAULT_TIMEOUT})
  -h, --help             show this help

Exit codes: 0 resolved and in sync, 1 refused (no split brain, unknown node) or not in sync in
time, 3 no agent answered, 2 usage error.`,
  async run(args) {
    const { values } = parseCommandArgs('resolve', args, {
      config: { type: 'string', short: 'c' },
      keep: { type: 'string' },
      json: { type: 'boolean' },
      timeout: { type: 'duration' },
    });
    if (values.help === true) {
      process.stdout.write(`${this.help}\n`);
      return EXIT.OK;
    }
    const configPath = requireOption('resolve', values.config, '-c CONFIG');
    const keep = requireOption('resolve', values.keep, '--keep NODE');
    const timeoutMs = values.timeout ?? parseDuration(DEFAULT_TIMEOUT)!;
    const json = values.json === true;
    try {
      const r = await resolve({ configPath, keep, timeoutMs, clock: systemClock, progress: (line) => process.stderr.write(`${line}\n`) });
      process.stdout.write(json ? `${JSON.stringify({ ok: true, ...r })}\n` : `split brain resolved: kept ${r.kept}, ${r.discarded}'s changes overwritten; in sync again after ${(r.ms / 1000).toFixed(1)} s\n`);
      return EXIT.OK;
    } catch (err) {
      if (json) {
        const e = TandemError.wrap(err, { code: 'TANDEM_ERR_INTERNAL', op: 'tandem resolve' });
        process.stdout.write(`${JSON.stringify({ ok: false, ...e.toJSON() })}\n`);
      }
      throw err;
    }
  },
};

export interface ResolveOptions {
  configPath: string;
  keep: string;
  timeoutMs: number;
  clock: Clock;
  progress: (line: string) => void;
}

export async function resolve(o: ResolveOptions): Promise<{ kept: string; discarded: string; ms: number }> {
  const t0 = o.clock.monotonic();
  const deadline = t0 + o.timeoutMs;
  const left = () => Math.max(1, Math.ceil(deadline - o.clock.monotonic()));
  const config = loadConfig(o.configPath);
  const token = controlTokenFor(config.keyFile);
  const op = `tandem resolve --keep ${o.keep}`;
  const nodes = [config.self, config.peer].map((n) => ({ name: n.name, url: controlUrlOf(n) }));
  if (!nodes.some((n) => n.name === o.keep)) {
    throw new TandemError({ code: 'TANDEM_ERR_USAGE', op, reason: `${o.keep} is not a node of this pair (${nodes.map((n) => n.name).join(', ')})`, hint: 'name one of the nodes under nodes: in CONFIG' });
  }
  const discarded = nodes.find((n) => n.name !== o.keep)!.name;
  const read = async (n: { name: string; url: string }): Promise<AgentStatus | undefined> => {
    try {
      return await fetchStatus(n.url, Math.min(STATUS_TIMEOUT_MS, left()));
    } catch {
      return undefined;
    }
  };
  const statuses = await Promise.all(nodes.map(read));
  const i = statuses.findIndex((s) => s?.role === 'active');
  if (i < 0) {
    if (statuses.every((s) => s === undefined)) {
      throw new TandemError({ code: 'TANDEM_ERR_CONTROL_UNREACHABLE', op, reason: 'neither agent answers', hint: 'start the agents (tandem agent -c CONFIG) and check nodes.<node>.control in CONFIG' });
    }
    throw new TandemError({ code: 'TANDEM_ERR_RESOLVE_REFUSED', op, reason: 'no node is active; nothing was changed', hint: 'tandem status -c CONFIG on both nodes: a split brain is resolved on the active node once the channel is up' });
  }
  const active = nodes[i]!;
  const sb = statuses[i]!.replication.splitBrain;
  if (sb === null) {
    throw new TandemError({ code: 'TANDEM_ERR_RESOLVE_REFUSED', op, reason: `${active.name} (active) reports no split brain (state ${statuses[i]!.state}); nothing was changed`, hint: 'tandem status -c CONFIG: replication.splitBrain names it when there is one' });
  }
  o.progress(`${active.name} is active and reports a split brain: ${sb.activeChanges} records there, ${sb.passiveChanges} on the passive since sequence ${sb.commonSeq} of ${sb.generation}`);
  o.progress(`asking ${active.name} to keep ${o.keep}; ${discarded}'s changes since the split will be overwritten`);
  const answer = await postControl(active.url, `/v1/resolve?keep=${encodeURIComponent(o.keep)}`, token, left());
  if (answer.kind === 'timed-out') {
    throw new TandemError({ code: 'TANDEM_ERR_SWITCHOVER_FAILED', op, reason: `${active.name} did not answer within the timeout; the resolution may still be running`, hint: 'tandem status -c CONFIG on both nodes' });
  }
  if (!answer.ok) {
    throw new TandemError({ code: answer.code === 'TANDEM_ERR_SWITCHOVER_FAILED' ? 'TANDEM_ERR_SWITCHOVER_FAILED' : 'TANDEM_ERR_RESOLVE_REFUSED', op, reason: `${active.name} answered: ${answer.message}`, hint: `read ${active.name}'s agent log` });
  }
  o.progress(`${active.name} answered: ${answer.message}; waiting until ${o.keep} is active and ${discarded} in sync`);
  const keptNode = nodes.find((n) => n.name === o.keep)!;
  let lastProgress = o.clock.monotonic();
  for (;;) {
    const s = await read(keptNode);
    const done = s !== undefined && s.role === 'active' && s.replication.splitBrain === null && s.peer.connected && s.replication.inSync;
    if (done) return { kept: o.keep, discarded, ms: Math.round(o.clock.monotonic() - t0) };
    if (o.clock.monotonic() - lastProgress >= PROGRESS_EVERY_MS) {
      lastProgress = o.clock.monotonic();
      const sync = s?.replication.sync;
      o.progress(s === undefined ? `${o.keep} does not answer yet` : `${o.keep} is ${s.role}, ${s.state}${sync ? `: ${sync.bytesDone} of ${sync.bytesTotal} bytes` : ''}`);
    }
    if (o.clock.monotonic() >= deadline) {
      throw new TandemError({ code: 'TANDEM_ERR_SWITCHOVER_FAILED', op, reason: `${o.keep} was kept, but the pair was not in sync again within the timeout`, hint: 'the synchronisation goes on by itself: tandem status -c CONFIG' });
    }
    await new Promise((res) => o.clock.setTimeout(() => res(undefined), POLL_MS));
  }
}
