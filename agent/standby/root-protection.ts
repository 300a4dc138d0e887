// replication.protectPassive: while the node is passive, each protected root is covered by a
// read-only bind mount of itself, so nobody (root included) writes there through the root's
// path; the applier writes through a second, read-write bind of the same tree kept inside the
// state directory (0700: root alone can reach it). Like DRBD's secondary, whose device cannot
// be written. It must never be left in place when the node serves: it is lifted before a
// promotion's start script and at agent stop, and a killed agent's mounts are lifted by the
// next start (of either role) from the record written before anything was mounted.
import { execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Clock } from '../../shared/clock.ts';
import type { ProtectedRoot } from '../../shared/config/index.ts';
import { TandemError, describeCause } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { fsyncDir } from '../manifest/index.ts';
import type { Alarm } from '../replication/index.ts';
import { isProtectionMount, isReadOnly, mountsAt, parseMountInfo, type MountEntry } from './mount-info.ts';

const MOUNT_TIMEOUT_MS = 20_000;
const FORMAT = 1;

interface RecordedRoot {
  name: string;
  /** The root's real path: where the read-only bind goes. */
  path: string;
  /** The read-write bind the applier writes through. */
  rw: string;
}

/** The folder of standby protection's own state (0700). */
export function standbyDir(stateDir: string): string {
  return path.join(stateDir, 'standby');
}

function recordFile(stateDir: string): string {
  return path.join(standbyDir(stateDir), 'protected.json');
}

export const PROTECT_HINT =
  'standby protection needs the agent to run as root (mount needs CAP_SYS_ADMIN) in the host\'s mount namespace; or set replication.protectPassive: false. Changes by hand on the passive are still detected';

/** Runs mount(8) or umount(8); rejects with its stderr. */
export type MountRunner = (command: 'mount' | 'umount', args: string[]) => Promise<void>;

const runMount: MountRunner = (command, args) =>
  new Promise((resolve, reject) => {
    execFile(command, args, { timeout: MOUNT_TIMEOUT_MS }, (err, _stdout, stderr) => {
      if (err === null) resolve();
      else reject(new Error(`${command} ${args.join(' ')}: ${String(stderr).trim() || err.message}`));
    });
  });

async function readMounts(): Promise<MountEntry[]> {
  return parseMountInfo(await fsp.readFile('/proc/self/mountinfo', 'utf8'));
}

async function readRecord(stateDir: string): Promise<RecordedRoot[] | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(recordFile(stateDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const doc = JSON.parse(text) as { format?: unknown; roots?: unknown };
  if (doc.format !== FORMAT || !Array.isArray(doc.roots)) throw new Error('unknown format');
  const rwDir = path.join(standbyDir(stateDir), 'rw');
  return doc.roots.filter(
    (r): r is RecordedRoot =>
      typeof r === 'object' && r !== null && typeof r.name === 'string' && typeof r.path === 'string' && path.isAbsolute(r.path) &&
      // The read-write side can only ever be inside our own folder: never unmount anything else.
      typeof r.rw === 'string' && path.dirname(r.rw) === rwDir,
  );
}

async function writeRecord(stateDir: string, roots: RecordedRoot[]): Promise<void> {
  const file = recordFile(stateDir);
  const tmp = `${file}.tmp`;
  const fh = await fsp.open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(JSON.stringify({ format: FORMAT, roots }));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, file);
  await fsyncDir(path.dirname(file));
}

/**
 * Takes down the mounts listed in `roots`: the read-only bind over each root (only if the mount
 * on top there still is one), then every mount at its read-write path. Lazy (MNT_DETACH): a
 * shell whose working directory is inside must not keep the root read-only.
 */
async function unmountRecorded(roots: RecordedRoot[], run: MountRunner, log: Logger): Promise<number> {
  let lifted = 0;
  for (const r of roots) {
    for (let i = 0; i < 8; i++) {
      const mounts = await readMounts();
      const top = mountsAt(mounts, r.path).at(-1);
      if (top === undefined || !isProtectionMount(mounts, top)) break;
      await run('umount', ['-l', r.path]);
      lifted++;
    }
  }
  for (const r of roots) {
    for (let i = 0; i < 8; i++) {
      if (mountsAt(await readMounts(), r.rw).length === 0) break;
      await run('umount', ['-l', r.rw]);
    }
  }
  if (lifted > 0) log.info({ roots: roots.map((r) => r.name) }, 'standby: protected roots are writable again');
  return lifted;
}

export interface RootProtectionOptions {
  stateDir: string;
  roots: ProtectedRoot[];
  log: Logger;
  clock: Clock;
  /** Test seam: how mount(8) and umount(8) are run. */
  run?: MountRunner;
}

export class RootProtection {
  private readonly log: Logger;
  private readonly run: MountRunner;
  private recorded: RecordedRoot[] = [];
  private failure: Alarm | undefined;

