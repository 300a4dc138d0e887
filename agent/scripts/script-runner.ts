// Runs one of the node's three scripts (start, stop, check) and reports how it ended. It never
// throws: a missing script, a crash or a timeout is a failed result the caller decides about.
//
// Serialisation: start and stop of one runner never overlap; they run one after the other in
// the order asked (a demotion's stop after a restart's start, never beside it). check never
// overlaps itself, and waits until no start or stop is running or queued, so it does not judge
// an application that is half started. A start or stop does not wait for a check in flight: a
// node that must stop serving must not queue behind a slow health check.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TandemError, describeCause, errnoOf } from '../../shared/errors.ts';
import { systemClock, type Clock, type TimerHandle } from '../../shared/clock.ts';
import type { Logger } from '../../shared/log.ts';
import type { Role } from '../../shared/protocol/index.ts';
import { LineBudget, OutputLines } from './output-lines.ts';
import { groupAlive, signalGroup } from './process-group.ts';

export type ScriptName = 'start' | 'stop' | 'check' | 'fence';

/** Why the script runs; it reaches the script as TANDEM_ROLE, TANDEM_REASON, TANDEM_GENERATION. */
export interface ScriptContext {
  role: Role;
  reason: string;
  generation: string;
}

export interface ScriptResult {
  name: ScriptName;
  /** Exited 0 within its timeout. */
  ok: boolean;
  exitCode: number | null;
  /** The signal that ended the script, e.g. SIGTERM after a timeout. */
  signal: string | null;
  timedOut: boolean;
  durationMs: number;
  /** The script could not be run at all (missing, not executable, spawn failure). */
  error?: string;
  /**
   * This node could not start the script for lack of its own resources (file descriptors,
   * processes, memory: EMFILE, ENFILE, EAGAIN, ENOMEM). The run says nothing about the
   * application, and the application monitor does not count it as a failed check.
   */
  localFailure?: boolean;
}

/** One entry of `history()`: the result with when and why it ran. */
export interface ScriptRun extends ScriptResult {
  /** Wall-clock time the run began (ms since the epoch). */
  at: number;
  role: Role;
  reason: string;
  generation: string;
}

export interface ScriptRunnerOptions {
  /** Absolute paths of the scripts (config scripts.start/stop/check, and scripts.fence when set). */
  paths: { start: string; stop: string; check: string; fence?: string | undefined };
  /** Longest run of start and stop (scripts.timeout). */
  timeoutMs: number;
  /** Longest run of check (scripts.checkTimeout). */
  checkTimeoutMs: number;
  /** Reaches the scripts as TANDEM_NODE, TANDEM_PEER and TANDEM_PAIR. */
  env: { node: string; peer: string; pair: string };
  /**
   * The file mode creation mask scripts (and the applications they start) run with. The agent
   * itself runs with 077 so that everything it creates is private; its children get the mask
   * the agent was started with instead, through `/bin/sh -c 'umask …; exec script'`.
   * Undefined: they inherit the agent's.
   */
  umask?: number | undefined;
  log: Logger;
  clock?: Clock;
}

/** After SIGTERM to a timed-out script's group, SIGKILL follows this much later. */
export const KILL_GRACE_MS = 2000;
/** Results kept for status. */
export const SCRIPT_HISTORY_LENGTH = 50;
/**
 * After the script exits, how long its last output may take to arrive. A daemon the script
 * left behind may hold the pipes open for ever; it must not hold the run open with them.
 */
export const OUTPUT_DRAIN_MS = 200;
/** How often a killed group is looked at until it is gone. */
const GROUP_POLL_MS = 50;
/** Spawn errors that are this node's own shortage, not the script's fault. */
const LOCAL_SHORTAGE = new Set(['EMFILE', 'ENFILE', 'EAGAIN', 'ENOMEM']);

const noop = () => {};

