// Keeps the manifest on disk: a snapshot plus a log of changed entries, compacted when the log
// outgrows the snapshot. The store may lag behind the truth (a crash loses the last changes)
// but must never run ahead of it: callers flush only after the data the entries describe is
// durable (the journal on the active, the applied files on the passive).
// A manifest that merely lags would forget files journaled just before a crash, and never
// journal their removal. So on the active the journal is the manifest's write-ahead log: each
// flush records the journal sequence it reflects (`throughSeq`), and after a restart the records
// journaled past it are replayed into the manifest (capture/manifest-recovery.ts) first.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../shared/log.ts';
import { encodeFrameOf, parseFramesWith } from '../../shared/protocol/index.ts';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../../shared/constants.ts';
import { TandemError } from '../../shared/errors.ts';
import { Manifest, type Entry } from './manifest.ts';

const FORMAT = 1;

interface Header {
  format: number;
  blockSize: number;
  roots: string[];
  /** The journal sequence the entries that follow reflect (0 on a passive). */
  throughSeq?: number;
}

/** Written after the deltas of a flush: everything up to `mark` is reflected. */
interface Mark {
  mark: number;
}

interface Delta {
  r: string;
  p: string;
  /** The entry, or null when the path was removed. */
  e: Entry | null;
}

function deltaProblem(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null) return 'not a map';
  const d = v as Record<string, unknown>;
  if ('mark' in d) return typeof d.mark === 'number' && Number.isSafeInteger(d.mark) ? undefined : 'bad mark';
  if (typeof d.r !== 'string' || typeof d.p !== 'string') return 'bad key';
  if (d.e === null) return undefined;
  if (typeof d.e !== 'object' || d.e === undefined) return 'bad entry';
  const e = d.e as Record<string, unknown>;
  if (e.kind !== 'file' && e.kind !== 'dir' && e.kind !== 'symlink') return 'bad kind';
  if (e.kind === 'file' && !(e.blocks instanceof Uint8Array)) return 'bad blocks';
  if (e.xattrHash !== undefined && !(e.xattrHash instanceof Uint8Array)) return 'bad xattrHash';
  return undefined;
}

function headerProblem(v: unknown): string | undefined {
  const h = v as Partial<Header> | null;
  return h !== null && typeof h === 'object' && h.format === FORMAT && typeof h.blockSize === 'number' && Array.isArray(h.roots)
    ? undefined
    : 'bad header';
}

export interface ManifestStoreOptions {
  dir: string;
  roots: string[];
  blockSize: number;
  log: Logger;
}

export class ManifestStore {
  readonly manifest: Manifest;
  private readonly dirty = new Map<string, { root: string; path: string }>();
  private changesFd: number;
  private changesBytes: number;
  private snapshotBytes: number;
  private through = 0;

  private constructor(
    private readonly opts: ManifestStoreOptions,
    manifest: Manifest,
    changesFd: number,
    changesBytes: number,
    snapshotBytes: number,
  ) {
    this.manifest = manifest;
    this.changesFd = changesFd;
    this.changesBytes = changesBytes;
    this.snapshotBytes = snapshotBytes;
    manifest.onChange((root, p) => this.dirty.set(`${root}\0${p}`, { root, path: p }));
  }

