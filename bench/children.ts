// Every process the benchmark starts (agents, the lag poller, the rsync daemon) goes through
// here, so that none outlives the run: the finally block of run.ts and the SIGINT/SIGTERM
// handler both end them, each by its own pid, never by name.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

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
