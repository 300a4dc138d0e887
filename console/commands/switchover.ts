// `tandem switchover`: moves the active role to the peer on purpose (DESIGN "Switchover"). The
// agents do the work (stop, drain, hand over, start); this command finds the active node, refuses
// when a switchover could not be clean, asks the active through its control API, and says "done"
// only once both nodes' own status documents show the new roles and the new active serving.
import { systemClock, type Clock } from '../../shared/clock.ts';
import { loadConfig } from '../../shared/config/index.ts';
import { TandemError, type ErrorCode } from '../../shared/errors.ts';
import { parseDuration } from '../../shared/sizes.ts';
import type { AgentStatus } from '../../agent/control/index.ts';
import { switchoverReadiness, type SwitchoverReadiness } from '../../agent/operator/index.ts';
import { parseCommandArgs, requireOption } from '../args.ts';
import { EXIT, type Command } from '../command.ts';
import { callControl, controlTokenFor, controlUrlOf, fetchStatus, postSwitchover, type ControlCredentials } from '../control-client.ts';

const DEFAULT_TIMEOUT = '3m';
/** How long one status request may take before that agent counts as not answering. */
const STATUS_TIMEOUT_MS = 5000;
const CONFIRM_POLL_MS = 100;
const PROGRESS_EVERY_MS = 5000;

/** This command's own verdicts: refused (nothing was changed) or failed (did not complete). */
type SwitchoverCode = Extract<ErrorCode, 'TANDEM_ERR_SWITCHOVER_REFUSED' | 'TANDEM_ERR_SWITCHOVER_FAILED'>;

function switchoverError(code: SwitchoverCode, op: string, reason: string, hint: string, details: Record<string, unknown> = {}): TandemError {
  return new TandemError({ code, op, reason, hint, details });
}

/** One node as the command sees it: its control address, and its status or why there is none. */
export interface NodeView {
  name: string;
  url: string;
  status?: AgentStatus | undefined;
  error?: TandemError | undefined;
}

/** Who hands over to whom, and through which control API. */
export interface SwitchoverPlan {
  from: NodeView & { status: AgentStatus };
  to: NodeView;
}

/**
 * The prechecks, on the active's own status, in the agent's own words (agent/operator
 * switchoverReadiness, which the agent applies again when asked): nothing is asked of an agent
 * unless the passive is connected, really passive, not paused, and (unless `force`) caught up
 * within failover.maxLagOnFailover. Pure: returns the refusal instead of throwing.
 */
export function precheck(active: NodeView & { status: AgentStatus }, passive: NodeView, force: boolean, boundMs: number): TandemError | undefined {
  const r = switchoverReadiness(active.status, { force, boundMs, recordsPerSecond: undefined, settleMs: 0 });
  return r.ready ? undefined : refusalOf(r, active.name, passive.name);
}

function refusalOf(r: Pick<SwitchoverReadiness, 'refusal' | 'hint'>, from: string, to: string): TandemError {
  return switchoverError('TANDEM_ERR_SWITCHOVER_REFUSED', `tandem switchover: ${from} → ${to}`, `${r.refusal ?? 'not ready'}; nothing was changed`, r.hint ?? 'tandem status -c CONFIG on both nodes', { from, to });
}

/** Where the handover stands, read from both nodes' status after the active said the role moved. */
export type Confirmation = { kind: 'done' } | { kind: 'waiting'; what: string } | { kind: 'failed'; reason: string };

