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
  // 'close' comes once the pipes delivered all the child wrote (a busy machine can deliver the
  // last lines well after the exit); bounded, in case a grandchild holds a pipe open.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await exited(child);
  clearTimeout(timer);
  await Promise.race([closed, sleep(5000)]);
  return { code, stdout, stderr, ms: performance.now() - t0 };
}
