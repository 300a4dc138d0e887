// Runs a demo pair until Ctrl-C: both agents as child processes, the active node's start
// script (the demo application on the public address), and a status line per second.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatBytes } from '../../shared/sizes.ts';
import type { AgentStatus } from '../../agent/control/index.ts';
import { fetchStatus } from '../control-client.ts';
import type { DemoPair } from './init-pair.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/tandem.mjs');

function line(s: AgentStatus | undefined, name: string): string {
  if (s === undefined) return `${name}: not answering`;
  const r = s.replication;
  const sync = r.sync === null ? '' : ` sync ${formatBytes(r.sync.bytesDone)}/${formatBytes(r.sync.bytesTotal)}`;
  const alarm = s.alarms.length > 0 ? ` ALARM ${s.alarms[0]!.code}` : '';
  return `${s.node} ${s.role}/${s.state} head ${r.headSeq} applied ${r.appliedSeq} lag ${r.lagMs}ms${sync}${alarm}`;
}

export async function runDemo(pair: DemoPair): Promise<number> {
  const children: ChildProcess[] = [];
  for (const n of pair.nodes) {
    const out = fs.openSync(path.join(path.dirname(n.config), 'agent.out'), 'a');
    children.push(spawn(process.execPath, [BIN, 'agent', '-c', n.config], { stdio: ['ignore', out, out] }));
  }
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
  const active = pair.nodes.find((_n, i) => statuses[i]!.role === 'active') ?? pair.nodes[0]!;
  process.stdout.write(
    [
      '',
      `Tandem demo pair in ${pair.dir}`,
      `  application: ${pair.appUrl} (served by the active node; kill its agent with -9 and watch the other take over)`,
      `  edit files in ${active.dataDir}`,
      `  and watch them appear in ${pair.nodes.find((n) => n !== active)!.dataDir}`,
      `  agent logs:  ${pair.nodes.map((n) => n.logFile).join(', ')}`,
      'Ctrl-C stops the pair.',
      '',
    ].join('\n'),
  );
  let stopping = false;
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
      for (const c of children) c.kill('SIGTERM');
      let left = children.length;
      // An agent stops its applications only on a role change; the demo stops them on the way out.
      for (const c of children)
        c.once('exit', () => {
          if (--left > 0) return;
          for (const n of pair.nodes) spawnSync(path.join(n.scriptsDir, 'stop.sh'), { stdio: 'inherit', env: { ...process.env, TANDEM_REASON: 'demo stopped' } });
          resolve(0);
        });
      setTimeout(() => {
        for (const c of children) c.kill('SIGKILL');
        resolve(0);
      }, 10_000).unref();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    for (const c of children) {
      c.once('exit', (code) => {
        if (!stopping) {
          process.stderr.write(`an agent exited unexpectedly (code ${code}); see its agent.log\n`);
          stop();
        }
      });
    }
  });
}
