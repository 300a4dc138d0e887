// PostgreSQL crash trials on a btrfs subvolume (issue 9): the test line runs a few, `npm run
// soak:pg` twenty. One PostgreSQL cluster is made once (initdb, pgbench -i, amcheck) in a
// template subvolume of a loop btrfs of this run; each trial protects a writable snapshot of it
// (a fresh copy in milliseconds), starts a pair, runs pgbench -n with a CHECKPOINT every second,
// and at a random moment kills the active server: its agent and every PostgreSQL process at once.
// The passive takes over; its copy is started as it is by PostgreSQL, checked by pg_amcheck and
// by pgbench's invariants (the balances of accounts, tellers, branches and history agree), and
// compared with the active's own data restarted (it holds every committed transaction): the
// transactions and seconds lost, against the rpoMs the passive's status showed just before the
// crash. PostgreSQL runs as a child of this process (setpriv execs it), which reaps it at once:
// a killed postmaster left to a slow-reaping init keeps its pid alive and blocks the next start.
import fs from 'node:fs';
import path from 'node:path';
import { execFile, execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { defaultPointsDir } from '../../agent/points/index.ts';
import { cleanupLoops, makeLoopFs, makeSubvolume, type LoopFs } from './btrfs-loop.ts';
import { exited, killAll, spawnTracked } from './processes.ts';
import { sleep, type TestPair } from './pair.ts';
import { pointsPair, statusSampler } from './points-pair.ts';

const execFileP = promisify(execFile);

export function findPgBin(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!fs.existsSync(base)) return undefined;
  const versions = fs.readdirSync(base).filter((v) => fs.existsSync(path.join(base, v, 'bin/initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions.length === 0 ? undefined : path.join(base, versions[0]!, 'bin');
}

export function postgresIds(): { uid: number; gid: number } | undefined {
  const r = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  return r.status === 0 && g.status === 0 ? { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) } : undefined;
}

/** Why PostgreSQL trials cannot run here (undefined: they can), btrfs aside. */
export function postgresUnavailable(): string | undefined {
  if (findPgBin() === undefined) return 'PostgreSQL is not installed (apt-get install postgresql)';
  if (postgresIds() === undefined) return 'there is no postgres user';
  return undefined;
}

export interface PgTrial {
  trial: number;
  /** How long pgbench ran before the crash. */
  loadMs: number;
  /** The passive's rpoMs at its last status sample, plus the time from that sample to the crash. */
  rpoAtCrashMs: number | null;
  starts: boolean;
  amcheck: boolean | undefined;
  balances: boolean | undefined;
  /** Transactions the active had committed (pgbench_history rows, the active restarted). */
  committed: number;
  txnsLost: number | undefined;
  /** From the start times of the last transaction held on each side (pgbench_history.mtime). */
  secondsLost: number | undefined;
  /** Records the promotion left out past the last complete point. */
  discardedRecords: number;
  detail: string;
}

const ENV = { LC_ALL: 'C', HOME: '/tmp', PGCONNECT_TIMEOUT: '5' };
const SUMS = 'select (select sum(abalance) from pgbench_accounts), (select sum(tbalance) from pgbench_tellers), (select sum(bbalance) from pgbench_branches), (select coalesce(sum(delta), 0) from pgbench_history), (select count(*) from pgbench_accounts), (select count(*) from pgbench_history), (select coalesce(extract(epoch from max(mtime)), 0) from pgbench_history)';

/** A loop btrfs with a template cluster, and the trials run on copies of it. */
export class PgCrashLab {
  readonly bin = findPgBin()!;
  private readonly ids = postgresIds()!;
  readonly lfs: LoopFs;
  readonly template: string;
  private readonly sock: string;
  private readonly port = 40000 + ((process.pid * 2) % 20000);
  private readonly servers = new Set<ChildProcess>();
  private readonly shmBefore = new Set(shmSegments());
  private pair: TestPair | undefined;

  constructor(readonly scale = 2, sizeMiB = 3072) {
    this.lfs = makeLoopFs({ sizeMiB, tag: 'pg' });
    // PostgreSQL (not root) must reach its data directory through the mount's parent.
    fs.chmodSync(path.dirname(this.lfs.dir), 0o755);
    this.sock = path.join(this.lfs.dir, 'sock');
    fs.mkdirSync(this.sock);
    fs.chownSync(this.sock, this.ids.uid, this.ids.gid);
    this.template = makeSubvolume(this.lfs, 'template');
  }

  /** initdb, pgbench -i, the amcheck extension; the cluster stopped cleanly. */
  async init(opts: { smallWal?: boolean } = {}): Promise<void> {
    const data = path.join(this.template, 'pg');
    fs.mkdirSync(data, { mode: 0o700 });
    fs.chownSync(data, this.ids.uid, this.ids.gid);
    this.asPostgres('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-instructions']);
    // Checkpoints as often as the issue's failing runs had them (a small WAL, one forced a second).
    fs.appendFileSync(path.join(data, 'postgresql.conf'), `\nlisten_addresses = ''\n${opts.smallWal === false ? '' : 'max_wal_size = 32MB\nmin_wal_size = 32MB\n'}`);
    const s = await this.start(data);
    this.asPostgres('pgbench', [...this.conn(), '-i', '-s', String(this.scale), '-q', 'postgres']);
    this.sql('create extension if not exists amcheck');
    await this.stop(s);
  }

  async trial(n: number, opts: { loadMs: number }): Promise<PgTrial> {
    const root = path.join(this.lfs.dir, `trial-${n}`);
    execFileSync('btrfs', ['subvolume', 'snapshot', this.template, root], { stdio: 'ignore' });
    const dataA = path.join(root, 'pg');
    // The trials are about what the copy holds: the takeover must not be refused for a data
    // loss beyond the default bound (10 s) when this loaded machine lets the RPO grow; the RPO
    // shown is reported either way.
    const p = await pointsPair(root, { extra: (doc) => (doc.failover = { ...(doc.failover ?? {}), maxLagOnFailover: '5m' }) });
    this.pair = p;
    // TANDEM_KEEP_TEST_DIRS=1: a failed trial keeps, in the pair's directory, the copy as the
    // takeover left it (before PostgreSQL replays anything), the active's data as the crash
    // left it, its points (snapshots) and the status after the takeover: enough to say whether
    // the copy equals one of the active's instants. A trial that holds is removed whole.
    const keep = process.env.TANDEM_KEEP_TEST_DIRS === '1';
    const points = defaultPointsDir(root);
    let passed = false;
    try {
      for (const d of [p.data('beta')]) for (let x = d; x.startsWith(p.dir); x = path.dirname(x)) fs.chmodSync(x, 0o755);
      const server = await this.start(dataA);
      await p.startBoth();
      await p.waitFor('beta', 'the data directory synchronised', (s) => s.replication.inSync && s.replication.point !== null, 180_000);
      const bench = spawnTracked('setpriv', [...this.setpriv(), path.join(this.bin, 'pgbench'), ...this.conn(), '-n', '-c', '4', '-j', '2', '-T', '600', 'postgres'], { stdio: 'ignore', env: { ...process.env, ...ENV } });
      const checkpoints = this.checkpointEverySecond();
      const sampler = statusSampler(p, 'beta');
      await sleep(opts.loadMs);
      // The active server dies: its agent and every PostgreSQL process at the same moment.
      p.procs.get('alpha')!.kill('SIGKILL');
      killTree(server.pid!);
      const crashAt = Date.now();
      await sampler.stop();
      const last = sampler.last();
      const rpo = last?.status.replication.rpoMs;
      const rpoAtCrashMs = rpo === null || rpo === undefined || last === undefined ? null : rpo + (crashAt - last.at);
      await exited(bench);
      await checkpoints.stop();
      await exited(server);
      this.servers.delete(server);
      const after = await p.waitFor('beta', 'took over', (s) => s.role === 'active' && s.failover.phase !== 'busy', 60_000);
      await p.kill('beta', 'SIGTERM');
      const discardedRecords = after.replication.discarded?.records ?? 0;

      // The passive's copy, started as it is.
      const dataB = p.data('beta', 'pg');
      if (keep) {
        execFileSync('cp', ['-a', dataB, path.join(p.dir, 'beta-at-takeover')]);
        fs.writeFileSync(path.join(p.dir, 'beta-status-after-takeover.json'), JSON.stringify(after, null, 2));
      }
      let starts = false;
      let amcheck: boolean | undefined;
      let balances: boolean | undefined;
      let held: { rows: number; lastAt: number } | undefined;
      let detail = '';
      try {
        const sb = await this.start(dataB);
        starts = true;
        const r = spawnSync('setpriv', [...this.setpriv(), path.join(this.bin, 'pg_amcheck'), ...this.conn(), '-d', 'postgres', '--heapallindexed'], { encoding: 'utf8', env: { ...process.env, ...ENV }, timeout: 300_000 });
        amcheck = r.status === 0;
        if (!amcheck) detail += `pg_amcheck: ${(r.stdout + r.stderr).split('\n').slice(0, 5).join(' / ')} `;
        const [a, t, b, h, accounts, rows, lastAt] = this.sql(SUMS).split('|').map(Number);
        balances = a === t && t === b && b === h && accounts === this.scale * 100_000;
        if (!balances) detail += `balances: accounts ${a} tellers ${t} branches ${b} history ${h}, ${accounts} accounts `;
        held = { rows: rows!, lastAt: lastAt! };
        await this.stop(sb);
      } catch (err) {
        detail += `the copy does not start: ${(err as Error).message.slice(0, 400)} `;
      }
      if (keep && !(starts && amcheck === true && balances === true)) {
        execFileSync('cp', ['-a', dataA, path.join(p.dir, 'alpha-at-crash')]);
        if (fs.existsSync(points)) execFileSync('cp', ['-a', points, path.join(p.dir, 'alpha-points')]);
        detail += `kept in ${p.dir} `;
      }
      // The active's own data restarted holds every transaction it committed.
      const sa = await this.start(dataA);
      const [, , , , , committed, lastA] = this.sql(SUMS).split('|').map(Number);
      await this.stop(sa);
      const result: PgTrial = {
        trial: n,
        loadMs: opts.loadMs,
        rpoAtCrashMs,
        starts,
        amcheck,
        balances,
        committed: committed!,
        txnsLost: held === undefined ? undefined : committed! - held.rows,
        secondsLost: held === undefined ? undefined : lastA! - held.lastAt,
        discardedRecords,
        detail: detail.trim(),
      };
      passed = trialOk(result);
      return result;
    } finally {
      for (const s of [...this.servers]) {
        killTree(s.pid!);
        await exited(s);
      }
      this.servers.clear();
      await p.cleanup();
      this.pair = undefined;
      if (passed && keep) fs.rmSync(p.dir, { recursive: true, force: true });
      spawnSync('btrfs', ['subvolume', 'delete', root], { stdio: 'ignore' });
      // The killed active's last points: nobody else deletes them, and each keeps the blocks
      // its trial changed (the loop file system filled after about 30 trials).
      if (fs.existsSync(points)) {
        const snaps = fs.readdirSync(points).map((n) => path.join(points, n));
        if (snaps.length > 0) spawnSync('btrfs', ['subvolume', 'delete', ...snaps], { stdio: 'ignore' });
        fs.rmSync(points, { recursive: true, force: true });
      }
    }
  }

  /** Stops what is left, unmounts and detaches the loop device, removes PostgreSQL's shared memory left by killed servers. */
  /** For a script (bench, soak): Ctrl-C or a kill takes PostgreSQL, the agents and the loop device too. */
  cleanupOnSignals(): void {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.once(sig, () => {
        void this.cleanup()
          .then(() => killAll())
          .finally(() => process.exit(130));
      });
    }
  }

  async cleanup(): Promise<void> {
    for (const s of [...this.servers]) {
      killTree(s.pid!);
      await exited(s);
    }
    this.servers.clear();
    await this.pair?.cleanup();
    cleanupLoops();
    for (const n of shmSegments()) if (!this.shmBefore.has(n)) fs.rmSync(path.join('/dev/shm', n), { force: true });
  }

  /** A CHECKPOINT every second until stopped (failures ignored: the server may be gone). */
  checkpointEverySecond(): { stop(): Promise<void> } {
    let on = true;
    const loop = (async () => {
      while (on) {
        await execFileP('setpriv', [...this.setpriv(), path.join(this.bin, 'psql'), ...this.conn(), '-d', 'postgres', '-c', 'CHECKPOINT'], { env: { ...process.env, ...ENV }, timeout: 10_000 }).catch(() => {});
        await sleep(1000);
      }
    })();
    return {
      stop: async () => {
        on = false;
        await loop;
      },
    };
  }

  setpriv(): string[] {
    return [`--reuid=${this.ids.uid}`, `--regid=${this.ids.gid}`, '--init-groups'];
  }

  conn(): string[] {
    return ['-h', this.sock, '-p', String(this.port), '-U', 'postgres'];
  }

  private asPostgres(program: string, args: string[]): string {
    return execFileSync('setpriv', [...this.setpriv(), path.join(this.bin, program), ...args], { encoding: 'utf8', timeout: 300_000, env: { ...process.env, ...ENV }, stdio: ['ignore', 'pipe', 'pipe'] });
  }

  sql(query: string): string {
    return this.asPostgres('psql', [...this.conn(), '-d', 'postgres', '-At', '-c', query]).trim();
  }

  /** Starts a postmaster on `data` (this process its parent); resolves once it accepts connections. */
  async start(data: string): Promise<ChildProcess> {
    let out = '';
    const s = spawnTracked('setpriv', [...this.setpriv(), path.join(this.bin, 'postgres'), '-D', data, '-p', String(this.port), '-k', this.sock], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...ENV } });
    s.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    s.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    this.servers.add(s);
    for (let i = 0; ; i++) {
      if (s.exitCode !== null || s.signalCode !== null) {
        this.servers.delete(s);
        throw new Error(`PostgreSQL exited on ${data}: ${out.split('\n').slice(-8).join(' / ')}`);
      }
      if (spawnSync(path.join(this.bin, 'pg_isready'), ['-q', ...this.conn()], { env: { ...process.env, ...ENV } }).status === 0) return s;
      if (i > 1200) throw new Error(`PostgreSQL did not accept connections within 120 s on ${data}: ${out.split('\n').slice(-8).join(' / ')}`);
      await sleep(100);
    }
  }

  /** A clean (fast) shutdown. */
  async stop(s: ChildProcess): Promise<void> {
    s.kill('SIGINT');
    const t = setTimeout(() => killTree(s.pid!), 60_000);
    await exited(s);
    clearTimeout(t);
    this.servers.delete(s);
  }
}

