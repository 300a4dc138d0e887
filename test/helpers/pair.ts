// A real pair for integration tests: the demo pair written into a temp dir, its two agents run
// as real processes (`tandem agent -c`), driven and observed only through the CLI and the
// control API, like an operator would.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { AgentStatus } from '../../agent/control/index.ts';
import { fetchStatus } from '../../console/control-client.ts';
import { initDemoPair, type DemoNode, type DemoPair } from '../../console/demo/init-pair.ts';
import { testPortRange } from './ports.ts';
import { exited, spawnTracked, TEST_MARKER } from './processes.ts';
import { digestTree, treeDiff } from './tree-hash.ts';
import { AGENT_NODE_ARGS, agentEnv } from '../../shared/agent-node-args.ts';

export const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const TANDEM_BIN = path.join(PROJECT, 'bin/tandem.mjs');

export type NodeName = 'alpha' | 'beta';

export interface PairOptions {
  /** Changes applied to both tandem.yaml documents before anything starts. */
  config?: (doc: Record<string, any>, node: NodeName) => void;
  /** Remove the demo's sample files, so tests can count every byte they put there. */
  emptyData?: boolean;
}

/** Defaults that make tests quick without changing what is tested. */
function testDefaults(doc: Record<string, any>): void {
  doc.capture = { settle: '30ms', renameWindow: '80ms', scanInterval: '5s', ...(doc.capture ?? {}) };
  doc.channel = { reconnectMin: '50ms', reconnectMax: '500ms', ...(doc.channel ?? {}) };
  doc.apply = { retryMin: '100ms', retryMax: '1s', ...(doc.apply ?? {}) };
}

export class TestPair {
  readonly procs = new Map<NodeName, ChildProcess>();
  private constructor(
    readonly dir: string,
    readonly info: DemoPair,
  ) {}

