// The small files a synchronisation is about to send, read ahead by a worker thread: for
// 100,000 files of 1 KiB the active's main thread spent a third of its time in the five system
// calls per file (the parent's check, open, stat, read, close), and the passive now keeps up
// with more. What is read ahead is only ever a hint: the runner uses it for a file only when it is
// still the very inode, size and mtime the active manifest holds, with no attribute to read, and
// sends its blocks only when each still hashes as that manifest says (as for any read); anything
// else is read again as before. The worker walks as the runner does: the parent opened with
// O_DIRECTORY|O_NOFOLLOW and kept only while its real path is exactly where it must be
// (checked before each file), the file opened through it with O_NOFOLLOW; it never follows a link.
import { constants as C } from 'node:fs';
import { JobWorker } from '../../shared/job-worker.ts';

/** Files up to this size are read ahead (larger ones are read in runs by the runner itself). */
export const READ_AHEAD_FILE_MAX = 64 * 1024;
/** At most this many bytes read ahead and not yet used... */
export const READ_AHEAD_BYTES = 2 * 1024 * 1024;
/** ...this many per job (the worker reads into one shared buffer of this size)... */
export const READ_AHEAD_JOB_BYTES = 1024 * 1024;
/** ...and this many files per job. */
export const READ_AHEAD_FILES = 1024;

/** A file read ahead: what its stat said when it was read, and its bytes. */
export interface ReadAheadFile {
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  data: Buffer;
}

/** One file to read: its parent's real path, its name there, and the size the manifest says it has. */
export interface ReadAheadRequest {
  key: string;
  /** Its place in the runner's plan: once the runner is past it, it is dropped (dropBefore). */
  pos: number;
  dir: string;
  name: string;
  size: number;
}

/** Numbers per file in the worker's answer: read (1) or not (0), ino, size, mtimeMs, ctimeMs, offset in the data. */
const FIELDS = 6;

// The worker reads into, and answers through, buffers shared with the main thread and allocated
// once: what a thread allocates and another frees stays in the first one's malloc arena (an
// answer of 2 MiB transferred per job grew the agent by 30-70 MiB).
const WORKER_SOURCE = `
'use strict';
const fs = require('node:fs');
const { parentPort } = require('node:worker_threads');
const DIR_FLAGS = ${C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW};
const FILE_FLAGS = ${C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK};
const stillAt = (fd, want) => { try { return fs.readlinkSync('/proc/self/fd/' + fd) === want; } catch { return false; } };
parentPort.on('message', (job) => {
  const data = new Uint8Array(job.data);
  const out = new Float64Array(job.out);
  const names = job.names.split('/');
  let kept;
  let at = 0;
  for (let i = 0; i < names.length; i++) {
    const o = i * ${FIELDS};
    out[o] = 0;
    const dir = job.dirs[job.dirOf[i]];
    const size = job.sizes[i];
    if (kept !== undefined && (kept.want !== dir || !stillAt(kept.fd, dir))) { fs.closeSync(kept.fd); kept = undefined; }
    if (kept === undefined) {
      let dfd;
      try { dfd = fs.openSync(dir, DIR_FLAGS); } catch { continue; }
      if (!stillAt(dfd, dir)) { fs.closeSync(dfd); continue; }
      kept = { want: dir, fd: dfd };
    }
    if (at + size > data.length) continue;
    let fd;
    try { fd = fs.openSync('/proc/self/fd/' + kept.fd + '/' + names[i], FILE_FLAGS); } catch { continue; }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile() || st.size !== size) continue;
      let got = 0;
      while (got < size) {
        const n = fs.readSync(fd, data, at + got, size - got, got);
        if (n === 0) break;
        got += n;
      }
      if (got !== size) continue;
      out[o] = 1; out[o + 1] = st.ino; out[o + 2] = st.size; out[o + 3] = st.mtimeMs; out[o + 4] = st.ctimeMs; out[o + 5] = at;
      at += size;
    } catch {
      // Not read: the runner reads it itself.
    } finally {
      fs.closeSync(fd);
    }
  }
  if (kept !== undefined) fs.closeSync(kept.fd);
  parentPort.postMessage(names.length);
});
`;

interface Job {
  data: SharedArrayBuffer;
  out: SharedArrayBuffer;
  /** Parent directories, and for each file the index of its own. */
  dirs: string[];
  dirOf: Int32Array;
  /** The files' names, joined by '/' (which no name holds). */
  names: string;
  sizes: Float64Array;
}

