// Runs the CLI as an operator does: `node bin/tandem.mjs ARGS` as a tracked child process, with
// its exit code and output; killed if it outlives its time.
import { exited, spawnTracked, TEST_MARKER } from './processes.ts';
import { sleep, TANDEM_BIN } from './pair.ts';

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export async function tandem(args: string[], timeoutMs = 60_000): Promise<CliRun> {
  const t0 = performance.now();
  const child = spawnTracked(process.execPath, [`--title=${TEST_MARKER}`, TANDEM_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await exited(child);
  clearTimeout(timer);
  // Let the pipes deliver what the child wrote last.
  await sleep(20);
  return { code, stdout, stderr, ms: performance.now() - t0 };
}
