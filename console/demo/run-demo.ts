// Runs a demo pair until Ctrl-C: both agents as child processes (the active one runs its start
// script: the demo application on the public address), and a status line per second. An agent
// that dies is started again after a while, so a failover and the old node's return can be
// watched from the page.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../shared/project-root.ts';
import { formatBytes } from '../../shared/sizes.ts';
import type { AgentStatus } from '../../agent/control/index.ts';
import { fetchStatus } from '../control-client.ts';
import type { DemoNode, DemoPair } from './init-pair.ts';

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

export async function runDemo(pair: DemoPair): Promise<number> {
  const children = new Map<string, ChildProcess>();
  let stopping = false;
  const spawnAgent = (n: DemoNode): void => {
    const out = fs.openSync(path.join(path.dirname(n.config), 'agent.out'), 'a');
    const child = spawn(process.execPath, [BIN, 'agent', '-c', n.config], { stdio: ['ignore', out, out] });
    fs.closeSync(out);
    children.set(n.name, child);
    child.once('exit', (code, signal) => {
      if (stopping) return;
      process.stdout.write(
        `\n${n.name}'s agent exited (${signal ?? `code ${code}`}). If it was active, the other node takes over: keep watching ${pair.appUrl}\n` +
          `The demo starts ${n.name}'s agent again in ${RESTART_AFTER_MS / 1000} s; it will rejoin as passive.\n\n`,
      );
      setTimeout(() => {
        if (stopping) return;
        process.stdout.write(`\nstarting ${n.name}'s agent again\n\n`);
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
  const statuses = await Promise.all(pair.nodes.map((n) => waitUp(n.controlUrl)));
  // The agents run the start script themselves once the active has heard its peer.
  const activeAt = statuses.findIndex((s) => s.role === 'active');
  const active = pair.nodes[Math.max(0, activeAt)]!;
  const activePid = statuses[Math.max(0, activeAt)]!.pid;
  process.stdout.write(
    [
      '',
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
  const timer = setInterval(() => {
    void Promise.all(pair.nodes.map((n) => fetchStatus(n.controlUrl, 900).catch(() => undefined))).then((all) => {
      if (stopping) return;
      process.stdout.write(`${new Date().toISOString().slice(11, 19)}  ${all.map((s, i) => line(s, pair.nodes[i]!.name)).join('  |  ')}\n`);
    });
  }, 1000);
  return new Promise((resolve) => {
    const stop = () => {
      if (stopping) return;
      stopping = true;
      clearInterval(timer);
      process.stdout.write('\nstopping the demo pair…\n');
      const running = [...children.values()].filter((c) => c.exitCode === null && c.signalCode === null);
      const finish = () => {
        // An agent stops its applications only on a role change; the demo stops them on the way out.
        for (const n of pair.nodes) spawnSync(path.join(n.scriptsDir, 'stop.sh'), { stdio: 'inherit', env: { ...process.env, TANDEM_REASON: 'demo stopped' } });
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
  });
}