  static async open(opts: ManifestStoreOptions): Promise<ManifestStore> {
    const log = opts.log;
    await fsp.mkdir(opts.dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    const snapFile = path.join(opts.dir, 'snapshot');
    const changesFile = path.join(opts.dir, 'changes');
    const manifest = new Manifest(opts.roots);
    let snapshotBytes = 0;
    let usable = true;

    let throughSeq = 0;
    const load = (buf: Buffer, what: string): (Delta | Mark)[] | undefined => {
      const { frames: headerFrames } = parseFramesWith<Header>(buf.subarray(0, Math.min(buf.length, 4096)), 0, headerProblem);
      const header = headerFrames[0];
      if (header === undefined) return undefined;
      if (header.entry.blockSize !== opts.blockSize) {
        log.warn({ file: what, was: header.entry.blockSize, now: opts.blockSize }, 'manifest: block size changed, every file will be hashed again');
        usable = false;
        return undefined;
      }
      if (header.entry.throughSeq !== undefined) throughSeq = header.entry.throughSeq;
      const { frames, stop } = parseFramesWith<Delta | Mark>(buf, header.length, deltaProblem);
      if (stop.kind !== 'end') log.warn({ file: what, offset: stop.offset, kind: stop.kind }, 'manifest: damaged tail cut');
      return frames.map((f) => f.entry);
    };

    const snap = await readIfExists(snapFile);
    if (snap !== undefined) {
      snapshotBytes = snap.length;
      const deltas = load(snap, snapFile);
      if (deltas === undefined && usable) {
        throw new TandemError({
          code: 'TANDEM_ERR_STATE_IO',
          op: `open manifest ${snapFile}`,
          reason: 'the snapshot header is damaged',
          hint: 'move the manifest folder aside; the agent then hashes every protected file again',
        });
      }
      for (const d of deltas ?? []) throughSeq = applyDelta(manifest, d) ?? throughSeq;
    }
    const changes = usable ? await readIfExists(changesFile) : undefined;
    let changesBytes = 0;
    if (changes !== undefined && changes.length > 0) {
      const deltas = load(changes, changesFile);
      if (deltas !== undefined) {
        for (const d of deltas) throughSeq = applyDelta(manifest, d) ?? throughSeq;
        changesBytes = changes.length;
      }
    }
    if (!usable) {
      manifest.clear();
      throughSeq = 0;
    }

    // Start a fresh changes log after a compacting snapshot, so a damaged tail is never appended to.
    const store = new ManifestStore(opts, manifest, -1, 0, snapshotBytes);
    store.through = throughSeq;
    await store.writeSnapshot();
    store.dirty.clear();
    log.debug({ entries: manifest.count(), loadedChangeBytes: changesBytes }, 'manifest: loaded');
    return store;
  }

  /** The journal sequence the persisted manifest reflects (active; 0 on a passive). */
  get throughSeq(): number {
    return this.through;
  }

  /**
   * Writes the entries changed since the last flush. Call only once they describe durable data;
   * `throughSeq` (active) is the last journal sequence they reflect.
   */
  async flush(throughSeq?: number): Promise<void> {
    const marks = throughSeq !== undefined && throughSeq !== this.through;
    if (this.dirty.size === 0 && !marks) return;
    const parts = this.encodeDirty();
    if (throughSeq !== undefined) parts.push(encodeFrameOf({ mark: throughSeq } satisfies Mark));
    const buf = Buffer.concat(parts);
    await writeAll(this.changesFd, buf);
    if (throughSeq !== undefined) this.through = throughSeq;
    this.changesBytes += buf.length;
    if (this.compactionDue()) await this.writeSnapshot();
  }

  /**
   * The entries changed since the last flush, as they are now, no longer counted as changed:
   * the passive takes them once a group of records is applied, and writes them (writeDeltas)
   * once that group is durable, while the next group already changes the manifest.
   */
  takeDeltas(): Buffer {
    return Buffer.concat(this.encodeDirty());
  }

  /**
   * Writes deltas taken earlier, once what they describe is durable. A compaction that falls due
   * waits for compact(): it writes the manifest as it is now, which may be ahead of the disk.
   */
  async writeDeltas(buf: Buffer): Promise<void> {
    if (buf.length === 0) return;
    await writeAll(this.changesFd, buf);
    this.changesBytes += buf.length;
  }

  /** Compacts the changes log if it is due; only while every change is written (nothing ahead of the disk). */
  async compact(): Promise<void> {
    if (this.dirty.size === 0 && this.compactionDue()) await this.writeSnapshot();
  }

  private compactionDue(): boolean {
    return this.changesBytes > Math.max(16 * 1024 * 1024, this.snapshotBytes);
  }

  private encodeDirty(): Buffer[] {
    const parts: Buffer[] = [];
    for (const { root, path: p } of this.dirty.values()) {
      const e = this.manifest.hasRoot(root) ? (this.manifest.get(root, p) ?? null) : null;
      parts.push(encodeFrameOf({ r: root, p, e } satisfies Delta));
    }
    this.dirty.clear();
    return parts;
  }

  private async writeSnapshot(): Promise<void> {
    const dir = this.opts.dir;
    const tmp = path.join(dir, 'snapshot.tmp');
    const fh = await fsp.open(tmp, 'w', PRIVATE_FILE_MODE);
    try {
      const header: Header = { format: FORMAT, blockSize: this.opts.blockSize, roots: this.opts.roots, throughSeq: this.through };
      let chunk: Buffer[] = [encodeFrameOf(header)];
      let chunkBytes = chunk[0]!.length;
      let total = 0;
      for (const root of this.manifest.rootNames()) {
        for (const [p, e] of this.manifest.entries(root)) {
          const f = encodeFrameOf({ r: root, p, e } satisfies Delta);
          chunk.push(f);
          chunkBytes += f.length;
          if (chunkBytes > 1 << 20) {
            await fh.write(Buffer.concat(chunk));
            total += chunkBytes;
            chunk = [];
            chunkBytes = 0;
          }
        }
      }
      await fh.write(Buffer.concat(chunk));
      total += chunkBytes;
      await fh.datasync();
      this.snapshotBytes = total;
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, path.join(dir, 'snapshot'));
    await fsyncDir(dir);
    if (this.changesFd >= 0) fs.closeSync(this.changesFd);
    this.changesFd = fs.openSync(path.join(dir, 'changes'), 'w', PRIVATE_FILE_MODE);
    await writeAll(this.changesFd, encodeFrameOf({ format: FORMAT, blockSize: this.opts.blockSize, roots: this.opts.roots, throughSeq: this.through } satisfies Header));
    this.changesBytes = 0;
  }

  async close(): Promise<void> {
    await this.flush();
    if (this.changesFd >= 0) fs.closeSync(this.changesFd);
    this.changesFd = -1;
  }
}

/** Applies one frame of a manifest file; returns the sequence when it is a mark. */
function applyDelta(m: Manifest, f: Delta | Mark): number | undefined {
  if ('mark' in f) return f.mark;
  const d = f;
  if (!m.hasRoot(d.r)) return undefined;
  if (d.e === null) m.delete(d.r, d.p);
  else {
    const e = d.e;
    if (e.kind === 'file') e.blocks = Buffer.from(e.blocks.buffer, e.blocks.byteOffset, e.blocks.byteLength);
    if (e.kind !== 'symlink' && e.xattrHash !== undefined) e.xattrHash = Buffer.from(e.xattrHash.buffer, e.xattrHash.byteOffset, e.xattrHash.byteLength);
    m.set(d.r, d.p, e);
  }
  return undefined;
}

async function readIfExists(file: string): Promise<Buffer | undefined> {
  try {
    return await fsp.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function writeAll(fd: number, buf: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (off: number) => {
      if (off >= buf.length) return resolve();
      fs.write(fd, buf, off, buf.length - off, null, (err, n) => (err ? reject(err) : step(off + n)));
    };
    step(0);
  });
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