export class ScriptRunner {
  private readonly paths: ScriptRunnerOptions['paths'];
  private readonly timeoutMs: number;
  private readonly checkTimeoutMs: number;
  private readonly env: ScriptRunnerOptions['env'];
  private readonly umask: number | undefined;
  private readonly log: Logger;
  private readonly clock: Clock;
  /** The last start or stop asked for: the next one runs after it. */
  private startStopTail: Promise<unknown> = Promise.resolve();
  /** Start and stop runs asked for and not yet finished. */
  private startStopPending = 0;
  private checkTail: Promise<unknown> = Promise.resolve();
  private readonly runs: ScriptRun[] = [];

  constructor(opts: ScriptRunnerOptions) {
    for (const name of ['start', 'stop', 'check', 'fence'] as const) {
      const p = opts.paths[name];
      if (p === undefined && name === 'fence') continue;
      if (p === undefined || !path.isAbsolute(p)) throw invalid(`scripts.${name}`, `must be an absolute path, got ${JSON.stringify(p)}`);
    }
    if (!(opts.timeoutMs > 0)) throw invalid('scripts.timeout', `must be positive, got ${opts.timeoutMs}`);
    if (!(opts.checkTimeoutMs > 0)) throw invalid('scripts.checkTimeout', `must be positive, got ${opts.checkTimeoutMs}`);
    this.paths = { ...opts.paths };
    this.timeoutMs = opts.timeoutMs;
    this.checkTimeoutMs = opts.checkTimeoutMs;
    this.env = { ...opts.env };
    if (opts.umask !== undefined && !(Number.isInteger(opts.umask) && opts.umask >= 0 && opts.umask <= 0o777)) {
      throw new TandemError({ code: 'TANDEM_ERR_INTERNAL', op: 'create the script runner', reason: `bad umask ${opts.umask}` });
    }
    this.umask = opts.umask;
    this.log = opts.log.child({ component: 'scripts' });
    this.clock = opts.clock ?? systemClock;
  }

  /** Runs script `name`, queued as the header describes; resolves when it (and, after a timeout, its group) ended. */
  run(name: ScriptName, ctx: ScriptContext): Promise<ScriptResult> {
    if (name === 'check') {
      const p = this.checkTail.then(async () => {
        while (this.startStopPending > 0) await this.startStopTail;
        return this.execute(name, ctx);
      });
      this.checkTail = p.then(noop, noop);
      return p;
    }
    this.startStopPending += 1;
    const p = this.startStopTail.then(() => this.execute(name, ctx)).finally(() => (this.startStopPending -= 1));
    this.startStopTail = p.then(noop, noop);
    return p;
  }

  /** The last results, oldest first (at most SCRIPT_HISTORY_LENGTH). */
  history(): ScriptRun[] {
    return this.runs.map((r) => ({ ...r }));
  }

  private async execute(name: ScriptName, ctx: ScriptContext): Promise<ScriptResult> {
    const at = this.clock.now();
    const began = this.clock.monotonic();
    let outcome: Omit<ScriptResult, 'name' | 'durationMs'>;
    try {
      const file = this.paths[name] ?? '';
      const problem = file === '' ? `scripts.${name} is not set` : await notRunnable(file);
      if (problem !== undefined) outcome = { ok: false, exitCode: null, signal: null, timedOut: false, error: `run script ${name} ${file}: ${problem}` };
      else outcome = await this.spawnAndWait(name, file, ctx);
    } catch (err) {
      // Only a bug gets here (spawn itself reports through events), yet a caller deciding
      // about failover must still get a result.
      outcome = { ok: false, exitCode: null, signal: null, timedOut: false, error: `run script ${name}: ${describeCause(err)}` };
    }
    const result: ScriptResult = { name, ...outcome, durationMs: Math.round(this.clock.monotonic() - began) };
    this.runs.push({ ...result, at, role: ctx.role, reason: ctx.reason, generation: ctx.generation });
    if (this.runs.length > SCRIPT_HISTORY_LENGTH) this.runs.shift();
    const fields = {
      script: name,
      exitCode: result.exitCode,
      signal: result.signal,
      timedOut: result.timedOut,
      durationMs: result.durationMs,
      reason: ctx.reason,
      role: ctx.role,
      generation: ctx.generation,
      ...(result.error === undefined ? {} : { error: result.error }),
      ...(result.localFailure === true ? { localFailure: true } : {}),
    };
    // A healthy check every few seconds is not news; every other outcome is.
    if (result.ok) this.log[name === 'check' ? 'debug' : 'info'](fields, `script: ${name} ok`);
    else this.log.warn(fields, `script: ${name} failed`);
    return result;
  }