export function confirmation(oldActive: AgentStatus | undefined, newActive: AgentStatus | undefined): Confirmation {
  if (oldActive === undefined) return { kind: 'waiting', what: 'the old active\'s status' };
  if (newActive === undefined) return { kind: 'waiting', what: `${oldActive.peer.name}'s status` };
  if (oldActive.role !== 'passive') return { kind: 'waiting', what: `${oldActive.node} to become passive` };
  if (oldActive.failover.serving) return { kind: 'waiting', what: `${oldActive.node} to stop serving` };
  if (newActive.role !== 'active') return { kind: 'waiting', what: `${newActive.node} to become active` };
  if (newActive.failover.phase === 'busy') return { kind: 'waiting', what: `${newActive.node} to start the applications` };
  if (!newActive.failover.serving) {
    const alarm = newActive.alarms.find((a) => a.code === 'TANDEM_ERR_FAILOVER_FAILED');
    if (alarm !== undefined) return { kind: 'failed', reason: `${newActive.node} took over but does not serve: ${alarm.message}` };
    return { kind: 'waiting', what: `${newActive.node} to serve` };
  }
  return { kind: 'done' };
}

export const switchoverCommand: Command = {
  name: 'switchover',
  summary: 'move the active role to the peer (planned, nothing lost)',
  help: `Usage: tandem switchover -c CONFIG [--json] [--timeout DURATION] [--force] [--dry-run]

Moves the active role of the pair to the other node, on purpose: the active stops the
applications, drains its journal until the passive applied everything, hands the role over
with a new epoch, and the new active starts the applications. A step that fails rolls back to
the old active. CONFIG may be either node's: the command asks that node's agent, and the peer's
(from the same CONFIG) when that node is passive or does not answer. It needs the pair key
(keyFile in CONFIG).

Refused, with nothing changed, when the passive is not connected, replication is paused, or
the passive is not in sync: caught up within failover.maxLagOnFailover, with no
synchronisation or catch-up running (what status shows as in-sync; the drain closes the rest).

Options:
  -c, --config CONFIG    either node's tandem.yaml (required)
      --json             print one JSON object: {"ok": true, "from", "to", "ms"}, or the error
      --timeout DURATION how long to wait for the whole switchover (default ${DEFAULT_TIMEOUT})
      --force            switch over even if the passive is not in sync (the agent still
                         drains everything before it hands over)
      --dry-run          change nothing: say whether the switchover would start, what it would
                         do, and how long its drain would take at the passive's recent rate
  -h, --help             show this help

Exit codes: 0 the peer is active and serving and the old active is passive (--dry-run: it
would start), 1 refused or failed (the error says which, and whether the old active serves
again), 3 no agent answered, 2 usage error.`,
  async run(args) {
    const { values } = parseCommandArgs('switchover', args, {
      config: { type: 'string', short: 'c' },
      json: { type: 'boolean' },
      timeout: { type: 'duration' },
      force: { type: 'boolean' },
      'dry-run': { type: 'boolean' },
    });
    if (values.help === true) {
      process.stdout.write(`${this.help}\n`);
      return EXIT.OK;
    }
    const configPath = requireOption('switchover', values.config, '-c CONFIG');
    const timeoutMs = values.timeout ?? parseDuration(DEFAULT_TIMEOUT)!;
    const json = values.json === true;
    if (values['dry-run'] === true) return dryRun(configPath, values.force === true, json, timeoutMs);
    try {
      const r = await switchover({ configPath, timeoutMs, force: values.force === true, clock: systemClock, progress: (line) => process.stderr.write(`${line}\n`) });
      process.stdout.write(json ? `${JSON.stringify({ ok: true, ...r })}\n` : `switchover done: ${r.to} is active (was ${r.from}), in ${(r.ms / 1000).toFixed(1)} s\n`);
      return EXIT.OK;
    } catch (err) {
      // The error itself goes to stderr through the CLI (and sets the exit code); --json also
      // gets it as the one object on stdout.
      if (json) {
        const e = TandemError.wrap(err, { code: 'TANDEM_ERR_INTERNAL', op: 'tandem switchover' });
        process.stdout.write(`${JSON.stringify({ ok: false, ...e.toJSON() })}\n`);
      }
      throw err;
    }
  },
};

export interface SwitchoverOptions {
  configPath: string;
  timeoutMs: number;
  force: boolean;
  clock: Clock;
  progress: (line: string) => void;
}

