// The btrfs-progs commands points need, run as child processes (Node has no ioctl): a read-only
// snapshot of a subvolume, the deletion of snapshots, and the list of what changed between two
// of them (`btrfs send --no-data -p`, parsed as it streams). It decides nothing: the snapshot
// store and capture do. The program is looked up in fixed system directories, never through
// PATH, and every run has a deadline; a send stream's output is parsed, never buffered whole.
import { spawn } from 'node:child_process';
import { TandemError } from '../../shared/errors.ts';
import { findProgram } from '../../shared/system-program.ts';
import type { Clock } from '../../shared/clock.ts';
import { ChangeList, type ChangeSet } from './change-list.ts';
import { SendStreamError, SendStreamParser } from './send-stream.ts';

/** Where btrfs-progs installs its program (Debian: /usr/bin; older layouts: /sbin, /bin). */
export const BTRFS_LOCATIONS = ['/usr/bin/btrfs', '/usr/sbin/btrfs', '/bin/btrfs', '/sbin/btrfs'];

/** The btrfs program, if installed (an executable regular file in one of BTRFS_LOCATIONS). */
export function findBtrfs(locations: readonly string[] = BTRFS_LOCATIONS): string | undefined {
  return findProgram(locations);
}

/** A snapshot, a deletion or a send that takes longer than this is killed and reported. */
export const BTRFS_TIMEOUT_MS = 120_000;
/** Standard error kept for the message, at most. */
const STDERR_KEEP_BYTES = 4096;

/** The shell that runs a snapshot and then a send in one child (a fixed system path, never PATH). */
const SHELL = '/bin/sh';
/** The shell's exit status when the snapshot failed (btrfs itself exits 1). */
const SNAPSHOT_FAILED = 97;
/** The line the shell writes on standard error once the snapshot is taken. */
const SNAPSHOT_TAKEN = 'tandem: snapshot taken';
/** $0 the btrfs program, $1 the subvolume, $2 the snapshot to make, $3 the snapshot to compare with. */
const SNAPSHOT_THEN_SEND = `"$0" subvolume snapshot -r "$1" "$2" >/dev/null || exit ${SNAPSHOT_FAILED}; echo '${SNAPSHOT_TAKEN}' >&2; exec "$0" send --no-data -q -p "$3" "$2"`;

export interface BtrfsOptions {
  /** The program (findBtrfs()). */
  bin: string;
  /** Times the program out. */
  clock: Clock;
  timeoutMs?: number;
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  timedOut: boolean;
}

export class Btrfs {
  private readonly timeoutMs: number;

  constructor(private readonly opts: BtrfsOptions) {
    this.timeoutMs = opts.timeoutMs ?? BTRFS_TIMEOUT_MS;
  }

  /** A read-only snapshot of the subvolume `source` at `target` (which must not exist). */
  async snapshot(source: string, target: string): Promise<void> {
    const r = await this.run(['subvolume', 'snapshot', '-r', source, target]);
    this.check(r, `take a snapshot of ${source} at ${target}`);
  }

  /** Deletes the given snapshots (the file system frees their space in the background). */
  async delete(paths: string[]): Promise<void> {
    if (paths.length === 0) return;
    const r = await this.run(['subvolume', 'delete', ...paths]);
    this.check(r, `delete the snapshots ${paths.join(', ')}`);
  }

  /**
   * What changed from the read-only snapshot `parent` to the read-only snapshot `child`, from
   * the kernel's own comparison of the two trees: exact, whatever the watcher saw or lost.
   */
  async changes(parent: string, child: string, blockSize: number, limits: { maxPaths?: number; maxBlocks?: number } = {}): Promise<ChangeSet> {
    const listing = this.listing(blockSize, limits);
    const r = await this.run(['send', '--no-data', '-q', '-p', parent, child], listing.onStdout);
    return listing.finish(r, `list the changes from ${parent} to ${child}`);
  }

