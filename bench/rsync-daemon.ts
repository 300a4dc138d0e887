// rsync as the benchmark's point of comparison: an rsync daemon on 127.0.0.1 (a module that
// writes into a fresh directory) and the `rsync -a --stats` client, timed, with the bytes it
// put on the wire read from its --stats. rsync does not fsync, so each run is also timed with
// a `sync` after it: Tandem acknowledges only durable data.
import { spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { nowMs, sleep } from './clock.ts';
import { exited, spawnTracked, stopChild } from './children.ts';

export interface RsyncAvailability {
  available: boolean;
  version: string | null;
  /** How it became available ("installed with apt-get") or why it is not. */
  note: string;
}

function rsyncVersion(): string | null {
  const r = spawnSync('rsync', ['--version'], { encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) return null;
  const first = r.stdout.split('\n')[0] ?? '';
  return /version\s+(\S+)/.exec(first)?.[1] ?? first.trim();
}

/** rsync, installed with apt-get when missing (this machine is root on Debian). Never throws. */
export function ensureRsync(progress: (line: string) => void): RsyncAvailability {
  const v = rsyncVersion();
  if (v !== null) return { available: true, version: v, note: 'already installed' };
  const apt = (args: string[]) => spawnSync('apt-get', args, { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 300_000 });
  progress('rsync is not installed: apt-get install -y rsync');
  let r = apt(['install', '-y', 'rsync']);
  if (r.error !== undefined || r.status !== 0 || rsyncVersion() === null) {
    progress('apt-get install failed: apt-get update, then again');
    apt(['update']);
    r = apt(['install', '-y', 'rsync']);
  }
  const after = rsyncVersion();
  if (after !== null) return { available: true, version: after, note: 'installed with apt-get by this run' };
  const why =
    r.error !== undefined
      ? r.error.message
      : r.status === 0
        ? 'apt-get install succeeded but no rsync on PATH'
        : `apt-get exited with ${r.status}: ${(r.stderr ?? '').trim().split('\n').slice(-1)[0] ?? ''}`;
  return { available: false, version: null, note: `not installed (${why})` };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

export interface RsyncRun {
  /** Wall time of the rsync command, seconds. */
  seconds: number;
  /** Wall time of the `sync` that followed, seconds. */
  syncSeconds: number;
  bytesSent: number;
  bytesReceived: number;
  /** Total bytes sent + received, as rsync --stats counts them (protocol bytes, no TCP/IP headers). */
  wireBytes: number;
  literalBytes: number | null;
  matchedBytes: number | null;
}

function statNumber(stdout: string, label: string): number | null {
  const m = new RegExp(`^${label}:\\s*([\\d,.]+)`, 'm').exec(stdout);
  if (!m) return null;
  return Number(m[1]!.replace(/,/g, ''));
}

export class RsyncDaemon {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    readonly destDir: string,
    private readonly logFile: string,
  ) {}

  /** Starts `rsync --daemon --no-detach` on 127.0.0.1 with one module "mod" writing into `destDir`. */
  static async start(workDir: string, destDir: string): Promise<RsyncDaemon> {
    fs.mkdirSync(workDir, { recursive: true });
    fs.mkdirSync(destDir, { recursive: true });
    const port = await freePort();
    const conf = path.join(workDir, 'rsyncd.conf');
    const logFile = path.join(workDir, 'rsyncd.log');
    const uid = process.getuid?.() ?? 0;
    const gid = process.getgid?.() ?? 0;
    fs.writeFileSync(
      conf,
      [
        `address = 127.0.0.1`,
        `port = ${port}`,
        `use chroot = false`,
        `read only = false`,
        `uid = ${uid}`,
        `gid = ${gid}`,
        `log file = ${logFile}`,
        ``,
        `[mod]`,
        `    path = ${destDir}`,
        `    use chroot = false`,
        `    read only = false`,
        ``,
      ].join('\n'),
    );
    const out = fs.openSync(path.join(workDir, 'rsyncd.out'), 'a');
    const child = spawnTracked('rsync', ['--daemon', '--no-detach', `--config=${conf}`, `--port=${port}`, '--address=127.0.0.1'], { stdio: ['ignore', out, out] });
    fs.closeSync(out);
    const d = new RsyncDaemon(child, port, destDir, logFile);
    const deadline = Date.now() + 10_000;
    while (!(await canConnect(port))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        await stopChild(child, 'SIGKILL');
        throw new Error(`rsync daemon did not start on port ${port}: ${d.logTail()}`);
      }
      await sleep(20);
    }
    return d;
  }

  get url(): string {
    return `rsync://127.0.0.1:${this.port}/mod/`;
  }

  /** `rsync -a --stats SRC rsync://127.0.0.1:PORT/mod/`, timed, then `sync`, timed apart. */
  async push(src: string): Promise<RsyncRun> {
    spawnSync('sync');
    const t0 = nowMs();
    const child = spawnTracked('rsync', ['-a', '--stats', src, this.url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await exited(child);
    const seconds = (nowMs() - t0) / 1000;
    if (code !== 0) throw new Error(`rsync ${src} ${this.url} exited with ${code}: ${stderr.trim()}`);
    const t1 = nowMs();
    spawnSync('sync');
    const syncSeconds = (nowMs() - t1) / 1000;
    const bytesSent = statNumber(stdout, 'Total bytes sent');
    const bytesReceived = statNumber(stdout, 'Total bytes received');
    if (bytesSent === null || bytesReceived === null) throw new Error(`rsync --stats: no byte totals in its output:\n${stdout}`);
    return {
      seconds,
      syncSeconds,
      bytesSent,
      bytesReceived,
      wireBytes: bytesSent + bytesReceived,
      literalBytes: statNumber(stdout, 'Literal data'),
      matchedBytes: statNumber(stdout, 'Matched data'),
    };
  }

  logTail(n = 5): string {
    return fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8').trim().split('\n').slice(-n).join('\n') : '(no log)';
  }

  async stop(): Promise<void> {
    await stopChild(this.child, 'SIGTERM', 3000);
  }
}