/** Runs a switchover end to end; resolves once it is confirmed, throws a TandemError otherwise. */
export async function switchover(o: SwitchoverOptions): Promise<{ from: string; to: string; ms: number }> {
  const t0 = o.clock.monotonic();
  const deadline = t0 + o.timeoutMs;
  // At least a millisecond: a request given no time at all would not be tried.
  const left = () => Math.max(1, deadline - o.clock.monotonic());
  const config = loadConfig(o.configPath);
  // Read the key first: without it nothing can be asked, and nothing must have started.
  const token = controlTokenFor(config.keyFile);
  const self: NodeView = { name: config.self.name, url: controlUrlOf(config.self) };
  const peer: NodeView = { name: config.peer.name, url: controlUrlOf(config.peer) };
  const read = async (n: NodeView): Promise<NodeView> => {
    try {
      return { ...n, status: await fetchStatus(n.url, Math.min(STATUS_TIMEOUT_MS, left()), token), error: undefined };
    } catch (err) {
      return { ...n, status: undefined, error: TandemError.wrap(err, { code: 'TANDEM_ERR_CONTROL_UNREACHABLE', op: `GET ${n.url}/v1/status` }) };
    }
  };

  const plan = await findActive(self, peer, read, o.progress);
  const refusal = precheck(plan.from, plan.to, o.force, config.failover.maxLagOnFailover);
  if (refusal !== undefined) throw refusal;
  const r = plan.from.status.replication;
  o.progress(`${plan.to.name} is passive, connected${r.caughtUp ? `, in sync (lag ${r.lagMs} ms, ${Math.max(0, r.headSeq - r.appliedSeq)} records to drain)` : `, NOT in sync (--force): applied ${r.appliedSeq} of ${r.headSeq}`}`);

  o.progress(`asking ${plan.from.name} (${plan.from.url}) to hand over to ${plan.to.name}: stop the applications, drain, hand over; waiting`);
  const ticker = startProgressTicker(plan.from, read, o);
  let answer: Awaited<ReturnType<typeof postSwitchover>>;
  try {
    answer = await postSwitchover(plan.from.url, token, left(), o.force);
  } finally {
    ticker.stop();
  }
  const op = `tandem switchover: ${plan.from.name} → ${plan.to.name}`;
  const details = { from: plan.from.name, to: plan.to.name };
  if (answer.kind === 'timed-out') {
    throw switchoverError(
      'TANDEM_ERR_SWITCHOVER_FAILED',
      op,
      `${plan.from.name} did not answer within ${fmtSeconds(o.timeoutMs)}; the switchover may still be running`,
      'tandem status -c CONFIG on both nodes shows where it stands; the agent finishes or rolls back by itself',
      details,
    );
  }
  if (!answer.ok) {
    if (answer.code === 'TANDEM_ERR_SWITCHOVER_REFUSED') {
      // The agent's own check, a moment after the CLI's: the passive fell behind meanwhile.
      throw switchoverError('TANDEM_ERR_SWITCHOVER_REFUSED', op, `${plan.from.name} answered: ${answer.message}; nothing was changed`, 'tandem switchover --dry-run -c CONFIG says what holds it', details);
    }
    if (answer.message.startsWith('this node is not active')) {
      throw switchoverError('TANDEM_ERR_SWITCHOVER_REFUSED', op, `${plan.from.name} answered: ${answer.message}; nothing was changed`, 'the roles changed meanwhile: run the command again', details);
    }
    // Rolled back: say whether the old active serves again, from its own status.
    const after = await read(plan.from);
    const now = after.status === undefined ? 'its status could not be read' : `${after.name} is ${after.status.role}${after.status.failover.serving ? ' and serving' : ', NOT serving'}`;
    throw switchoverError('TANDEM_ERR_SWITCHOVER_FAILED', op, `${plan.from.name} answered: ${answer.message}; ${now}`, `read ${plan.from.name}'s agent log (and the scripts' output in it)`, details);
  }

  o.progress(`${plan.from.name} answered: ${answer.message}; confirming with both nodes`);
  let last: Confirmation = { kind: 'waiting', what: 'both nodes\' status' };
  let said = '';
  for (;;) {
    const [a, b] = await Promise.all([read(plan.from), read(plan.to)]);
    last = confirmation(a.status, b.status);
    if (last.kind === 'done') break;
    if (last.kind === 'failed') {
      // The role moved; what failed is the new active's start, which it reports as its own alarm.
      throw new TandemError({ code: 'TANDEM_ERR_FAILOVER_FAILED', op, reason: last.reason, hint: `${plan.to.name} runs start again by itself; read the "script: start failed" lines in its agent log`, details });
    }
    if (last.what !== said) {
      said = last.what;
      o.progress(`waiting for ${last.what}`);
    }
    if (o.clock.monotonic() >= deadline) {
      const unreachable = b.status === undefined ? b.error : a.status === undefined ? a.error : undefined;
      const reason = `the role moved as ${plan.from.name} says, but not confirmed within ${fmtSeconds(o.timeoutMs)}: still waiting for ${last.what}`;
      if (unreachable !== undefined) {
        throw new TandemError({ code: 'TANDEM_ERR_CONTROL_UNREACHABLE', op, reason: `${reason} (${unreachable.message})`, hint: 'tandem status -c CONFIG on both nodes', details });
      }
      throw switchoverError('TANDEM_ERR_SWITCHOVER_FAILED', op, reason, 'tandem status -c CONFIG on both nodes', details);
    }
    await new Promise((res) => o.clock.setTimeout(() => res(undefined), CONFIRM_POLL_MS));
  }
  return { from: plan.from.name, to: plan.to.name, ms: Math.round(o.clock.monotonic() - t0) };
}