  static async create(opts: PairOptions = {}): Promise<TestPair> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-it-'));
    const info = await initDemoPair(dir, { appPort: 0, portRange: testPortRange() });
    if (opts.emptyData === true) {
      for (const n of info.nodes) for (const e of fs.readdirSync(n.dataDir)) fs.rmSync(path.join(n.dataDir, e), { recursive: true });
    }
    for (const n of info.nodes) {
      const doc = parseYaml(fs.readFileSync(n.config, 'utf8')) as Record<string, any>;
      testDefaults(doc);
      opts.config?.(doc, n.name as NodeName);
      fs.writeFileSync(n.config, stringifyYaml(doc));
    }
    return new TestPair(dir, info);
  }

  node(name: NodeName): DemoNode {
    return this.info.nodes.find((n) => n.name === name)!;
  }

  data(name: NodeName, rel = ''): string {
    return path.join(this.node(name).dataDir, rel);
  }

  /**
   * Starts `tandem agent -c` for a node (with `env` added to the test's) and waits until its
   * control API answers. `wrap` runs it through a command that execs it in place (e.g.
   * `prlimit --nofile=128:128`): same pid.
   */
  async start(name: NodeName, opts: { env?: Record<string, string>; wrap?: string[] } = {}): Promise<ChildProcess> {
    const n = this.node(name);
    const out = fs.openSync(path.join(path.dirname(n.config), 'agent.out'), 'a');
    const argv = [process.execPath, `--title=${TEST_MARKER}`, ...AGENT_NODE_ARGS, TANDEM_BIN, 'agent', '-c', n.config];
    const [command, ...args] = [...(opts.wrap ?? []), ...argv] as [string, ...string[]];
    const child = spawnTracked(command, args, { stdio: ['ignore', out, out], env: agentEnv({ ...process.env, ...opts.env }) });
    fs.closeSync(out);
    this.procs.set(name, child);
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`agent ${name} exited with ${child.exitCode}: ${this.tail(name)}`);
      try {
        await fetchStatus(n.controlUrl, 1000);
        return child;
      } catch {
        if (Date.now() > deadline) throw new Error(`agent ${name} did not answer: ${this.tail(name)}`);
        await sleep(50);
      }
    }
  }

  async startBoth(): Promise<void> {
    await Promise.all([this.start('alpha'), this.start('beta')]);
  }

  /** The pid of the agent this pair started as `name`, while it runs. */
  pid(name: NodeName): number | undefined {
    const child = this.procs.get(name);
    return child === undefined || child.exitCode !== null || child.signalCode !== null ? undefined : child.pid;
  }

  /** Sends `signal` and waits for the process to be gone. */
  async kill(name: NodeName, signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    const child = this.procs.get(name);
    if (child === undefined) return null;
    child.kill(signal);
    const code = await exited(child);
    this.procs.delete(name);
    return code;
  }

  status(name: NodeName): Promise<AgentStatus> {
    return fetchStatus(this.node(name).controlUrl, 2000);
  }

  async waitFor(name: NodeName, what: string, pred: (s: AgentStatus) => boolean, timeoutMs = 30_000): Promise<AgentStatus> {
    const deadline = Date.now() + timeoutMs;
    let last: AgentStatus | undefined;
    for (;;) {
      try {
        last = await this.status(name);
        if (pred(last)) return last;
      } catch {
        // not answering yet
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${name}: ${what}; last status ${JSON.stringify(last?.replication)} state ${last?.state} alarms ${JSON.stringify(last?.alarms)}\n${this.story()}`);
      await sleep(50);
    }
  }

  /**
   * Waits until the passive's tree is byte-identical to the active's and stays so while both
   * report in sync. Returns the digest.
   */
  async waitIdentical(timeoutMs = 40_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let diff = '';
    for (;;) {
      const a = await this.status('alpha').catch(() => undefined);
      const b = await this.status('beta').catch(() => undefined);
      if (a?.replication.inSync === true && b?.replication.inSync === true && a.capture?.pendingPaths === 0) {
        try {
          diff = treeDiff(digestTree(this.data('alpha')), digestTree(this.data('beta')));
        } catch (err) {
          // A tree changed while it was read: not settled yet.
          diff = `tree changed while read: ${(err as Error).message}`;
        }
        if (diff === '') return;
      }
      if (Date.now() > deadline) {
        throw new Error(`trees not identical after ${timeoutMs} ms:\n${diff}\nalpha ${JSON.stringify(a?.replication)} capture ${JSON.stringify(a?.capture)}\nbeta ${JSON.stringify(b?.replication)} ${JSON.stringify(b?.alarms)}`);
      }
      await sleep(100);
    }
  }

  /** Parsed NDJSON lines of a node's agent log. */
  logLines(name: NodeName): Record<string, any>[] {
    const file = this.node(name).logFile;
    if (!fs.existsSync(file)) return [];
    return fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, any>;
        } catch {
          return { msg: l };
        }
      });
  }

  /** Each node's process (running, or how it ended) and the end of its log: what a timeout needs to be understood after the fact. */
  story(n = 8): string {
    return (['alpha', 'beta'] as NodeName[])
      .map((name) => {
        const child = this.procs.get(name);
        const proc = child === undefined ? 'not started here (or killed by the test)' : child.exitCode !== null || child.signalCode !== null ? `exited (${child.exitCode ?? child.signalCode})` : `running, pid ${child.pid}`;
        return `--- ${name}: ${proc}\n${this.tail(name, n)}`;
      })
      .join('\n');
  }

  tail(name: NodeName, n = 15): string {
    const out = path.join(path.dirname(this.node(name).config), 'agent.out');
    const lines = [...(fs.existsSync(out) ? fs.readFileSync(out, 'utf8').split('\n') : []), ...this.logLines(name).map((l) => JSON.stringify(l))];
    return lines.slice(-n).join('\n');
  }

  async cleanup(): Promise<void> {
    // A cleanup that hangs is reported with the step it hangs in (a hook timeout says nothing).
    let step = 'start';
    const t0 = Date.now();
    const watchdog = setInterval(() => process.stderr.write(`[pair] cleanup of ${this.dir} still in "${step}" after ${Math.round((Date.now() - t0) / 1000)} s\n`), 10_000);
    try {
      for (const name of [...this.procs.keys()]) {
        step = `kill ${name}`;
        await this.kill(name, 'SIGKILL');
      }
      // The demo applications run detached from the agents (as real services would): stop
      // them, each within a bound (a stop script that hangs must not hang the suite).
      for (const n of this.info.nodes) {
        step = `stop.sh of ${n.name}`;
        spawnSync(path.join(n.scriptsDir, 'stop.sh'), { stdio: 'ignore', timeout: 20_000, env: { ...process.env, TANDEM_REASON: 'test cleanup' } });
      }
    } finally {
      clearInterval(watchdog);
    }
    // TANDEM_KEEP_TEST_DIRS=1 keeps the pair's files (logs, state) to look at after a failure.
    if (process.env.TANDEM_KEEP_TEST_DIRS === '1') process.stderr.write(`kept test pair in ${this.dir}\n`);
    else fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `f` until it returns something other than undefined, and returns that. */
export async function until<T>(what: string, f: () => Promise<T | undefined> | T | undefined, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Which node's demo application answers at `appUrl` (its x-served-by header), or undefined. */
export async function servedBy(appUrl: string, timeoutMs = 500): Promise<string | undefined> {
  try {
    const res = await fetch(new URL('healthz', appUrl), { signal: AbortSignal.timeout(timeoutMs) });
    return res.ok ? (res.headers.get('x-served-by') ?? undefined) : undefined;
  } catch {
    return undefined;
  }
}
