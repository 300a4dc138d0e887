// The active side of an initial synchronisation. It starts from the passive's manifest and
// keeps a *shadow* of it: every record journaled after the sync-begin record (its own and
// capture's) is applied to the shadow in order, so at any point the shadow is what the passive
// will hold when it reaches that point of the stream. For each path it sends what differs
// between the active manifest and the shadow — as ordinary records through capture's loop, so
// they are ordered with capture's and resumable from the journal like any others.
// It never sends a block that does not match the active manifest: such a file is changing, so
// capture is asked to journal it first, and the difference is computed again.
import fsp from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import path from 'node:path';
import type { Capture, CaptureTaskContext } from '../capture/index.ts';
import type { ProtectedRoot } from '../../shared/config/index.ts';
import type { Clock } from '../../shared/clock.ts';
import type { Logger } from '../../shared/log.ts';
import { HASH_BYTES, hash64 } from '../../shared/hash.ts';
import { depthOf } from '../../shared/protocol/index.ts';
import { applyRecordToManifest, type Entry, type FileEntry, type Manifest } from '../manifest/index.ts';
import { actionBytes, diffEntry } from './entry-diff.ts';

export interface SyncProgress {
  id: string;
  startedAt: number;
  bytesTotal: number;
  bytesDone: number;
  pathsTotal: number;
  pathsDone: number;
  /** Sequence of the sync-begin record (the passive may jump to it) and of sync-end once journaled. */
  beginSeq: number;
  endSeq: number | undefined;
}

export interface SyncRunnerOptions {
  id: string;
  capture: Capture;
  /** The active's manifest. */
  manifest: Manifest;
  /** The passive's manifest as it reported it; becomes the shadow (and is changed in place). */
  shadow: Manifest;
  roots: ProtectedRoot[];
  blockSize: number;
  /** Bytes of block data one capture task may journal before it yields to capture. */
  sliceBytes: number;
  log: Logger;
  clock: Clock;
}

interface PlanItem {
  root: string;
  path: string;
}

const SLICE_PATHS = 2000;
const MAX_REFRESH_TRIES = 3;

export class SyncRunner {
  readonly progress: SyncProgress;
  private readonly log: Logger;
  private readonly rootPaths = new Map<string, string>();
  private cancelled = false;
  private unlisten: (() => void) | undefined;

  constructor(private readonly opts: SyncRunnerOptions) {
    this.log = opts.log.child({ component: 'sync', sync: opts.id });
    for (const r of opts.roots) this.rootPaths.set(r.name, r.path);
    this.progress = { id: opts.id, startedAt: opts.clock.now(), bytesTotal: 0, bytesDone: 0, pathsTotal: 0, pathsDone: 0, beginSeq: 0, endSeq: undefined };
  }

