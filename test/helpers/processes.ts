// Every child process a test starts goes through here, so none survives the test: afterEach
// (or the global teardown, for a crashed worker) kills what is left.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

const live = new Set<ChildProcess>();

/** The title every test child carries, so this run's global teardown finds its strays (pkill -f). */
export const TEST_MARKER = `tandem-test-${process.env.TANDEM_TEST_RUN ?? 'adhoc'}`;

export function spawnTracked(command: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawn(command, args, opts);
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** SIGTERM, then SIGKILL after `graceMs`, for every child still alive. */
export async function killAll(graceMs = 5000): Promise<void> {
  const all = [...live];
  for (const c of all) c.kill('SIGTERM');
  await Promise.all(
    all.map(async (c) => {
      const t = setTimeout(() => c.kill('SIGKILL'), graceMs);
      await exited(c);
      clearTimeout(t);
    }),
  );
}