/**
 * Finds the active node: this node if it is active, else its peer. Throws when neither is
 * active, or when the one that could be is not answering.
 */
async function findActive(self: NodeView, peer: NodeView, read: (n: NodeView) => Promise<NodeView>, progress: (line: string) => void): Promise<SwitchoverPlan> {
  progress(`asking ${self.name} (${self.url}) for its status`);
  const s = await read(self);
  if (s.status?.role === 'active') {
    progress(`${self.name} is active (${s.status.state}); it will be asked to hand over`);
    return { from: s as SwitchoverPlan['from'], to: peer };
  }
  progress(s.status === undefined ? `${self.name} does not answer (${s.error?.reason ?? 'no reason'}); asking its peer ${peer.name} (${peer.url})` : `${self.name} is passive; asking its peer ${peer.name} (${peer.url})`);
  const p = await read(peer);
  if (p.status?.role === 'active') {
    progress(`${peer.name} is active (${p.status.state}); it will be asked to hand over`);
    return { from: p as SwitchoverPlan['from'], to: s };
  }
  const op = 'tandem switchover: find the active node';
  const describe = (n: NodeView) => (n.status === undefined ? `${n.name} does not answer (${n.error?.reason ?? 'no reason'})` : `${n.name} is ${n.status.role} (${n.status.state})`);
  if (s.status === undefined && p.status === undefined) {
    throw new TandemError({
      code: 'TANDEM_ERR_CONTROL_UNREACHABLE',
      op,
      reason: `neither agent answers: ${describe(s)}; ${describe(p)}`,
      hint: 'start the agents (tandem agent -c CONFIG) and check nodes.<node>.control in CONFIG',
    });
  }
  if (s.status === undefined || p.status === undefined) {
    const silent = s.status === undefined ? s : p;
    throw new TandemError({
      code: 'TANDEM_ERR_CONTROL_UNREACHABLE',
      op,
      reason: `no active node answers: ${describe(s)}; ${describe(p)}`,
      hint: `if ${silent.name} is the active, start its agent or check nodes.${silent.name}.control; if it is gone, the passive takes over by itself (failover)`,
    });
  }
  throw switchoverError('TANDEM_ERR_SWITCHOVER_REFUSED', op, `neither node is active: ${describe(s)}; ${describe(p)}; nothing was changed`, 'a switchover needs an active node; tandem status -c CONFIG on both nodes says why neither is');
}

