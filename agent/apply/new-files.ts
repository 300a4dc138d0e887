// New small files in bulk (an initial synchronisation, thousands of files a second): a run of
// records that each create a file the passive does not have yet (its file record, its writes
// from offset 0 to its size, its meta) is handed to one worker thread, which makes the system
// calls of each file in order while the main thread goes on receiving and decoding. The worker
// must never do anything the applier's own path would not: the same kinds of calls on the same
// descriptors (WORKER_SOURCE says which, in what order), each parent checked before each file as
// the applier checks a kept one (dirStillAt). Anything unexpected (a name already there, a parent moved, any error) stops the
// run at that file, which the applier then applies record by record and reports as it would.
import { constants as C } from 'node:fs';
import type { DataRecord, FileRecord, MetaRecord, WriteRecord } from '../../shared/protocol/index.ts';
import { PRIVILEGE_BITS } from '../tree/owner-policy.ts';
import { JobWorker } from '../../shared/job-worker.ts';
import type { FileStat } from '../tree/file-stat.ts';

/** A run hands over at least this many files (fewer cost more in messages than they save). */
export const NEW_FILES_MIN = 32;
/** At most this many files per hand-over... */
export const NEW_FILES_MAX = 512;
/** ...and this many bytes of their data (copied once into the message). */
export const NEW_FILES_MAX_BYTES = 4 * 1024 * 1024;
/** A file larger than this is written by the applier itself (its writes may be large). */
export const NEW_FILE_MAX_BYTES = 256 * 1024;
/**
 * The size of the buffers a run's bytes travel in: any run fits (it closes once past
 * NEW_FILES_MAX_BYTES, with one file of at most NEW_FILE_MAX_BYTES more).
 */
export const RUN_BUFFER_BYTES = NEW_FILES_MAX_BYTES + NEW_FILE_MAX_BYTES;
/** Buffers kept for the next runs: one being created, one sent behind it, one being filled. */
const SPARE_BUFFERS = 3;

/** One new file of a run, as the records say it. */
export interface NewFile {
  file: FileRecord;
  writes: WriteRecord[];
  meta: MetaRecord;
  /** Index of the record after its meta. */
  next: number;
}

/**
 * The new file whose records start at `i`, pure: a file record, then its write records in order
 * from offset 0 with no gap up to exactly its size (raw data, no hole), then its meta with no
 * setuid/setgid bit (those take the applier's path, which decides and reports them). Undefined
 * for anything else; the caller still checks what depends on the tree (the manifest, owners).
 */
export function newFileAt(records: readonly DataRecord[], i: number, maxBytes = NEW_FILE_MAX_BYTES): NewFile | undefined {
  const file = records[i];
  if (file?.op !== 'file' || file.size > maxBytes) return undefined;
  const writes: WriteRecord[] = [];
  let end = 0;
  let k = i + 1;
  for (;;) {
    const w = records[k];
    if (w?.op !== 'write' || w.root !== file.root || w.path !== file.path) break;
    if (w.offset !== end || w.encoding !== undefined || w.data.length === 0) return undefined;
    end += w.data.length;
    writes.push(w);
    k++;
  }
  const meta = records[k];
  if (end !== file.size || meta?.op !== 'meta' || meta.root !== file.root || meta.path !== file.path) return undefined;
  if ((meta.mode & PRIVILEGE_BITS) !== 0) return undefined;
  return { file, writes, meta, next: k + 1 };
}

/** What the worker is asked to do for one file. */
export interface NewFileJob {
  /** The parent directory's descriptor (held open by the caller until the run is over)... */
  dir: number;
  /** ...and the real path it must still be at, checked before the file is created. */
  want: string;
  name: string;
  /** Where its bytes are in the run's data. */
  start: number;
  end: number;
  /** The owner to give it (-1: leave it as created). */
  uid: number;
  gid: number;
  /** The owner it gets when created (this process's, or the group of a setgid parent). */
  newUid: number;
  newGid: number;
  mode: number;
  /** Its mtime (and atime), in seconds. */
  time: number;
}

/** Why a run stopped before its end. */
export interface NewFilesStop {
  /** `exists`: something is at the name; `moved`: the parent is no longer at its path; `error`: a call failed. */
  reason: 'exists' | 'moved' | 'error';
  errno?: string;
  message?: string;
}

export interface NewFilesResult {
  /** Files created, in order, with everything their records say: the first `done` jobs. */
  done: number;
  /** The stat of each created file after its meta, as the manifest keeps it. */
  stats: FileStat[];
  stop?: NewFilesStop;
}

/** Numbers per file in the worker's answer (FileStat's fields in order). */
const STAT_FIELDS = 8;

/** How a new file is created, by the worker and by the applier's own path alike (never through a link, never over anything). */
export const NEW_FILE_FLAGS = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW;

/**
 * The worker's code, plain JavaScript evaluated as a script: it runs under tests (from sources)
 * and from the build alike, with nothing to resolve. For each file in order: the parent still at
 * its path (readlink of its descriptor), create with O_EXCL|O_NOFOLLOW (never through a link,
 * never over anything), write, chown if the owner it was created with differs, chmod if the owner
 * changed or the mode differs (chown first: it clears setuid/setgid), utimes, stat, close. The
 * owner and mode a new file gets are what the caller expects (its mode 0600 under the agent's
 * umask); the stat after checks them, and a file that came out otherwise (a default ACL, a
 * mount's group rule) gets its owner and mode set then.
 */