  private spawnAndWait(name: ScriptName, file: string, ctx: ScriptContext): Promise<Omit<ScriptResult, 'name' | 'durationMs'>> {
    const timeoutMs = name === 'check' ? this.checkTimeoutMs : this.timeoutMs;
    const budget = new LineBudget();
    const emit = (level: 'info' | 'warn', stream: 'stdout' | 'stderr') => (line: string, truncated: boolean) => {
      if (budget.take()) this.log[level]({ script: name, stream, ...(truncated ? { truncated: true } : {}) }, line);
    };
    const outLines = new OutputLines(emit('info', 'stdout'));
    const errLines = new OutputLines(emit('warn', 'stderr'));
    this.log.debug({ script: name, reason: ctx.reason, role: ctx.role, generation: ctx.generation }, `script: ${name} begin`);

    return new Promise((resolve) => {
      let settled = false;
      let timedOut = false;
      let child: ChildProcess | undefined;
      let timer: TimerHandle | undefined;
      let drain: TimerHandle | undefined;
      const finish = (outcome: Omit<ScriptResult, 'name' | 'durationMs'>) => {
        if (settled) return;
        settled = true;
        timer?.cancel();
        drain?.cancel();
        child?.stdout?.destroy();
        child?.stderr?.destroy();
        outLines.end();
        errLines.end();
        if (budget.dropped > 0) this.log.warn({ script: name, droppedLines: budget.dropped }, `script: ${name} output cut`);
        resolve(outcome);
      };

      // The error listener comes first: a spawn that fails for lack of descriptors (EMFILE)
      // returns a child without pipes and reports the failure on the next tick; touching its
      // output before listening crashed the agent.
      const [command, args] =
        this.umask === undefined ? [file, []] : ['/bin/sh', ['-c', `umask ${this.umask.toString(8).padStart(4, '0')} && exec "$0"`, file]];
      try {
        child = spawn(command, args, {
          // Its own process group: a timeout kills everything the script started, and a Ctrl-C
          // meant for the agent does not reach the application the start script launched.
          detached: true,
          cwd: path.dirname(file),
          stdio: ['ignore', 'pipe', 'pipe'],
          env: {
            ...process.env,
            TANDEM_NODE: this.env.node,
            TANDEM_PEER: this.env.peer,
            TANDEM_PAIR: this.env.pair,
            TANDEM_ROLE: ctx.role,
            TANDEM_REASON: ctx.reason,
            TANDEM_GENERATION: ctx.generation,
            TANDEM_SCRIPT: name,
          },
        });
      } catch (err) {
        resolve(spawnFailed(name, file, err));
        return;
      }
      child.once('error', (err) => {
        // Spawn failed (the file vanished or lost its x bit since the check, or this node ran
        // out of descriptors or processes), or a kill failed.
        if (child.pid === undefined) finish(spawnFailed(name, file, err));
        else this.log.warn({ script: name, err }, `script: ${name} process error`);
      });
      // Without pipes the spawn failed: its error follows on the next tick.
      if (!child.stdout || !child.stderr) return;
      child.stdout.setEncoding('utf8');
      child.stderr.setEncoding('utf8');
      child.stdout.on('data', (s: string) => outLines.push(s));
      child.stderr.on('data', (s: string) => errLines.push(s));
      // Destroying the pipes below must not surface as an unhandled error.
      child.stdout.on('error', noop);
      child.stderr.on('error', noop);

      let exit: { code: number | null; signal: string | null } | undefined;
      let groupDone = false;
      let outputDone = 0;
      const maybeFinish = () => {
        if (exit === undefined || !groupDone || outputDone < 2) return;
        finish({ ok: !timedOut && exit.code === 0, exitCode: exit.code, signal: exit.signal, timedOut });
      };
      for (const s of [child.stdout, child.stderr]) {
        s.once('close', () => {
          outputDone += 1;
          maybeFinish();
        });
      }

      child.once('exit', (code, signal) => {
        exit = { code, signal };
        timer?.cancel();
        if (!timedOut) groupDone = true;
        drain = this.clock.setTimeout(() => {
          drain = undefined;
          outputDone = 2;
          maybeFinish();
        }, OUTPUT_DRAIN_MS);
        maybeFinish();
      });

      timer = this.clock.setTimeout(() => {
        timedOut = true;
        const pgid = child.pid;
        if (pgid === undefined) return;
        this.log.warn({ script: name, timeoutMs, pid: pgid }, `script: ${name} timed out; terminating its process group`);
        void this.killGroup(pgid).then(() => {
          groupDone = true;
          maybeFinish();
        });
      }, timeoutMs);
    });
  }