function shmSegments(): string[] {
  try {
    return fs.readdirSync('/dev/shm').filter((n) => n.startsWith('PostgreSQL.'));
  } catch {
    return [];
  }
}

/** SIGKILL of a process and every process below it at once (a postmaster and its backends). */
export function killTree(pid: number): void {
  const kids = new Map<number, number[]>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(d)]);
    } catch {
      // gone meanwhile
    }
  }
  const all: number[] = [];
  const walk = (p: number): void => {
    all.push(p);
    for (const k of kids.get(p) ?? []) walk(k);
  };
  walk(pid);
  for (const p of all) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** One line per trial, as the soak prints it and the README quotes it. */
export function trialLine(t: PgTrial): string {
  const f = (v: boolean | undefined): string => (v === undefined ? '-' : v ? 'yes' : 'NO');
  return `trial ${String(t.trial).padStart(2)}: load ${(t.loadMs / 1000).toFixed(1)} s, starts ${f(t.starts)}, pg_amcheck ${f(t.amcheck)}, balances ${f(t.balances)}, committed ${t.committed}, lost ${t.txnsLost ?? '-'} txns / ${t.secondsLost === undefined ? '-' : t.secondsLost.toFixed(3)} s, rpoMs before the crash ${t.rpoAtCrashMs ?? '-'}, discarded ${t.discardedRecords} records${t.detail === '' ? '' : `; ${t.detail}`}`;
}

/** The trial holds everything issue 9 asks: the copy starts, checks clean, and the loss is within what status showed. */
export function trialOk(t: PgTrial): boolean {
  return t.starts && t.amcheck === true && t.balances === true && t.txnsLost !== undefined && t.txnsLost >= 0 && t.secondsLost !== undefined && t.rpoAtCrashMs !== null && t.secondsLost * 1000 <= t.rpoAtCrashMs + LOSS_SLACK_MS;
}

/**
 * pgbench_history.mtime is a transaction's start, not its commit: the last transaction the copy
 * holds may have started up to one transaction's duration before the point's instant, so the
 * loss measured that way may exceed the point's age by as much (p99 200-300 ms under forced
 * checkpoints on this machine, REPORT section 1).
 */
export const LOSS_SLACK_MS = 500;
