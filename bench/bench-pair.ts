// The pair under test: the demo pair written into the benchmark's temp dir, with its data
// directories emptied, and its two agents run as real processes (`tandem agent -c`), observed
// only through the control API, like an operator would. Product defaults everywhere except
// what the benchmark's options change (channel.encryption).
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { AgentStatus } from '../agent/control/index.ts';
import { fetchStatus } from '../console/control-client.ts';
import { initDemoPair, type DemoNode } from '../console/demo/init-pair.ts';
import { loadConfig, type TandemConfig } from '../shared/config/index.ts';
import { sleep } from './clock.ts';
import { killDemoApps, spawnTracked, stopChild } from './children.ts';
import { AGENT_NODE_ARGS, agentEnv } from '../shared/agent-node-args.ts';

export const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TANDEM_BIN = path.join(PROJECT, 'bin/tandem.mjs');

export type NodeName = 'alpha' | 'beta';

export interface Settled {
  alpha: AgentStatus;
  beta: AgentStatus;
}

export class BenchPair {
  private readonly procs = new Map<NodeName, ChildProcess>();

  private constructor(
    readonly dir: string,
    private readonly nodes: DemoNode[],
    private readonly cpuProfileDir: string | undefined,
  ) {}

  /**
   * `cpuProfileDir`: run the agents with --cpu-prof, writing there when they stop. `heartbeat`:
   * the channel heartbeat's timing instead of the product default (1 s × 5).
   */
  static async create(
    dir: string,
    opts: { encryption: 'tls-psk' | 'none'; cpuProfileDir?: string | undefined; heartbeat?: { interval: string; threshold: number } | undefined },
  ): Promise<BenchPair> {
    const info = await initDemoPair(dir);
    for (const n of info.nodes) {
      for (const e of fs.readdirSync(n.dataDir)) fs.rmSync(path.join(n.dataDir, e), { recursive: true });
      const doc = parseYaml(fs.readFileSync(n.config, 'utf8')) as Record<string, any>;
      doc.channel = { ...(doc.channel ?? {}), encryption: opts.encryption };
      if (opts.heartbeat !== undefined) doc.heartbeat = { ...(doc.heartbeat ?? {}), ...opts.heartbeat };
      // The byte path is measured, not the demo application: on a shared, loaded machine its HTTP
      // check timed out while a gigabyte was written, and the app monitor moved the role away in
      // the middle of (b). Its check always passes here.
      fs.writeFileSync(path.join(n.scriptsDir, 'check.sh'), '#!/bin/sh\n# bench: the application is not what is measured\nexit 0\n', { mode: 0o755 });
      fs.writeFileSync(n.config, stringifyYaml(doc));
    }
    return new BenchPair(dir, info.nodes, opts.cpuProfileDir);
  }

  node(name: NodeName): DemoNode {
    return this.nodes.find((n) => n.name === name)!;
  }

  data(name: NodeName, rel = ''): string {
    return path.join(this.node(name).dataDir, rel);
  }

  /** The configuration as the agent sees it (defaults filled in). */
  config(name: NodeName): TandemConfig {
    return loadConfig(this.node(name).config);
  }

  pid(name: NodeName): number | undefined {
    return this.procs.get(name)?.pid;
  }