  /**
   * Journals the whole synchronisation. `onBegin` is called (inside capture's loop, before any
   * later record) with the sequence of the sync-begin record: the sender starts the passive's
   * stream there. Resolves with the sequence of the sync-end record.
   */
  async run(onBegin: (beginSeq: number) => void): Promise<number> {
    const { capture, shadow, blockSize } = this.opts;
    let plan: PlanItem[] = [];
    await capture.runTask(async (ctx) => {
      plan = this.makePlan();
      const baseSeq = ctx.headSeq();
      this.progress.pathsTotal = plan.length;
      const beginSeq = ctx.append({ op: 'sync-begin', id: this.opts.id, baseSeq, bytesTotal: this.progress.bytesTotal });
      this.progress.beginSeq = beginSeq;
      // From here on every journaled record is one the passive will apply: follow it.
      this.unlisten = capture.onAppend((r) => applyRecordToManifest(shadow, r, blockSize));
      onBegin(beginSeq);
    });
    this.log.info({ paths: plan.length, bytesTotal: this.progress.bytesTotal, beginSeq: this.progress.beginSeq }, 'sync: started');

    const retry: PlanItem[] = [];
    let i = 0;
    try {
      while (i < plan.length) {
        this.throwIfCancelled();
        await capture.runTask(async (ctx) => {
          const t0 = this.opts.clock.monotonic();
          const sliceEnd = this.progress.bytesDone + this.opts.sliceBytes;
          let n = 0;
          while (i < plan.length && n < SLICE_PATHS && this.progress.bytesDone < sliceEnd && this.opts.clock.monotonic() - t0 < 250) {
            const item = plan[i++]!;
            if (!(await this.syncPath(ctx, item))) retry.push(item);
            this.progress.pathsDone++;
            n++;
          }
        });
      }
      // Paths that kept changing under us: try again until they hold still long enough.
      for (let round = 0; retry.length > 0; round++) {
        this.throwIfCancelled();
        if (round > 0) await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** round)));
        const items = retry.splice(0);
        await capture.runTask(async (ctx) => {
          for (const item of items) if (!(await this.syncPath(ctx, item))) retry.push(item);
        });
        if (round % 10 === 9) this.log.warn({ paths: retry.length }, 'sync: files keep changing while being synchronised; still trying');
      }
      let endSeq = 0;
      await capture.runTask(async (ctx) => {
        endSeq = ctx.append({ op: 'sync-end', id: this.opts.id });
      });
      this.progress.endSeq = endSeq;
      this.log.info({ endSeq, bytesSent: this.progress.bytesDone }, 'sync: all differences journaled');
      return endSeq;
    } finally {
      this.unlisten?.();
      this.unlisten = undefined;
    }
  }

  cancel(): void {
    this.cancelled = true;
  }

  private throwIfCancelled(): void {
    if (this.cancelled) throw new Error('synchronisation cancelled');
  }

  /** Every path that differs, parents before children; bytesTotal estimates the block data. */
  private makePlan(): PlanItem[] {
    const { manifest, shadow, blockSize } = this.opts;
    const items: PlanItem[] = [];
    let bytes = 0;
    for (const root of manifest.rootNames()) {
      const seen = new Set<string>();
      const consider = (p: string) => {
        if (seen.has(p)) return;
        seen.add(p);
        const a = manifest.get(root, p);
        const action = diffEntry(a, shadow.hasRoot(root) ? shadow.get(root, p) : undefined, blockSize);
        if (action === undefined) return;
        items.push({ root, path: p });
        bytes += actionBytes(action, a, blockSize);
      };
      for (const [p] of manifest.entries(root)) consider(p);
      if (shadow.hasRoot(root)) for (const [p] of shadow.entries(root)) consider(p);
    }
    items.sort((a, b) => depthOf(a.path) - depthOf(b.path) || (a.path < b.path ? -1 : 1));
    this.progress.bytesTotal = bytes;
    return items;
  }

  /** Journals what `item` needs. False when its file kept changing and it must be tried later. */
  private async syncPath(ctx: CaptureTaskContext, item: PlanItem): Promise<boolean> {
    const { manifest, shadow, blockSize } = this.opts;
    for (let attempt = 0; attempt < MAX_REFRESH_TRIES; attempt++) {
      const a = manifest.get(item.root, item.path);
      const action = diffEntry(a, shadow.hasRoot(item.root) ? shadow.get(item.root, item.path) : undefined, blockSize);
      if (action === undefined) return true;
      switch (action.kind) {
        case 'remove':
          ctx.append({ op: action.dir ? 'rmdir' : 'unlink', root: item.root, path: item.path });
          return true;
        case 'mkdir':
          ctx.append({ op: 'mkdir', root: item.root, path: item.path, mode: action.mode });
          return true;
        case 'symlink':
          ctx.append({ op: 'symlink', root: item.root, path: item.path, target: action.target });
          return true;
        case 'file': {
          const ok = await this.sendFile(ctx, item, a as FileEntry, action.setSize, action.blocks);
          if (ok) return true;
          // The file no longer matches the manifest: let capture journal its change first.
          await ctx.refresh(item.root, item.path);
        }
      }
    }
    return false;
  }

  /**
   * Journals the differing blocks of one file, each checked against the active manifest as it
   * is read. False as soon as one does not match (the file is changing): what was journaled so
   * far matched the manifest and the shadow followed it, so the caller can simply diff again.
   */
  private async sendFile(ctx: CaptureTaskContext, item: PlanItem, entry: FileEntry, setSize: boolean, blocks: number[]): Promise<boolean> {
    const abs = path.join(this.rootPaths.get(item.root)!, item.path);
    return journalFileBlocks(ctx, { root: item.root, path: item.path, abs }, entry, { setSize, blocks, blockSize: this.opts.blockSize }, (n) => (this.progress.bytesDone += n));
  }
}