const WORKER_SOURCE = `
'use strict';
const fs = require('node:fs');
const { parentPort } = require('node:worker_threads');
parentPort.on('message', (job) => {
  const files = job.files;
  const data = new Uint8Array(job.data);
  const stats = new Float64Array(files.length * ${STAT_FIELDS});
  let done = 0;
  let stop;
  for (const f of files) {
    let here;
    try { here = fs.readlinkSync('/proc/self/fd/' + f.dir); } catch { here = undefined; }
    if (here !== f.want) { stop = { reason: 'moved' }; break; }
    let fd;
    try {
      fd = fs.openSync('/proc/self/fd/' + f.dir + '/' + f.name, job.flags, job.createMode);
    } catch (err) {
      stop = { reason: err.code === 'EEXIST' ? 'exists' : 'error', errno: err.code, message: err.message };
      break;
    }
    try {
      for (let pos = 0, len = f.end - f.start; pos < len; ) {
        const w = fs.writeSync(fd, data, f.start + pos, len - pos, pos);
        if (w === 0) throw Object.assign(new Error('write wrote nothing'), { code: 'EIO' });
        pos += w;
      }
      let chowned = false;
      if (f.uid >= 0 && (f.newUid !== f.uid || f.newGid !== f.gid)) { fs.fchownSync(fd, f.uid, f.gid); chowned = true; }
      if (chowned || f.mode !== job.createMode) fs.fchmodSync(fd, f.mode);
      fs.futimesSync(fd, f.time, f.time);
      let st = fs.fstatSync(fd);
      if ((f.uid >= 0 && (st.uid !== f.uid || st.gid !== f.gid)) || (st.mode & 0o7777) !== f.mode) {
        if (f.uid >= 0) fs.fchownSync(fd, f.uid, f.gid);
        fs.fchmodSync(fd, f.mode);
        st = fs.fstatSync(fd);
      }
      const o = done * ${STAT_FIELDS};
      stats[o] = st.ino; stats[o + 1] = st.size; stats[o + 2] = st.mtimeMs; stats[o + 3] = st.mode & 0o7777;
      stats[o + 4] = st.uid; stats[o + 5] = st.gid; stats[o + 6] = st.nlink; stats[o + 7] = st.ctimeMs;
    } catch (err) {
      try { fs.closeSync(fd); } catch {}
      stop = { reason: 'error', errno: err.code, message: err.message };
      break;
    }
    fs.closeSync(fd);
    done++;
  }
  // The bytes' buffer goes back too: the next run is gathered into it (see NewFileWorker.buffer).
  parentPort.postMessage({ done, stats, stop, data: job.data }, [stats.buffer, job.data]);
});
`;

/**
 * The worker thread that creates new files (JobWorker: started on first use, one run at a time;
 * once it failed, the caller applies every file itself).
 */
export class NewFileWorker {
  private readonly worker = new JobWorker<{ files: NewFileJob[]; data: ArrayBuffer; flags: number; createMode: number }, { done: number; stats: Float64Array; stop?: NewFilesStop; data: ArrayBuffer }>('new-file worker', WORKER_SOURCE);
  /** Buffers the worker handed back, to gather the next runs' bytes in. */
  private readonly spare: ArrayBuffer[] = [];

  constructor(private readonly createMode: number) {}

  /**
   * A buffer for a run's `bytes` (at most RUN_BUFFER_BYTES): one the worker handed back when
   * there is one. A fresh buffer for every run cost the passive a page fault per 4 KiB of new
   * files' data on first write, and its memory stayed out until the worker's heap collected it.
   * The bytes past `bytes` are whatever an earlier run left there: a job names its range.
   */
  buffer(bytes: number): Uint8Array<ArrayBuffer> {
    if (bytes > RUN_BUFFER_BYTES) return new Uint8Array(bytes);
    return new Uint8Array(this.spare.pop() ?? new ArrayBuffer(RUN_BUFFER_BYTES), 0, bytes);
  }

  /** A buffer from buffer() that was never sent (its run was given up): kept for the next. */
  giveBack(data: Uint8Array<ArrayBuffer>): void {
    this.keep(data.buffer);
  }

  private keep(b: ArrayBuffer): void {
    // A detached buffer (sent) has no bytes; one of another size came from elsewhere.
    // Kept once only: two runs gathered into one buffer would write each other's bytes.
    if (b.byteLength === RUN_BUFFER_BYTES && this.spare.length < SPARE_BUFFERS && !this.spare.includes(b)) this.spare.push(b);
  }

  /** False once the worker failed: every file then takes the applier's own path. */
  get usable(): boolean {
    return this.worker.usable;
  }

  /** Creates the files of `jobs` in order, their bytes in `data` (transferred: unusable after; it comes back to the spare buffers). */
  async run(jobs: NewFileJob[], data: ArrayBuffer): Promise<NewFilesResult> {
    const m = await this.worker.run({ files: jobs, data, flags: NEW_FILE_FLAGS, createMode: this.createMode }, [data]);
    this.keep(m.data);
    const stats: FileStat[] = [];
    const s = m.stats;
    for (let j = 0; j < m.done; j++) {
      const o = j * STAT_FIELDS;
      stats.push({ ino: s[o]!, size: s[o + 1]!, mtimeMs: s[o + 2]!, mode: s[o + 3]!, uid: s[o + 4]!, gid: s[o + 5]!, nlink: s[o + 6]!, ctimeMs: s[o + 7]! });
    }
    return { done: m.done, stats, ...(m.stop === undefined ? {} : { stop: m.stop }) };
  }

  /** Starts the thread ahead of the first run (a synchronisation began). */
  warm(): void {
    this.worker.warm();
  }

  close(): Promise<void> {
    return this.worker.close();
  }
}
