// `tandem verify`: compares the passive's tree with the active's, block by block (hashes only
// over the wire), and with --repair resends just what differs. The active agent does the work;
// this command finds it (either node's CONFIG will do), starts or joins its verification,
// follows its progress, and reports. An agent that restarts meanwhile resumes the verification
// at its cursor, and this command waits for it (up to --timeout).
import { systemClock, type Clock } from '../../shared/clock.ts';
import { loadConfig } from '../../shared/config/index.ts';
import { TandemError } from '../../shared/errors.ts';
import { formatBytes, parseDuration } from '../../shared/sizes.ts';
import type { VerifyRecord, VerifySummary } from '../../agent/verify/index.ts';
import { parseCommandArgs, requireOption } from '../args.ts';
import { EXIT, type Command } from '../command.ts';
import { callVerify, controlTokenFor, controlUrlOf } from '../control-client.ts';

const DEFAULT_TIMEOUT = '24h';
const POLL_MS = 200;
const PROGRESS_EVERY_MS = 5000;
/** Paths listed in the output at most (the count is always complete). */
const MAX_LISTED_PATHS = 10_000;

export type VerifyReport = VerifyRecord & { summary: VerifySummary };

/** The one JSON object `--json` prints. */
export interface VerifyOutput {
  differences: number;
  paths: string[];
  id: string;
  repair: boolean;
  repaired: number;
  bytesRepaired: number;
  details: { path: string; what: string; blocks: number; repaired: boolean }[];
  changing: string[];
  pathsDone: number;
  bytesDone: number;
  durationMs: number;
  node: string;
}

/** Exit code of a finished verification: 0 nothing (left) differs, 4 differences remain. */
export function exitCodeFor(out: Pick<VerifyOutput, 'differences' | 'repair' | 'repaired'>): number {
  if (out.differences === 0) return EXIT.OK;
  return out.repair && out.repaired === out.differences ? EXIT.OK : EXIT.DIFFERENCES;
}

export function outputOf(r: VerifyRecord, node: string): VerifyOutput {
  const listed = r.differences.slice(0, MAX_LISTED_PATHS);
  return {
    differences: r.differences.length,
    paths: listed.map((d) => `${d.root}/${d.path}`),
    id: r.id,
    repair: r.repair,
    repaired: r.differences.filter((d) => d.repaired === true).length,
    bytesRepaired: r.bytesRepaired,
    details: listed.map((d) => ({ path: `${d.root}/${d.path}`, what: d.what, blocks: d.blocks, repaired: d.repaired === true })),
    changing: r.changing.slice(0, MAX_LISTED_PATHS),
    pathsDone: r.pathsDone,
    bytesDone: r.bytesDone,
    durationMs: (r.finishedAt ?? r.startedAt) - r.startedAt,
    node,
  };
}