  constructor(private readonly opts: RootProtectionOptions) {
    this.log = opts.log.child({ component: 'standby' });
    this.run = opts.run ?? runMount;
  }

  /**
   * Lifts whatever protection an agent of this state directory left behind (it was killed, or
   * the machine's mounts outlived it). Called at every start, whatever the role and the config.
   */
  static async releaseLeftovers(stateDir: string, log: Logger, run: MountRunner = runMount): Promise<number> {
    let roots: RecordedRoot[] | undefined;
    try {
      roots = await readRecord(stateDir);
    } catch (err) {
      log.warn({ err, file: recordFile(stateDir) }, 'standby: the record of protected roots is damaged; nothing is lifted from it');
      return 0;
    }
    if (roots === undefined) return 0;
    let lifted: number;
    try {
      lifted = await unmountRecorded(roots, run, log);
    } catch (err) {
      // The record stays, so the next start tries again; meanwhile the error says what to do.
      log.error({ err, code: 'TANDEM_ERR_PROTECT_FAILED', roots: roots.map((r) => r.path) }, 'standby: cannot lift the read-only protection a previous agent left; umount -l each root');
      return 0;
    }
    if (lifted > 0) log.warn({ roots: roots.map((r) => r.path) }, 'standby: lifted the read-only protection a previous agent left (it did not stop cleanly)');
    await fsp.rm(recordFile(stateDir), { force: true });
    return lifted;
  }

  /**
   * Makes every root read-only to everyone but the applier; returns the roots as the applier
   * must see them (their read-write paths). On failure nothing stays mounted, the alarm says
   * why, and the roots are returned as they are: replication goes on unprotected.
   */
  async protect(): Promise<ProtectedRoot[]> {
    const { stateDir, roots } = this.opts;
    const dir = standbyDir(stateDir);
    const rwDir = path.join(dir, 'rw');
    try {
      if (process.getuid?.() !== 0) throw new Error('the agent does not run as root');
      await fsp.mkdir(rwDir, { recursive: true, mode: 0o700 });
      // Only root may reach the read-write side, whatever the umask or an older install made.
      await fsp.chmod(dir, 0o700);
      await fsp.chmod(rwDir, 0o700);
      const planned: RecordedRoot[] = [];
      for (const r of roots) {
        // The root must exist to be mounted over; the passive creates a missing one anyway.
        await fsp.mkdir(r.path, { recursive: true, mode: 0o755 });
        const real = await fsp.realpath(r.path);
        const rw = path.join(rwDir, r.name);
        await fsp.mkdir(rw, { recursive: true, mode: 0o700 });
        planned.push({ name: r.name, path: real, rw });
      }
      // Recorded before anything is mounted: a kill at any later point leaves a record that
      // names every mount the next start must lift.
      await writeRecord(stateDir, planned);
      this.recorded = planned;
      for (const r of planned) await this.run('mount', ['--bind', r.path, r.rw]);
      for (const r of planned) await this.run('mount', ['--bind', '-o', 'ro', r.path, r.path]);
      const mounts = await readMounts();
      for (const r of planned) {
        const top = mountsAt(mounts, r.path).at(-1);
        if (top === undefined || !isReadOnly(top)) throw new Error(`${r.path} is not read-only after mounting`);
        const rw = mountsAt(mounts, r.rw).at(-1);
        if (rw === undefined || isReadOnly(rw)) throw new Error(`${r.rw} is not a read-write mount of ${r.path}`);
      }
      this.failure = undefined;
      this.log.info({ roots: planned.map((r) => r.path) }, 'standby: protected roots are read-only while this node is passive');
      return roots.map((r, i) => ({ ...r, path: planned[i]!.rw }));
    } catch (err) {
      const e = TandemError.wrap(err, { code: 'TANDEM_ERR_PROTECT_FAILED', op: 'make the protected roots read-only (replication.protectPassive)', hint: PROTECT_HINT });
      this.failure = { code: e.code, message: e.message, hint: e.hint, since: this.opts.clock.now() };
      this.log.error({ err: e, code: e.code }, 'standby: cannot make the protected roots read-only; replicating unprotected');
      await this.release().catch((e2: unknown) => this.log.error({ err: e2 }, 'standby: cannot undo a partial protection'));
      return roots;
    }
  }

  /** Lifts the protection (a promotion, or the agent stops). */
  async release(): Promise<void> {
    if (this.recorded.length === 0) return;
    try {
      await unmountRecorded(this.recorded, this.run, this.log);
    } catch (err) {
      this.log.error({ err, code: 'TANDEM_ERR_PROTECT_FAILED', reason: describeCause(err) }, 'standby: cannot lift the read-only protection; the next start of the agent lifts it, or umount -l each root');
      throw err;
    }
    this.recorded = [];
    await fsp.rm(recordFile(this.opts.stateDir), { force: true });
  }

  /** TANDEM_ERR_PROTECT_FAILED while protection was asked for and could not be set up. */
  alarm(): Alarm | undefined {
    return this.failure;
  }
}
