// Runs a demo pair until Ctrl-C: both agents as child processes (the active one runs its start
// script: the demo application on the public address), the console's address first, and a
// status line whenever the pair changes. An agent that dies is started again after a while, so a
// failover and the old node's return can be watched from the page.
//
// Ctrl-C must always end with the stop scripts run and nothing serving, also under a pipe
// (`npm start | tee log`): the terminal's SIGINT kills tee too, so every later write to standard
// output fails (EPIPE). Output is therefore best effort (a write that fails is dropped, never
// thrown), the agents run in their own process group (they stop when the demo tells them, in
// order, not when the terminal's signal reaches them first), and the stop scripts' output goes
// through the demo rather than to the dead pipe (a shell script writing there would die of
// SIGPIPE half way).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../shared/project-root.ts';
import { formatBytes } from '../../shared/sizes.ts';
import type { AgentStatus } from '../../agent/control/index.ts';
import { consoleLink } from '../console-link.ts';
import { controlTokenFor, fetchStatus } from '../control-client.ts';
import type { DemoNode, DemoPair } from './init-pair.ts';
import { AGENT_NODE_ARGS, agentEnv } from '../../shared/agent-node-args.ts';

const BIN = path.join(projectRoot(), 'bin/tandem.mjs');

function line(s: AgentStatus | undefined, name: string): string {
  if (s === undefined) return `${name}: not answering`;
  const r = s.replication;
  const sync = r.sync === null ? '' : ` sync ${formatBytes(r.sync.bytesDone)}/${formatBytes(r.sync.bytesTotal)}`;
  const alarm = s.alarms.length > 0 ? ` ALARM ${s.alarms[0]!.code}` : '';
  return `${s.node} ${s.role}${s.failover.serving ? ' serving' : ''}/${s.state} head ${r.headSeq} applied ${r.appliedSeq} lag ${r.lagMs}ms${sync}${alarm}`;
}

/** After an agent dies (the operator killed it to watch a failover), the demo starts it again. */
const RESTART_AFTER_MS = 15_000;

/** Writes to a stream that may be gone (a closed pipe): what cannot be written is dropped. */
export function bestEffort(stream: NodeJS.WriteStream): (text: string) => void {
  let broken = false;
  stream.on('error', () => (broken = true));
  return (text) => {
    if (broken || stream.destroyed) return;
    try {
      stream.write(text);
    } catch {
      broken = true;
    }
  };
}

export async function runDemo(pair: DemoPair): Promise<number> {
  const print = bestEffort(process.stdout);
  const children = new Map<string, ChildProcess>();
  let stopping = false;
  const spawnAgent = (n: DemoNode): void => {
    const out = fs.openSync(path.join(path.dirname(n.config), 'agent.out'), 'a');
    // Its own process group: the terminal's Ctrl-C reaches the demo alone, which stops the agents.
    const child = spawn(process.execPath, [...AGENT_NODE_ARGS, BIN, 'agent', '-c', n.config], { stdio: ['ignore', out, out], detached: true, env: agentEnv() });
    fs.closeSync(out);
    children.set(n.name, child);
    child.once('exit', (code, signal) => {
      if (stopping) return;
      print(
        `\n${n.name}'s agent exited (${signal ?? `code ${code}`}). If it was active, the other node takes over: keep watching ${pair.appUrl}\n` +
          `The demo starts ${n.name}'s agent again in ${RESTART_AFTER_MS / 1000} s; it will rejoin as passive.\n\n`,
      );
      setTimeout(() => {
        if (stopping) return;
        print(`\nstarting ${n.name}'s agent again\n\n`);
        spawnAgent(n);
      }, RESTART_AFTER_MS).unref();
    });
  };
  for (const n of pair.nodes) spawnAgent(n);
  const waitUp = async (url: string) => {
    for (let i = 0; i < 100; i++) {
      try {
        return await fetchStatus(url, 1000);
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error(`agent at ${url} did not start; see its agent.log and agent.out`);
  };
  let statuses: AgentStatus[];
  try {
    statuses = await Promise.all(pair.nodes.map((n) => waitUp(n.controlUrl)));
  } catch (err) {
    // Nothing must keep running (the agents have their own process group).
    stopping = true;
    for (const c of children.values()) c.kill('SIGTERM');
    throw err;
  }
  // The agents run the start script themselves once the active has heard its peer.
  const activeAt = statuses.findIndex((s) => s.role === 'active');
  const active = pair.nodes[Math.max(0, activeAt)]!;
  const activePid = statuses[Math.max(0, activeAt)]!.pid;
  const link = await consoleLink(active.controlUrl, controlTokenFor(path.join(path.dirname(active.config), 'pair.key'))).catch((err: Error) => ({ url: `${active.controlUrl}/console/ (no login link: ${err.message})`, expiresInMs: 0 }));
  print(
    [
      '',
      `Console:     ${link.url}`,
      `             watch the pair here (the link logs one browser in, within 10 minutes; a new one: npx tandem console -c ${active.config})`,
      `Tandem demo pair in ${pair.dir}`,
      `  application: ${pair.appUrl} (served by the active node)`,
      `  edit files in ${active.dataDir}`,
      `  and watch them appear in ${pair.nodes.find((n) => n !== active)!.dataDir}`,
      `  failover:    kill -9 ${activePid}   (${active.name}'s agent) and watch the page keep working from the other node`,
      `  switchover:  npx tandem switchover -c ${active.config}`,
      `  agent logs:  ${pair.nodes.map((n) => n.logFile).join(', ')}`,
      'Ctrl-C stops the pair.',
      '',
    ].join('\n'),
  );
  // A line when the pair changes, not every second: a quiet pair leaves the terminal quiet.
  let last = '';
  const timer = setInterval(() => {
    void Promise.all(pair.nodes.map((n) => fetchStatus(n.controlUrl, 900).catch(() => undefined))).then((all) => {
      if (stopping) return;
      const text = all.map((s, i) => line(s, pair.nodes[i]!.name)).join('  |  ');
      if (text === last) return;
      last = text;
      print(`${new Date().toISOString().slice(11, 19)}  ${text}\n`);
    });
  }, 1000);
  return new Promise((resolve) => {
    const stop = () => {
      if (stopping) return;
      stopping = true;
      clearInterval(timer);
      print('\nstopping the demo pair…\n');
      const running = [...children.values()].filter((c) => c.exitCode === null && c.signalCode === null);
      const finish = () => {
        // An agent stops its applications only on a role change; the demo stops them on the way out.
        for (const n of pair.nodes) {
          const r = spawnSync(path.join(n.scriptsDir, 'stop.sh'), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TANDEM_REASON: 'demo stopped' }, timeout: 30_000 });
          print(`${String(r.stdout ?? '')}${String(r.stderr ?? '')}`);
        }
        print('the demo pair is stopped\n');
        resolve(0);
      };
      if (running.length === 0) return finish();
      let left = running.length;
      for (const c of running) {
        c.once('exit', () => {
          if (--left === 0) finish();
        });
        c.kill('SIGTERM');
      }
      setTimeout(() => {
        for (const c of running) c.kill('SIGKILL');
      }, 10_000).unref();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    // The terminal closed: the agents run in their own group and would outlive it.
    process.once('SIGHUP', stop);
  });
}