  /** `timeoutMs`: how long its control API may take to answer (an active's first start hashes its whole tree first). */
  async start(name: NodeName, timeoutMs = 30_000): Promise<void> {
    const n = this.node(name);
    const out = fs.openSync(path.join(path.dirname(n.config), 'agent.out'), 'a');
    const prof = this.cpuProfileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${this.cpuProfileDir}`, `--cpu-prof-name=${name}.cpuprofile`];
    // TANDEM_BENCH_NODE_FLAGS: node flags for the agents that NODE_OPTIONS refuses (e.g. --trace-gc).
    const extra = (process.env.TANDEM_BENCH_NODE_FLAGS ?? '').split(/\s+/).filter((f) => f !== '');
    const child = spawnTracked(process.execPath, [...prof, ...AGENT_NODE_ARGS, ...extra, TANDEM_BIN, 'agent', '-c', n.config], { stdio: ['ignore', out, out], env: agentEnv() });
    fs.closeSync(out);
    this.procs.set(name, child);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`agent ${name} exited with ${child.exitCode}: ${this.tail(name)}`);
      try {
        await fetchStatus(n.controlUrl, 1000);
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`agent ${name} did not answer within ${timeoutMs / 1000} s: ${this.tail(name)}`);
        await sleep(50);
      }
    }
  }

  /** Stops both agents, then the demo application the active one started: an agent stopped
   *  with SIGTERM leaves its application running (it runs detached), so run each node's stop
   *  script, as an operator would, and kill by pid whatever it missed. */
  async stop(): Promise<void> {
    await Promise.all([...this.procs.values()].map((c) => stopChild(c, 'SIGTERM', 5000)));
    this.procs.clear();
    for (const n of this.nodes) {
      const stop = path.join(n.scriptsDir, 'stop.sh');
      if (fs.existsSync(stop)) spawnSync(stop, { stdio: 'ignore', timeout: 15_000, env: { ...process.env, TANDEM_REASON: 'benchmark: agents stopped' } });
    }
    killDemoApps(this.dir);
  }

  /** The node's control API, e.g. http://127.0.0.1:PORT. */
  controlUrl(name: NodeName): string {
    return this.node(name).controlUrl;
  }

  status(name: NodeName, timeoutMs = 2000): Promise<AgentStatus> {
    return fetchStatus(this.node(name).controlUrl, timeoutMs);
  }

  /** Both nodes in sync, nothing pending in capture, and the passive has applied the head. */
  static isSettled(a: AgentStatus, b: AgentStatus): boolean {
    return a.replication.inSync && b.replication.inSync && a.capture?.pendingPaths === 0 && b.replication.appliedSeq >= a.replication.headSeq;
  }

  async waitSettled(timeoutMs = 120_000): Promise<Settled> {
    const deadline = Date.now() + timeoutMs;
    let last: Partial<Settled> = {};
    for (;;) {
      try {
        const [alpha, beta] = await Promise.all([this.status('alpha'), this.status('beta')]);
        last = { alpha, beta };
        if (BenchPair.isSettled(alpha, beta)) return { alpha, beta };
      } catch {
        // not answering yet
      }
      if (Date.now() > deadline) {
        throw new Error(`pair not in sync after ${timeoutMs} ms: alpha ${JSON.stringify(last.alpha?.replication)} capture ${JSON.stringify(last.alpha?.capture)} alarms ${JSON.stringify(last.alpha?.alarms)}; beta ${JSON.stringify(last.beta?.replication)} alarms ${JSON.stringify(last.beta?.alarms)}`);
      }
      await sleep(50);
    }
  }

  /**
   * Settled, and still settled with the same head after `quietMs`: capture does not count a
   * path it only plans to look at again (a big file waiting to be quiet, a recheck of a file
   * read too close to its mtime) as pending, so one settled status can come too early.
   */
  async waitQuiet(quietMs: number, timeoutMs = 15 * 60_000): Promise<Settled> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const first = await this.waitSettled(Math.max(1000, deadline - Date.now()));
      await sleep(quietMs);
      const again = await this.waitSettled(Math.max(1000, deadline - Date.now()));
      if (again.alpha.replication.headSeq === first.alpha.replication.headSeq) return again;
    }
  }

  /** The last lines of a node's output and log, for error messages. */
  tail(name: NodeName, n = 10): string {
    const files = [path.join(path.dirname(this.node(name).config), 'agent.out'), this.node(name).logFile];
    const lines = files.flatMap((f) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').filter((l) => l.trim() !== '') : []));
    return lines.slice(-n).join('\n');
  }

  /** Log lines at warn level or above, to report anything odd. */
  warnings(name: NodeName): Record<string, unknown>[] {
    const file = this.node(name).logFile;
    if (!fs.existsSync(file)) return [];
    const out: Record<string, unknown>[] = [];
    for (const l of fs.readFileSync(file, 'utf8').split('\n')) {
      if (l.trim() === '') continue;
      try {
        const o = JSON.parse(l) as Record<string, unknown>;
        if (o.level === 'warn' || o.level === 'error' || o.level === 'fatal') out.push(o);
      } catch {
        // not a log line
      }
    }
    return out;
  }
}