/**
 * Journals blocks `blocks` of one file (and its size first when `setSize`, its mode and mtime
 * last), each checked against the active manifest `entry` as it is read. False as soon as one
 * does not match (the file is changing): what was journaled so far matched the manifest, so
 * the caller can let capture journal the change and diff again. Shared by the initial
 * synchronisation and `tandem verify --repair`.
 */
export async function journalFileBlocks(
  ctx: CaptureTaskContext,
  file: { root: string; path: string; abs: string },
  entry: FileEntry,
  what: { setSize: boolean; blocks: number[]; blockSize: number },
  onBytes: (n: number) => void,
): Promise<boolean> {
  const bs = what.blockSize;
  const { blocks } = what;
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file.abs, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.ino !== entry.ino || st.size !== entry.size || st.mtimeMs !== entry.mtimeMs) return false;
    if (what.setSize) ctx.append({ op: 'file', root: file.root, path: file.path, size: entry.size });
    const runBlocks = Math.max(1, Math.floor((4 << 20) / bs));
    const buf = Buffer.allocUnsafe(runBlocks * bs);
    for (let k = 0; k < blocks.length; ) {
      // A run of consecutive blocks is read in one call.
      let n = 1;
      while (k + n < blocks.length && n < runBlocks && blocks[k + n] === blocks[k]! + n) n++;
      const offset = blocks[k]! * bs;
      const len = Math.min(entry.size, offset + n * bs) - offset;
      let got = 0;
      while (got < len) {
        const { bytesRead } = await fh.read(buf, got, len - got, offset + got);
        if (bytesRead === 0) return false;
        got += bytesRead;
      }
      for (let j = 0; j < n; j++) {
        const b = blocks[k + j]!;
        const data = buf.subarray(j * bs, Math.min(len, (j + 1) * bs));
        const hash = hash64(data);
        if (hash.compare(entry.blocks, b * HASH_BYTES, (b + 1) * HASH_BYTES) !== 0) return false;
        await ctx.makeRoom();
        ctx.append({ op: 'write', root: file.root, path: file.path, offset: b * bs, data, hash });
        onBytes(data.length);
      }
      k += n;
    }
    ctx.append({ op: 'meta', root: file.root, path: file.path, mode: entry.mode, mtimeMs: entry.mtimeMs });
    return true;
  } finally {
    await fh.close();
  }
}

/** Turns a manifest received from the passive into Entry objects (no inode: another machine's). */
export function entryFromWire(e: { kind: 'file' | 'dir' | 'symlink'; mode: number; size: number; mtimeMs: number; blocks?: Uint8Array | undefined; target?: string | undefined }): Entry {
  switch (e.kind) {
    case 'file':
      return { kind: 'file', mode: e.mode, size: e.size, mtimeMs: e.mtimeMs, ino: 0, blocks: Buffer.from(e.blocks ?? new Uint8Array(0)), readAt: 0 };
    case 'dir':
      return { kind: 'dir', mode: e.mode, ino: 0, mtimeMs: e.mtimeMs };
    case 'symlink':
      return { kind: 'symlink', target: e.target ?? '', ino: 0, mtimeMs: e.mtimeMs };
  }
}