  /** SIGTERM to the group, SIGKILL after KILL_GRACE_MS if anything is left; resolves when it is gone. */
  private async killGroup(pgid: number): Promise<void> {
    const send = (signal: NodeJS.Signals): boolean => {
      try {
        return signalGroup(pgid, signal);
      } catch (err) {
        this.log.error({ err, pid: pgid, signal }, 'script: cannot signal the process group');
        return false;
      }
    };
    if (!send('SIGTERM')) return;
    const sleep = (ms: number) => new Promise<void>((r) => this.clock.setTimeout(r, ms));
    const deadline = this.clock.monotonic() + KILL_GRACE_MS;
    while (this.clock.monotonic() < deadline) {
      if (!(await groupAlive(pgid))) return;
      await sleep(GROUP_POLL_MS);
    }
    this.log.warn({ pid: pgid }, 'script: process group outlived SIGTERM; sending SIGKILL');
    if (!send('SIGKILL')) return;
    // SIGKILL cannot be ignored, but a process in uninterruptible sleep (a dead NFS mount) takes
    // its time; wait a little, then report rather than hang the caller.
    const killDeadline = this.clock.monotonic() + KILL_GRACE_MS;
    while (this.clock.monotonic() < killDeadline) {
      if (!(await groupAlive(pgid))) return;
      await sleep(GROUP_POLL_MS);
    }
    this.log.error({ pid: pgid }, 'script: process group still alive after SIGKILL');
  }
}

function spawnFailed(name: ScriptName, file: string, err: unknown): Omit<ScriptResult, 'name' | 'durationMs'> {
  const code = errnoOf(err);
  return {
    ok: false,
    exitCode: null,
    signal: null,
    timedOut: false,
    error: `run script ${name} ${file}: ${describeCause(err)}`,
    ...(code !== undefined && LOCAL_SHORTAGE.has(code) ? { localFailure: true } : {}),
  };
}

/** Why `file` cannot be run, or undefined when it can. */
async function notRunnable(file: string): Promise<string | undefined> {
  try {
    const st = await fs.promises.stat(file);
    if (!st.isFile()) return 'not a regular file';
    await fs.promises.access(file, fs.constants.X_OK);
    return undefined;
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') return 'no such file';
    if (code === 'EACCES') return 'not executable (chmod +x it, and check the folders above it)';
    return describeCause(err);
  }
}

function invalid(key: string, reason: string): TandemError {
  return new TandemError({
    code: 'TANDEM_ERR_CONFIG_INVALID',
    op: 'create script runner',
    reason: `key "${key}": ${reason}`,
    hint: 'see docs/configuration.md, section Scripts',
    details: { key },
  });
}
