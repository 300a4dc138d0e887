// One syncfs(2) for a whole file system, in place of thousands of fsyncs. Each fsync of a new
// small file on ext4 is a journal commit of its own; a synchronisation of many small files paid
// one per file. syncfs writes every dirty page and inode of the file system and commits once:
// measured on a fresh ext4 here, 10,000 new 1 KiB files made durable in 0.46 s by one syncfs
// against 2.2-3.1 s by fsyncs, 64 at a time (and a third of the CPU). Node has no syncfs, so
// coreutils' `sync -f` makes the call; a write error not yet reported to anyone is reported to
// it, as to an fsync (the kernel reports an unseen error to the first caller that checks).
// Never used for files it was not told about: the applier decides what it covers.
//
// `sync` is not started from the agent each time: a fork of the agent (hundreds of MiB mapped)
// copies its page tables and write-protects every page it touched, and each page the agent then
// writes takes a fault. On a VM where a fault costs ~5 µs, a catch-up that ran ~100 syncfs spent
// about a tenth of the passive's main thread in those faults. A small shell started once per root
// (SyncfsHelper) forks `sync` instead: forking a shell costs next to nothing.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { findProgram } from '../../shared/system-program.ts';

/** Where `sync` is looked for: absolute paths only, whatever PATH the agent was started with. */
const SYNC_LOCATIONS = ['/usr/bin/sync', '/bin/sync'] as const;
/** Where the helper's shell is looked for. */
const SHELL_LOCATIONS = ['/bin/sh', '/usr/bin/sh'] as const;

export function findSync(locations: readonly string[] = SYNC_LOCATIONS): string | undefined {
  return findProgram(locations);
}

/** syncfs of the file system holding `dir`, by `bin -f -- dir`; rejects with what it printed. */
export function syncFileSystem(bin: string, dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(bin, ['-f', '--', dir], { timeout: 0, windowsHide: true }, (err, _stdout, stderr) => {
      if (err === null) return resolve();
      const detail = String(stderr).trim();
      reject(Object.assign(new Error(`${bin} -f ${dir} failed: ${detail !== '' ? detail : err.message}`), { cause: err, code: (err as NodeJS.ErrnoException).code }));
    });
  });
}

/**
 * Each line read is one request: run `sync -f -- DIR` and answer one line, its exit status and
 * what it printed on one line. `$0` is sync, `$1` the directory: both arrive as arguments and
 * are never parsed by the shell, whatever they contain. The loop ends at end of input, when the
 * agent closes the pipe or dies.
 */
const HELPER_SCRIPT = `while IFS= read -r _; do
  out=$("$0" -f -- "$1" 2>&1); rc=$?
  [ -n "$out" ] && out=$(printf '%s' "$out" | tr '\\n' ' ')
  printf '%s %s\\n' "$rc" "$out"
done`;

interface Pending {
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * syncfs of one directory's file system, as many times as asked, through one long-lived shell.
 * Requests are answered in order. If the shell cannot run or dies, the request fails and the
 * next one starts a new shell. Never runs anything but `bin -f -- dir`.
 */
export class SyncfsHelper {
  private child: ChildProcess | undefined;
  private readonly pending: Pending[] = [];
  private buffered = '';
  private closed = false;

  constructor(
    private readonly bin: string,
    private readonly dir: string,
    private readonly shell: string | undefined = findProgram(SHELL_LOCATIONS),
  ) {}

  /** Pid of the running shell (tests). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  sync(): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`${this.bin} -f ${this.dir}: the applier is closed`));
    // No shell here: one `sync` per call, as before the helper.
    if (this.shell === undefined) return syncFileSystem(this.bin, this.dir);
    const child = this.child ?? this.start(this.shell);
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.holdLoop(child);
      child.stdin!.write('\n');
    });
  }

  /**
   * The shell keeps the process alive only while a request waits for it: idle, it must not hold
   * the agent up; busy, an unref'd shell would let a process whose only work is this syncfs
   * (a script, a tool) exit before the answer, the request never settled.
   */
  private holdLoop(child: ChildProcess | undefined): void {
    if (child === undefined) return;
    const on = this.pending.length > 0;
    if (on) child.ref();
    else child.unref();
    const out = child.stdout as unknown as { ref?: () => void; unref?: () => void } | null;
    if (on) out?.ref?.();
    else out?.unref?.();
  }

  /** Ends the shell (end of input) and fails what is still waiting. */
  close(): void {
    this.closed = true;
    const child = this.child;
    this.child = undefined;
    child?.stdin?.end();
    this.failAll(new Error(`${this.bin} -f ${this.dir}: the applier closed before it answered`));
    this.holdLoop(child);
  }

  private start(shell: string): ChildProcess {
    const child = spawn(shell, ['-c', HELPER_SCRIPT, this.bin, this.dir], { stdio: ['pipe', 'pipe', 'ignore'], windowsHide: true });
    this.child = child;
    this.buffered = '';
    child.stdout!.setEncoding('utf8');
    // Only the current shell answers the requests waiting: a line a dead shell left in its pipe
    // must never settle a request made of its successor (one that never ran would count as done).
    child.stdout!.on('data', (chunk: string) => {
      if (this.child === child) this.onOutput(chunk);
    });
    // A write to a shell that died fails here; 'exit' below fails the requests.
    child.stdin!.on('error', () => undefined);
    const gone = (why: string, code?: string) => {
      if (this.child !== child) return;
      this.child = undefined;
      this.failAll(Object.assign(new Error(`${this.bin} -f ${this.dir}: ${why}`), code === undefined ? {} : { code }));
    };
    child.on('error', (err: NodeJS.ErrnoException) => gone(`the helper shell ${shell} cannot run: ${err.message}`, err.code));
    child.on('exit', (code, signal) => gone(`the helper shell ended (${signal ?? `exit ${code}`})`));
    // The agent may stop without closing the applier: the shell must not hold it up.
    child.unref();
    for (const s of [child.stdin, child.stdout]) (s as unknown as { unref?: () => void } | null)?.unref?.();
    return child;
  }

  private onOutput(chunk: string): void {
    this.buffered += chunk;
    for (let nl = this.buffered.indexOf('\n'); nl >= 0; nl = this.buffered.indexOf('\n')) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      const p = this.pending.shift();
      if (p === undefined) continue;
      if (this.pending.length === 0) this.holdLoop(this.child);
      const sp = line.indexOf(' ');
      const rc = Number(sp < 0 ? line : line.slice(0, sp));
      const detail = sp < 0 ? '' : line.slice(sp + 1).trim();
      if (rc === 0) p.resolve();
      else {
        // The shell's own codes for a program it cannot find or run: the caller stops using sync.
        const code = rc === 127 ? 'ENOENT' : rc === 126 ? 'EACCES' : undefined;
        p.reject(Object.assign(new Error(`${this.bin} -f ${this.dir} failed: ${detail !== '' ? detail : `exit ${rc}`}`), code === undefined ? {} : { code }));
      }
    }
  }

  private failAll(err: Error): void {
    for (const p of this.pending.splice(0)) p.reject(err);
  }
}
