// Every process the benchmark starts (agents, the lag poller, the rsync daemon) goes through
// here, so that none outlives the run: the finally block of run.ts and the SIGINT/SIGTERM
// handler both end them, each by its own pid, never by name.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const live = new Set<ChildProcess>();

export function spawnTracked(command: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawn(command, args, opts);
  live.add(child);
  child.once('exit', () => live.delete(child));
  // A spawn error (ENOENT) is reported by the caller through 'exit'/'error'; never crash here.
  child.on('error', () => live.delete(child));
  return child;
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(null));
  });
}

/** Sends `signal`, then SIGKILL after `graceMs`, and waits until the process is gone. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  child.kill(signal);
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited(child);
  clearTimeout(t);
}

/** Ends every child still alive (SIGTERM, then SIGKILL). */
export async function stopAllChildren(graceMs = 3000): Promise<void> {
  await Promise.all([...live].map((c) => stopChild(c, 'SIGTERM', graceMs)));
}

/** Synchronous last resort (process 'exit'): SIGKILL every child still alive. */
export function killAllChildrenNow(): void {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

/**
 * Demo applications (console/demo/demo-app.mjs) serving a data dir inside `pairDir` (their command
 * line says `--root PAIRDIR/<node>/data`). The active node's start script runs them detached from
 * the agent, so they outlive it: this finds the ones of one pair, by that pair's own path.
 */
export function demoAppsOf(pairDir: string): number[] {
  const prefix = `${path.resolve(pairDir)}${path.sep}`;
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const args = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      const i = args.indexOf('--root');
      const root = i >= 0 ? args[i + 1] : undefined;
      if (root !== undefined && root.startsWith(prefix) && args.some((a) => a.endsWith('demo-app.mjs'))) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** SIGKILL, by pid, every demo application of the pair in `pairDir` still running. */
export function killDemoApps(pairDir: string): void {
  for (const pid of demoAppsOf(pairDir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
