// Part (u): how long the `tandem` command takes to start, against a bare Node start, in one
// run. A demo pair runs (so `tandem status` has two agents to ask), then `node -e 0`,
// `tandem --help` and `tandem status -c CONFIG` run in turn, RUNS times each (A B C A B C …,
// so a drift of the machine's speed hits all three alike). Each run goes through GNU time for
// its user and system CPU; wall time is taken around it. The goal (DESIGN.md): status within
// 3× of a bare Node start. Writes bench/results/cli.{md,json}.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BenchPair, PROJECT } from './bench-pair.ts';
import { nowMs } from './clock.ts';

const TANDEM = path.join(PROJECT, 'bin/tandem.mjs');
const GNU_TIME = '/usr/bin/time';

export interface CliCommandResult {
  label: string;
  argv: string[];
  /** Medians over the runs. */
  wallMs: number;
  cpuMs: number;
  /** Median of this command's run divided by the bare Node run next to it. */
  wallRatio: number | null;
  cpuRatio: number | null;
  exitCodes: number[];
}

export interface CliStartupResult {
  runs: number;
  commands: CliCommandResult[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 === 1 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** One run: wall ms from here, CPU ms (user + system) from GNU time. */
function timed(argv: string[], tmp: string): { wallMs: number; cpuMs: number; code: number } {
  const out = path.join(tmp, 'time.out');
  const t0 = nowMs();
  const r = spawnSync(GNU_TIME, ['-o', out, '-f', '%U %S', ...argv], { stdio: 'ignore', timeout: 60_000 });
  const wallMs = nowMs() - t0;
  // GNU time writes "Command exited with non-zero status N" first when the command failed.
  const last = fs.readFileSync(out, 'utf8').trim().split('\n').pop() ?? '';
  const [user, sys] = last.split(' ').map(Number);
  return { wallMs, cpuMs: ((user ?? NaN) + (sys ?? NaN)) * 1000, code: r.status ?? -1 };
}

export async function measureCliStartup(o: { runs: number; baseDir: string; encryption: 'tls-psk' | 'none' }, progress: (line: string) => void): Promise<CliStartupResult> {
  if (!fs.existsSync(GNU_TIME)) throw new Error(`${GNU_TIME} not found (Debian package "time"): it gives each run's CPU time`);
  const dir = fs.mkdtempSync(path.join(o.baseDir, 'cli-'));
  const pair = await BenchPair.create(path.join(dir, 'pair'), { encryption: o.encryption });
  try {
    await pair.start('alpha');
    await pair.start('beta');
    await pair.waitSettled();
    const config = pair.node('alpha').config;
    const commands = [
      { label: 'node -e 0', argv: [process.execPath, '-e', '0'] },
      { label: 'tandem --help', argv: [process.execPath, TANDEM, '--help'] },
      { label: 'tandem status -c CONFIG', argv: [process.execPath, TANDEM, 'status', '-c', config] },
    ];
    // One run of each first, not counted: the build check, the page cache.
    for (const c of commands) timed(c.argv, dir);
    progress(`(u) ${o.runs} runs of each of: ${commands.map((c) => c.label).join(', ')} (in turn)`);
    const samples = commands.map(() => ({ wall: [] as number[], cpu: [] as number[], codes: [] as number[] }));
    for (let i = 0; i < o.runs; i++) {
      commands.forEach((c, j) => {
        const t = timed(c.argv, dir);
        samples[j]!.wall.push(t.wallMs);
        samples[j]!.cpu.push(t.cpuMs);
        samples[j]!.codes.push(t.code);
      });
    }
    const base = samples[0]!;
    return {
      runs: o.runs,
      commands: commands.map((c, j) => {
        const s = samples[j]!;
        return {
          label: c.label,
          argv: c.argv.map((a) => (a === process.execPath ? 'node' : a === TANDEM ? 'bin/tandem.mjs' : a === config ? 'CONFIG' : a)),
          wallMs: median(s.wall),
          cpuMs: median(s.cpu),
          wallRatio: j === 0 ? null : median(s.wall.map((w, i) => w / base.wall[i]!)),
          cpuRatio: j === 0 ? null : median(s.cpu.map((w, i) => w / Math.max(1, base.cpu[i]!))),
          exitCodes: [...new Set(s.codes)],
        };
      }),
    };
  } finally {
    await pair.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function renderCliStartup(r: CliStartupResult, header: string): string {
  const f = (x: number | null) => (x === null ? '1 (baseline)' : `${x.toFixed(2)}×`);
  const rows = r.commands.map((c) => `| \`${c.label}\` | ${c.wallMs.toFixed(0)} ms | ${c.cpuMs.toFixed(0)} ms | ${f(c.wallRatio)} | ${f(c.cpuRatio)} | ${c.exitCodes.join(', ')} |`);
  return `${header}

Medians of ${r.runs} runs each, taken in turn; ratios are each run over the bare Node run next to it (median of the ratios). Goal: \`tandem status\` within 3× of a bare Node start.

| command | wall | CPU (user + sys) | wall vs node -e 0 | CPU vs node -e 0 | exit |
|---|---|---|---|---|---|
${rows.join('\n')}
`;
}

export function writeCliStartup(r: CliStartupResult, header: string): string {
  const dir = path.join(PROJECT, 'bench/results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'cli.json'), `${JSON.stringify({ machine: `${os.cpus().length} CPUs, Node ${process.version}`, ...r }, null, 2)}\n`);
  const md = renderCliStartup(r, header);
  fs.writeFileSync(path.join(dir, 'cli.md'), md);
  return md;
}