/**
 * tandem switchover --dry-run: asks the active what a switchover would do now (GET
 * /v1/switchover), prints it, and changes nothing. Exit 0 when it would start.
 */
async function dryRun(configPath: string, force: boolean, json: boolean, timeoutMs: number): Promise<number> {
  const config = loadConfig(configPath);
  const creds = controlTokenFor(config.keyFile);
  const self: NodeView = { name: config.self.name, url: controlUrlOf(config.self) };
  const peer: NodeView = { name: config.peer.name, url: controlUrlOf(config.peer) };
  const read = async (n: NodeView): Promise<NodeView> => {
    try {
      return { ...n, status: await fetchStatus(n.url, Math.min(STATUS_TIMEOUT_MS, timeoutMs), creds), error: undefined };
    } catch (err) {
      return { ...n, status: undefined, error: TandemError.wrap(err, { code: 'TANDEM_ERR_CONTROL_UNREACHABLE', op: `GET ${n.url}/v1/status` }) };
    }
  };
  const plan = await findActive(self, peer, read, () => {});
  const a = await callControl(plan.from.url, 'GET', `/v1/switchover${force ? '?force=1' : ''}`, creds as ControlCredentials, Math.min(STATUS_TIMEOUT_MS, timeoutMs));
  if (a.httpStatus !== 200) {
    throw new TandemError({ code: 'TANDEM_ERR_CONTROL_REFUSED', op: `GET ${plan.from.url}/v1/switchover`, reason: typeof a.body.message === 'string' ? a.body.message : `HTTP ${a.httpStatus}`, hint: 'this agent may predate --dry-run: tandem status -c CONFIG shows whether the passive is in sync' });
  }
  const r = a.body as SwitchoverReadiness;
  if (json) process.stdout.write(`${JSON.stringify({ dryRun: true, ...r })}\n`);
  else {
    const lines = [
      r.ready ? `switchover ${r.from} → ${r.to} would start now (nothing was changed):` : `switchover ${r.from} → ${r.to} would be refused: ${r.refusal ?? ''}`,
      ...(r.ready ? r.steps.map((st, i) => `  ${i + 1}. ${st}`) : [`hint: ${r.hint ?? ''}`]),
      `drain now: ${r.drain.records} records, ${r.drain.bytes} bytes, ${r.drain.pendingPaths} paths not journaled yet, lag ${r.drain.lagMs} ms; estimate ${r.drain.estimateMs === null ? 'unknown (no apply rate measured yet)' : `${(r.drain.estimateMs / 1000).toFixed(1)} s`}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  return r.ready ? EXIT.OK : EXIT.FAILED;
}

/** While the active works on the POST, one line every few seconds with where it stands. */
function startProgressTicker(active: NodeView, read: (n: NodeView) => Promise<NodeView>, o: SwitchoverOptions): { stop(): void } {
  const t0 = o.clock.monotonic();
  let stopped = false;
  let timer = o.clock.setTimeout(tick, PROGRESS_EVERY_MS);
  function tick(): void {
    void read(active).then((n) => {
      if (stopped) return;
      const where = n.status === undefined ? 'its status does not answer' : `${n.name} is ${n.status.role}, ${n.status.state}`;
      o.progress(`still waiting (${fmtSeconds(o.clock.monotonic() - t0)}): ${where}`);
      timer = o.clock.setTimeout(tick, PROGRESS_EVERY_MS);
    });
  }
  return {
    stop() {
      stopped = true;
      timer.cancel();
    },
  };
}

function fmtSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
