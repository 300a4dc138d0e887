// (i) install secondary to in sync: a primary installed and running (under a root of its own,
// on the loopback) with a protected tree of TANDEM_BENCH_INSTALL_BYTES (default 1 GiB); then
// `tandem install secondary --from PACK` under another root, timed from the end of its install
// (the files written, the agent started) until its progress line says in sync: the initial
// synchronisation a new operator waits for. Side by side, in the same run, `rsync -a` of the
// same tree into an empty directory, alone and followed by `sync` (Tandem's passive makes every
// byte durable before it is in sync; rsync does not fsync). Both nodes uninstalled at the end.
// Results go to bench/results/install.md and install.json.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { PROJECT } from './bench-pair.ts';
import { exited, spawnTracked } from './children.ts';
import { machineInfo } from './machine.ts';
import { writeTree } from './verify-throughput.ts';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const TANDEM = path.join(PROJECT, 'bin/tandem.mjs');

export interface InstallSyncResult {
  treeBytes: number;
  files: number;
  /** install secondary, command → exit (checks, writing, start, synchronisation). */
  commandMs: number;
  /** The agent's start → in sync, as install secondary reports it (syncMs). */
  syncMs: number;
  rsync: { ms: number; syncMs: number } | null;
  ratio: number | null;
  ratioWithSync: number | null;
  identical: boolean;
  /** os.loadavg() (1, 5, 15 min) when the measurement began and ended: the bench shares the machine. */
  load: { before: number[]; after: number[] };
}

export function installTreeBytes(): number {
  const v = process.env.TANDEM_BENCH_INSTALL_BYTES;
  if (v === undefined || v === '') return GiB;
  const n = Number(v);
  if (!Number.isFinite(n) || n < MiB) throw new Error(`TANDEM_BENCH_INSTALL_BYTES: expected a number of bytes (at least 1 MiB), got ${JSON.stringify(v)}`);
  return Math.floor(n);
}