/**
 * Files read ahead, by key, until taken. One job out at a time; what a job read is copied out of
 * the shared buffer once when it answers, its files views of that copy, held until the runner
 * takes them, within READ_AHEAD_BYTES.
 */
export class ReadAhead {
  private readonly worker = new JobWorker<Job, number>('read-ahead worker', WORKER_SOURCE);
  private readonly ready = new Map<string, { file: ReadAheadFile; pos: number }>();
  private data: SharedArrayBuffer | undefined;
  private out: SharedArrayBuffer | undefined;
  private held = 0;
  private asked = 0;
  private job: Promise<void> | undefined;
  private closed = false;
  /** Files taken that were read ahead (for tests and benchmarks). */
  used = 0;

  /** `onFail`: told once, when the thread failed (every file is then read by the runner itself). */
  constructor(private readonly onFail: (err: unknown) => void = () => undefined) {}

  /** Whether a new job may go out now (none out, the thread usable). */
  get idle(): boolean {
    return this.worker.usable && !this.worker.busy;
  }

  /** Bytes read ahead or being read, not yet taken. */
  get bytes(): number {
    return this.held + this.asked;
  }

  /**
   * Asks for `files` (not waited for): they are there to take once the job answers. At most
   * READ_AHEAD_FILES of them and READ_AHEAD_JOB_BYTES in all are read; the rest are not.
   */
  request(files: ReadAheadRequest[]): void {
    if (files.length === 0 || !this.idle) return;
    files = files.slice(0, READ_AHEAD_FILES);
    this.data ??= new SharedArrayBuffer(READ_AHEAD_JOB_BYTES);
    this.out ??= new SharedArrayBuffer(READ_AHEAD_FILES * FIELDS * 8);
    const dirs: string[] = [];
    const dirOf = new Int32Array(files.length);
    const sizes = new Float64Array(files.length);
    for (let i = 0; i < files.length; i++) {
      const f = files[i]!;
      if (dirs[dirs.length - 1] !== f.dir) dirs.push(f.dir);
      dirOf[i] = dirs.length - 1;
      sizes[i] = f.size;
      this.asked += f.size;
    }
    const data = new Uint8Array(this.data);
    const out = new Float64Array(this.out);
    this.job = this.worker
      .run({ data: this.data, out: this.out, dirs, dirOf, names: files.map((f) => f.name).join('/'), sizes })
      .then(() => {
        // One copy of what the job read (the shared buffer serves the next job), each file a
        // view of it: a copy per file cost ~3 µs of Buffer.from's pool at 100,000 files. The
        // copy lives until the last file of the job is sent, within READ_AHEAD_JOB_BYTES.
        let end = 0;
        for (let i = 0; i < files.length; i++) {
          const o = i * FIELDS;
          if (out[o] === 1) end = Math.max(end, out[o + 5]! + out[o + 2]!);
        }
        const copy = Buffer.allocUnsafeSlow(end);
        copy.set(data.subarray(0, end));
        for (let i = 0; i < files.length; i++) {
          const o = i * FIELDS;
          if (out[o] !== 1) continue;
          const size = out[o + 2]!;
          const at = out[o + 5]!;
          const f: ReadAheadFile = { ino: out[o + 1]!, size, mtimeMs: out[o + 3]!, ctimeMs: out[o + 4]!, data: copy.subarray(at, at + size) };
          this.ready.set(files[i]!.key, { file: f, pos: files[i]!.pos });
          this.held += size;
        }
      })
      // A failed thread is not used again (idle stays false): the runner reads every file itself.
      .catch((err: unknown) => {
        if (!this.closed) this.onFail(err);
      })
      .finally(() => {
        this.asked = 0;
        this.job = undefined;
      });
  }

  /** Resolves once the job out (if any) answered and its files are there to take. */
  async settled(): Promise<void> {
    await this.job;
  }

  /** The file read ahead under `key`, once (undefined when it was not, or could not be, read). */
  take(key: string): ReadAheadFile | undefined {
    const r = this.ready.get(key);
    if (r === undefined) return undefined;
    this.ready.delete(key);
    this.held -= r.file.size;
    this.used++;
    return r.file;
  }

  /** Drops the files of plan places before `pos` (the runner went past them before they were read). */
  dropBefore(pos: number): void {
    for (const [key, r] of this.ready) {
      if (r.pos >= pos) continue;
      this.ready.delete(key);
      this.held -= r.file.size;
    }
  }

  close(): Promise<void> {
    this.closed = true;
    this.ready.clear();
    this.held = 0;
    this.data = undefined;
    this.out = undefined;
    return this.worker.close();
  }
}