  /**
   * A read-only snapshot of `source` at `target`, then what changed from `parent` to it: both
   * in one child process (a shell that runs the snapshot, then execs the send), so that a point
   * round forks the agent once instead of twice. A fork copies the agent's page tables: it was
   * the largest single cost of the active under pgbench (bench/results/points-cpu.md).
   * Throws when the snapshot was not taken; a listing that fails is returned as its error.
   */
  async snapshotAndChanges(source: string, target: string, parent: string, blockSize: number, limits: { maxPaths?: number; maxBlocks?: number } = {}): Promise<{ snapshotMs: number; changes: ChangeSet | TandemError }> {
    const listing = this.listing(blockSize, limits);
    const t0 = this.opts.clock.monotonic();
    let snapshotMs: number | undefined;
    // The paths are the shell's positional parameters, never part of its program text.
    const r = await this.run(['-c', SNAPSHOT_THEN_SEND, this.opts.bin, source, target, parent], listing.onStdout, SHELL, (marker) => {
      if (marker) snapshotMs ??= Math.round(this.opts.clock.monotonic() - t0);
    });
    if (snapshotMs === undefined) {
      // The marker never came: the snapshot failed (the shell exits SNAPSHOT_FAILED with btrfs's
      // message on standard error), or the whole command was killed before it said so.
      this.check(r.code === SNAPSHOT_FAILED ? { ...r, code: 1 } : r.code === 0 ? { ...r, code: null } : r, `take a snapshot of ${source} at ${target}`);
    }
    try {
      return { snapshotMs: snapshotMs ?? 0, changes: listing.finish(r, `list the changes from ${parent} to ${target}`) };
    } catch (err) {
      if (err instanceof TandemError) return { snapshotMs: snapshotMs ?? 0, changes: err };
      throw err;
    }
  }

  /** Parses a send stream as it comes, into the list of what changed. */
  private listing(blockSize: number, limits: { maxPaths?: number; maxBlocks?: number }): { onStdout: (chunk: Buffer) => boolean; finish: (r: RunResult, op: string) => ChangeSet } {
    const parser = new SendStreamParser();
    const list = new ChangeList({ blockSize, ...limits });
    let parseError: Error | undefined;
    const onStdout = (chunk: Buffer): boolean => {
      if (parseError !== undefined) return false;
      try {
        for (const c of parser.push(chunk)) list.add(c);
        return true;
      } catch (err) {
        parseError = err as Error;
        return false;
      }
    };
    const finish = (r: RunResult, op: string): ChangeSet => {
      if (parseError !== undefined) {
        throw new TandemError({ code: 'TANDEM_ERR_POINT_FAILED', op, reason: parseError.message, hint: 'a btrfs-progs or kernel this version does not know: report it; capture compares the whole snapshot instead' });
      }
      this.check(r, op);
      try {
        parser.finish();
      } catch (err) {
        if (!(err instanceof SendStreamError)) throw err;
        throw new TandemError({ code: 'TANDEM_ERR_POINT_FAILED', op, reason: err.message, hint: 'capture compares the whole snapshot instead' });
      }
      return list.result();
    };
    return { onStdout, finish };
  }

  private check(r: RunResult, op: string): void {
    if (r.code === 0) return;
    const why = r.timedOut ? `no answer within ${this.timeoutMs} ms` : r.signal !== null ? `killed by ${r.signal}` : `exit code ${r.code}`;
    throw new TandemError({
      code: 'TANDEM_ERR_POINT_FAILED',
      op,
      reason: `btrfs: ${why}${r.stderr === '' ? '' : `: ${r.stderr}`}`,
      hint: 'check the file system (free space: btrfs filesystem usage), that the protected root is a subvolume and that the agent runs as root',
    });
  }

  /**
   * Runs the program; `onStdout` gets its output as it comes (false: stop reading, the
   * program is killed). Resolves once it exited.
   */
  private run(args: string[], onStdout?: (chunk: Buffer) => boolean, program = this.opts.bin, onMarker?: (seen: boolean) => void): Promise<RunResult> {
    return new Promise((resolve) => {
      const child = spawn(program, args, { stdio: ['ignore', onStdout === undefined ? 'ignore' : 'pipe', 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } });
      let stderr = '';
      let timedOut = false;
      let settled = false;
      const timer = this.opts.clock.setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, this.timeoutMs);
      let marked = false;
      child.stderr!.on('data', (d: Buffer) => {
        let text = d.toString('utf8');
        // The shell's line saying the snapshot is taken: the time it came, not part of a message.
        if (onMarker !== undefined && !marked && text.includes(SNAPSHOT_TAKEN)) {
          marked = true;
          text = text.replace(`${SNAPSHOT_TAKEN}\n`, '');
          onMarker(true);
        }
        if (stderr.length < STDERR_KEEP_BYTES) stderr += text.slice(0, STDERR_KEEP_BYTES - stderr.length);
      });
      child.stdout?.on('data', (d: Buffer) => {
        if (onStdout !== undefined && !onStdout(d)) child.kill('SIGKILL');
      });
      const done = (code: number | null, signal: NodeJS.Signals | null) => {
        if (settled) return;
        settled = true;
        timer.cancel();
        resolve({ code, signal, stderr: stderr.trim(), timedOut });
      };
      child.on('error', (err) => {
        stderr ||= err.message;
        done(null, null);
      });
      child.on('close', done);
    });
  }
}