async function freePort(): Promise<number> {
  for (;;) {
    const p = 10_000 + Math.floor(Math.random() * 22_000);
    const free = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(p, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return p;
  }
}

async function tandem(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const t0 = performance.now();
  const child = spawnTracked(process.execPath, [TANDEM, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await exited(child);
  clearTimeout(timer);
  return { code, stdout, stderr, ms: performance.now() - t0 };
}

function digest(dir: string): string {
  const r = spawnSync('sh', ['-c', 'find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum'], { cwd: dir, encoding: 'utf8', maxBuffer: 64 * MiB });
  return r.stdout.trim();
}

export async function measureInstallSync(baseDir: string, progress: (line: string) => void): Promise<InstallSyncResult> {
  const treeBytes = installTreeBytes();
  const work = path.join(baseDir, 'install');
  const roots = { primary: path.join(work, 'primary'), secondary: path.join(work, 'secondary') };
  const data = '/srv/data';
  fs.mkdirSync(path.join(roots.primary, data), { recursive: true });
  progress(`(i) writing a ${(treeBytes / GiB).toFixed(2)} GiB tree into the primary's protected directory`);
  const files = writeTree([path.join(roots.primary, data)], treeBytes);
  spawnSync('sync');
  const ports = [];
  for (let i = 0; i < 6; i++) ports.push(await freePort());
  const answers = {
    pair: 'bench',
    node: 'alpha',
    nodes: {
      alpha: { channel: `127.0.0.1:${ports[0]}`, control: `127.0.0.1:${ports[1]}`, public: `127.0.0.1:${ports[2]}` },
      beta: { channel: `127.0.0.1:${ports[3]}`, control: `127.0.0.1:${ports[4]}`, public: `127.0.0.1:${ports[5]}` },
    },
    protect: [data],
    packCode: 'benchmark pack code',
  };
  fs.writeFileSync(path.join(work, 'primary.yaml'), stringifyYaml(answers));
  fs.writeFileSync(path.join(work, 'secondary.yaml'), stringifyYaml({ packCode: answers.packCode }));
  const pack = path.join(work, 'bench.pack');
  const installed: string[] = [];
  const loadBefore = os.loadavg().map((x) => Math.round(x * 100) / 100);
  try {
    progress('(i) tandem install primary (started)');
    const p = await tandem(['install', 'primary', '--root', roots.primary, '--answers', path.join(work, 'primary.yaml'), '--pack', pack], 10 * 60_000);
    if (p.code !== 0) throw new Error(`install primary exited ${p.code}: ${p.stderr.slice(-1500)}`);
    installed.push(roots.primary);
    progress('(i) tandem install secondary --from PACK (started): until in sync');
    const s = await tandem(['install', 'secondary', '--root', roots.secondary, '--from', pack, '--answers', path.join(work, 'secondary.yaml'), '--json'], 4 * 60 * 60_000);
    if (s.code !== 0) throw new Error(`install secondary exited ${s.code}: ${s.stderr.slice(-1500)}`);
    installed.push(roots.secondary);
    const out = JSON.parse(s.stdout) as { syncMs: number };
    progress('(i) comparing the two trees');
    const identical = digest(path.join(roots.primary, data)) === digest(path.join(roots.secondary, data));

    let rsync: InstallSyncResult['rsync'] = null;
    if (spawnSync('rsync', ['--version']).status === 0) {
      progress('(i) rsync -a of the same tree, then sync');
      const dest = path.join(work, 'rsync-dest');
      const t0 = performance.now();
      const r = spawnSync('rsync', ['-a', `${path.join(roots.primary, data)}/`, `${dest}/`]);
      const ms = performance.now() - t0;
      if (r.status !== 0) throw new Error(`rsync exited ${r.status}: ${String(r.stderr).slice(-500)}`);
      spawnSync('sync');
      rsync = { ms: Math.round(ms), syncMs: Math.round(performance.now() - t0) };
      fs.rmSync(dest, { recursive: true, force: true });
    }
    const result: InstallSyncResult = {
      treeBytes,
      files,
      commandMs: Math.round(s.ms),
      syncMs: out.syncMs,
      rsync,
      ratio: rsync === null ? null : out.syncMs / rsync.ms,
      ratioWithSync: rsync === null ? null : out.syncMs / rsync.syncMs,
      identical,
      load: { before: loadBefore, after: os.loadavg().map((x) => Math.round(x * 100) / 100) },
    };
    progress(`(i) in sync ${(out.syncMs / 1000).toFixed(1)} s after the agent's start; rsync -a ${rsync === null ? 'not installed' : `${(rsync.ms / 1000).toFixed(1)} s (+ sync ${(rsync.syncMs / 1000).toFixed(1)} s)`}`);
    writeInstallResults(result, baseDir);
    return result;
  } finally {
    for (const r of installed.reverse()) await tandem(['uninstall', '--root', r, '--force'], 5 * 60_000);
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function writeInstallResults(r: InstallSyncResult, dir: string): void {
  const m = machineInfo(dir);
  const outDir = path.join(PROJECT, 'bench/results');
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'install.json'), `${JSON.stringify({ machine: m, finishedAt: new Date().toISOString(), ...r }, null, 2)}\n`);
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const md = `# (i) install secondary: from the end of the install to in sync

\`npm run bench -- --only i\` (tree size from \`TANDEM_BENCH_INSTALL_BYTES\`, default 1 GiB), ${new Date().toISOString()}.
Machine: ${m.cpus} × ${m.cpuModel}, ${m.disk}, Node ${m.node}.

A primary installed with \`tandem install primary\` (product defaults, TLS-PSK) under a root of its
own, its agent running, protecting ${(r.treeBytes / GiB).toFixed(2)} GiB in ${r.files} files (three quarters in
16 MiB files, a quarter in 16 KiB files, 250 to a directory); then \`tandem install secondary --from
PACK\` under another root on the same machine (both agents on the loopback). The tree was just
written and synced, so the primary reads it from the page cache where it holds it; so does rsync.

| measure | time | vs rsync -a | vs rsync -a + sync |
|---|---|---|---|
| install secondary: its agent started → in sync (the progress bar's end) | **${s(r.syncMs)}** | ${r.ratio === null ? 'n/a' : `${r.ratio.toFixed(2)}×`} | ${r.ratioWithSync === null ? 'n/a' : `${r.ratioWithSync.toFixed(2)}×`} |
| install secondary, the whole command (checks, files, start, synchronisation) | ${s(r.commandMs)} | | |
| \`rsync -a\` of the same tree into an empty directory | ${r.rsync === null ? 'not installed' : s(r.rsync.ms)} | 1.00× | |
| \`rsync -a\`, then \`sync\` | ${r.rsync === null ? 'not installed' : s(r.rsync.syncMs)} | | 1.00× |

The two trees were ${r.identical ? 'identical (sha256 of every file)' : '**not identical**'} after the install. Load average (1/5/15 min) when
the measurement began: ${r.load.before.join(' / ')}; when it ended: ${r.load.after.join(' / ')}.
`;
  fs.writeFileSync(path.join(outDir, 'install.md'), md);
}