export const verifyCommand: Command = {
  name: 'verify',
  summary: 'compare both sides block by block; --repair resends what differs',
  help: `Usage: tandem verify -c CONFIG [--json] [--repair] [--timeout DURATION]

Compares every protected path of the passive with the active's, block by block: the active
reads and hashes its files (at most verify.rate bytes per second), the passive hashes the same
files, and only the hashes cross the channel. It runs while replication goes on: a path that is
being written, or that was replicated between the two reads, is not a difference; a path that
differs is compared again a moment later before it counts. Paths present on one side only,
directories, symbolic links, sizes, modes and modification times are compared too.

With --repair, the active journals exactly what differs (the differing blocks, the size, the
metadata, a missing or extra path) in order with replication, and the command waits until the
passive has applied it.

CONFIG may be either node's: the command asks the active node. An interrupted verification
(the agent stopped or restarted, the passive went away) resumes where it stopped; running the
command again joins the verification that is running.

Options:
  -c, --config CONFIG    either node's tandem.yaml (required)
      --json             print one JSON object: {"differences": N, "paths": [...], ...}
      --repair           resend what differs, then report what was repaired
      --timeout DURATION how long to wait for the result (default ${DEFAULT_TIMEOUT})
  -h, --help             show this help

Progress goes to standard error every few seconds; the result to standard output.

Exit codes: 0 no differences (with --repair: none left, every difference was repaired),
4 differences found (and not all repaired), 1 the verification failed or was refused,
3 no agent answered, 2 usage error.`,
  async run(args) {
    const { values } = parseCommandArgs('verify', args, {
      config: { type: 'string', short: 'c' },
      json: { type: 'boolean' },
      repair: { type: 'boolean' },
      timeout: { type: 'duration' },
    });
    if (values.help === true) {
      process.stdout.write(`${this.help}\n`);
      return EXIT.OK;
    }
    const configPath = requireOption('verify', values.config, '-c CONFIG');
    const timeoutMs = values.timeout ?? parseDuration(DEFAULT_TIMEOUT)!;
    const json = values.json === true;
    try {
      const out = await verify({ configPath, repair: values.repair === true, timeoutMs, clock: systemClock, progress: (line) => process.stderr.write(`${line}\n`) });
      process.stdout.write(json ? `${JSON.stringify(out)}\n` : formatOutput(out));
      return exitCodeFor(out);
    } catch (err) {
      if (json) {
        const e = TandemError.wrap(err, { code: 'TANDEM_ERR_INTERNAL', op: 'tandem verify' });
        process.stdout.write(`${JSON.stringify({ ok: false, ...e.toJSON() })}\n`);
      }
      throw err;
    }
  },
};

function formatOutput(o: VerifyOutput): string {
  const lines = [`verify ${o.id} on ${o.node}: ${o.pathsDone} paths, ${formatBytes(o.bytesDone)} compared in ${(o.durationMs / 1000).toFixed(1)} s`];
  if (o.differences === 0) lines.push('no differences');
  else lines.push(`${o.differences} difference${o.differences === 1 ? '' : 's'}${o.repair ? `, ${o.repaired} repaired (${formatBytes(o.bytesRepaired)} resent)` : ''}:`);
  for (const d of o.details) lines.push(`  ${d.path}  ${d.what}${d.blocks > 0 ? ` (${d.blocks} block${d.blocks === 1 ? '' : 's'})` : ''}${d.repaired ? '  repaired' : ''}`);
  if (o.changing.length > 0) lines.push(`${o.changing.length} path(s) kept changing while compared (not verified): ${o.changing.slice(0, 10).join(', ')}${o.changing.length > 10 ? ', …' : ''}`);
  return `${lines.join('\n')}\n`;
}

export interface VerifyOptions {
  configPath: string;
  repair: boolean;
  timeoutMs: number;
  clock: Clock;
  progress: (line: string) => void;
}

