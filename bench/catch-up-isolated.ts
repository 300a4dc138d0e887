// Part (o) in a private network namespace, so that its channel needs no proxy: the benchmark
// starts itself again inside a fresh namespace (`ip netns exec`, loopback only: nothing there can
// reach another machine), that process measures and writes its result as JSON, and the namespace
// is deleted afterwards with whatever still runs in it. Needs root and `ip`; without them (o)
// keeps the proxy. Run as a program, this file is that inner process.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { NetworkLab } from '../test/helpers/network-lab.ts';
import { exited, spawnTracked } from './children.ts';
import { measureCatchUp, type CatchUpBenchOptions, type CatchUpChannel, type CatchUpResult } from './catch-up.ts';
import { closeAllHaPairs } from './ha-pair.ts';

const PROJECT = path.resolve(import.meta.dirname, '..');

/** Root, and `ip netns` at hand: the channel can be direct. */
export function privateNetAvailable(): boolean {
  if (process.getuid?.() !== 0) return false;
  return spawnSync('ip', ['netns', 'list'], { stdio: 'ignore' }).status === 0;
}

/** TANDEM_BENCH_CATCHUP_CHANNEL, or direct wherever it can be. */
export function catchUpChannel(): CatchUpChannel {
  const v = process.env.TANDEM_BENCH_CATCHUP_CHANNEL;
  if (v === 'proxy') return 'proxy';
  if (v !== undefined && v !== 'direct') throw new Error(`TANDEM_BENCH_CATCHUP_CHANNEL: direct or proxy, not ${JSON.stringify(v)}`);
  if (privateNetAvailable()) return 'direct';
  if (v === 'direct') throw new Error('TANDEM_BENCH_CATCHUP_CHANNEL=direct needs root and ip netns');
  return 'proxy';
}

/** Measures (o) in a namespace of its own; progress lines of the inner process pass through. */
export async function measureCatchUpIsolated(o: Omit<CatchUpBenchOptions, 'channel'>, progress: (l: string) => void): Promise<CatchUpResult> {
  const lab = new NetworkLab();
  const out = path.join(o.baseDir, `catchup-result-${process.pid}.json`);
  try {
    const ns = lab.host('bench-o');
    // Tracked like every child of the benchmark: an interrupted run ends it (it closes its pair
    // first), and the namespace's cleanup below kills anything left in it.
    const child = spawnTracked('ip', ['netns', 'exec', ns, process.execPath, path.join(PROJECT, 'bin/run-ts.mjs'), path.join(PROJECT, 'bench/catch-up-isolated.ts'), JSON.stringify(o), out], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let buf = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith('progress ')) progress(line.slice('progress '.length));
      }
    });
    const code = await exited(child);
    if (code !== 0) throw new Error(`(o) in its network namespace exited with ${code}`);
    return JSON.parse(fs.readFileSync(out, 'utf8')) as CatchUpResult;
  } finally {
    lab.cleanup();
    fs.rmSync(out, { force: true });
  }
}

async function inner(): Promise<void> {
  const [optsJson, out] = process.argv.slice(2);
  if (optsJson === undefined || out === undefined) throw new Error('usage: catch-up-isolated.ts OPTIONS_JSON RESULT_FILE');
  const o = JSON.parse(optsJson) as Omit<CatchUpBenchOptions, 'channel'>;
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (stopping) return;
      stopping = true;
      void closeAllHaPairs(o.keep).finally(() => process.exit(130));
    });
  }
  const r = await measureCatchUp({ ...o, channel: 'direct' }, (l) => process.stdout.write(`progress ${l}\n`));
  fs.writeFileSync(out, JSON.stringify(r));
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  inner().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      void closeAllHaPairs(false).finally(() => process.exit(1));
    },
  );
}