/** Starts or joins a verification on the active node and waits for its result. */
export async function verify(o: VerifyOptions): Promise<VerifyOutput> {
  const config = loadConfig(o.configPath);
  const token = controlTokenFor(config.keyFile);
  const deadline = o.clock.monotonic() + o.timeoutMs;
  const nodes = [
    { name: config.self.name, url: controlUrlOf(config.self) },
    { name: config.peer.name, url: controlUrlOf(config.peer) },
  ];

  // Find the active: it accepts the POST; a passive refuses it with TANDEM_ERR_VERIFY_REFUSED.
  let target: (typeof nodes)[number] | undefined;
  let id = '';
  const refusals: string[] = [];
  let answered = false;
  for (const n of nodes) {
    try {
      const a = await callVerify(n.url, 'POST', token, o.repair);
      answered = true;
      if (a.httpStatus === 202) {
        target = n;
        id = String(a.body.verify?.id ?? '');
        const s = a.body.verify as VerifySummary | undefined;
        o.progress(`${n.name} is active: verification ${id}${s !== undefined && s.pathsDone > 0 ? ` (running: ${s.pathsDone} paths done)` : ''}${o.repair ? ', with repair' : ''}`);
        break;
      }
      if (a.body.code === 'TANDEM_ERR_VERIFY_BUSY') {
        throw new TandemError({ code: 'TANDEM_ERR_VERIFY_BUSY', op: 'tandem verify', reason: String(a.body.message ?? 'busy'), hint: String(a.body.hint ?? 'wait for it to finish') });
      }
      refusals.push(`${n.name}: ${String(a.body.message ?? `HTTP ${a.httpStatus}`)}`);
    } catch (err) {
      if (err instanceof TandemError && err.code !== 'TANDEM_ERR_CONTROL_UNREACHABLE') throw err;
      refusals.push(`${n.name}: ${(err as Error).message}`);
    }
  }
  if (target === undefined) {
    throw new TandemError({
      code: !answered ? 'TANDEM_ERR_CONTROL_UNREACHABLE' : 'TANDEM_ERR_VERIFY_REFUSED',
      op: 'tandem verify: find the active node',
      reason: `no active node accepted the verification: ${refusals.join('; ')}`,
      hint: 'tandem status -c CONFIG on both nodes: a verification needs an active node',
    });
  }

  // Follow it. The agent may restart meanwhile: it resumes the same verification by itself.
  let lastProgress = o.clock.monotonic();
  let unreachableSince: number | undefined;
  for (;;) {
    if (o.clock.monotonic() > deadline) {
      throw new TandemError({ code: 'TANDEM_ERR_VERIFY_FAILED', op: `tandem verify ${id}`, reason: `no result within ${fmtSeconds(o.timeoutMs)}; the verification goes on in the agent`, hint: 'run tandem verify again to join it; tandem status shows its progress' });
    }
    let report: VerifyReport | undefined;
    try {
      const a = await callVerify(target.url, 'GET', token, false);
      if (a.httpStatus !== 200) throw new TandemError({ code: 'TANDEM_ERR_VERIFY_FAILED', op: `tandem verify ${id}`, reason: String(a.body.message ?? `HTTP ${a.httpStatus}`), hint: 'the node may have changed role: tandem status -c CONFIG' });
      report = (a.body.verify ?? undefined) as VerifyReport | undefined;
      if (unreachableSince !== undefined) o.progress(`${target.name} answers again`);
      unreachableSince = undefined;
    } catch (err) {
      if (!(err instanceof TandemError) || err.code !== 'TANDEM_ERR_CONTROL_UNREACHABLE') throw err;
      if (unreachableSince === undefined) o.progress(`${target.name} does not answer (${err.reason}); waiting for it to come back`);
      unreachableSince ??= o.clock.monotonic();
    }
    if (report !== undefined && report.id !== id) {
      throw new TandemError({ code: 'TANDEM_ERR_VERIFY_FAILED', op: `tandem verify ${id}`, reason: `${target.name} now reports verification ${report.id}`, hint: 'another operator started a new one; run tandem verify again' });
    }
    if (report?.phase === 'done') return outputOf(report, target.name);
    if (report?.phase === 'failed') {
      const e = report.error;
      throw new TandemError({ code: 'TANDEM_ERR_VERIFY_FAILED', op: `tandem verify ${id}`, reason: e?.message ?? 'failed', hint: e?.hint ?? `read ${target.name}'s agent log` });
    }
    if (report !== undefined && o.clock.monotonic() - lastProgress >= PROGRESS_EVERY_MS) {
      lastProgress = o.clock.monotonic();
      const s = report.summary;
      o.progress(`verify ${id}: ${s.state}, ${s.pathsDone} paths, ${formatBytes(s.bytesDone)} compared, ${s.differences} difference(s)${s.waiting !== null ? `; waiting: ${s.waiting}` : ''}`);
    }
    await new Promise((res) => o.clock.setTimeout(() => res(undefined), POLL_MS));
  }
}

function fmtSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
