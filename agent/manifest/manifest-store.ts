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
import { FrameWriter } from './frame-writer.ts';

const FORMAT = 1;
/** A flush this many changed entries or more, half the manifest or more, writes a snapshot instead. */
const SNAPSHOT_INSTEAD_MIN = 4096;
/**
 * Deltas (a flush's, a group's on the passive) are framed whole, synchronously, into one buffer
 * of this size the store keeps, and copied out as each chunk fills: a flush of a few entries
 * after every commit must not cost a fresh 1 MiB buffer each time.
 */
const FRAME_CHUNK_BYTES = 1024 * 1024;

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
  private dirty = new Map<string, { root: string; path: string }>();
  private changesFd: number;
  private changesBytes: number;
  private snapshotBytes: number;
  private through = 0;
  /** A flush failed: the changes log may end torn, and the next flush writes a snapshot. */
  private failed = false;
  /** Frames deltas (frame()); a snapshot, which awaits its writes, has a writer of its own. */
  private readonly writer = new FrameWriter(FRAME_CHUNK_BYTES);

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
    await store.writeSnapshot(throughSeq);
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
    // What changed is taken now; if it cannot be written, it counts as changed again (else the
    // next flush would write a mark past entries the disk never got), and the next flush writes
    // a snapshot: the failed write may have left a torn frame, which a reload would stop at.
    const taken = this.takeDirty();
    try {
      if (this.failed || (taken.size >= SNAPSHOT_INSTEAD_MIN && taken.size * 2 >= this.manifest.count())) {
        // Most of the manifest changed (a baseline): its changes would be about a snapshot's size
        // and compacted into one at once, so the snapshot is written straight away.
        await this.writeSnapshot(throughSeq ?? this.through);
        this.failed = false;
        return;
      }
      // Framed now, before any write is awaited: an entry's block hashes may change in place later.
      const chunks = this.frame(taken, throughSeq === undefined ? undefined : ({ mark: throughSeq } satisfies Mark));
      for (const chunk of chunks) {
        await writeAll(this.changesFd, chunk);
        this.changesBytes += chunk.length;
      }
      if (throughSeq !== undefined) this.through = throughSeq;
      // A compaction that fails may leave no changes log open: the next flush writes a snapshot.
      if (this.compactionDue()) await this.writeSnapshot(this.through);
    } catch (err) {
      for (const [k, v] of taken) if (!this.dirty.has(k)) this.dirty.set(k, v);
      this.failed = true;
      throw err;
    }
  }

  /**
   * The entries changed since the last flush, as they are now, no longer counted as changed:
   * the passive takes them once a group of records is applied, and writes them (writeDeltas)
   * once that group is durable, while the next group already changes the manifest.
   */
  takeDeltas(): Buffer {
    const chunks = this.frame(this.takeDirty());
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
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
    if (this.dirty.size === 0 && this.compactionDue()) await this.writeSnapshot(this.through);
  }

  private compactionDue(): boolean {
    return this.changesBytes > Math.max(16 * 1024 * 1024, this.snapshotBytes);
  }

  /** The paths changed since the last flush, no longer counted as changed. */
  private takeDirty(): Map<string, { root: string; path: string }> {
    const taken = this.dirty;
    this.dirty = new Map();
    return taken;
  }

  /**
   * The entries at `paths` as they are now (and `last` after them), framed in chunks of about
   * 1 MiB of their own. Synchronous: no entry can change while it is framed.
   */
  private frame(paths: Map<string, { root: string; path: string }>, last?: Mark): Buffer[] {
    const w = this.writer;
    w.take(); // empty, even if an earlier call threw halfway
    const chunks: Buffer[] = [];
    const add = (d: Delta | Mark) => {
      if (!w.add(d)) (chunks.push(Buffer.from(w.take())), w.add(d));
    };
    for (const { root, path: p } of paths.values()) add({ r: root, p, e: this.manifest.hasRoot(root) ? (this.manifest.get(root, p) ?? null) : null });
    if (last !== undefined) add(last);
    chunks.push(Buffer.from(w.take()));
    return chunks;
  }

  /**
   * Writes the whole manifest as the snapshot, reflecting journal sequence `throughSeq`, and
   * starts an empty changes log. It reads the manifest as it writes: its callers change nothing
   * meanwhile (capture's round waits for its flush; the passive compacts between groups).
   */
  private async writeSnapshot(throughSeq: number): Promise<void> {
    const dir = this.opts.dir;
    const tmp = path.join(dir, 'snapshot.tmp');
    const fh = await fsp.open(tmp, 'w', PRIVATE_FILE_MODE);
    try {
      const w = new FrameWriter();
      const write = async (chunk: Buffer) => {
        for (let off = 0; off < chunk.length; ) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
      };
      w.add({ format: FORMAT, blockSize: this.opts.blockSize, roots: this.opts.roots, throughSeq } satisfies Header);
      for (const root of this.manifest.rootNames()) {
        for (const [p, e] of this.manifest.entries(root)) {
          const d = { r: root, p, e } satisfies Delta;
          if (!w.add(d)) (await write(w.take()), w.add(d));
        }
      }
      await write(w.take());
      await fh.datasync();
      this.snapshotBytes = w.bytes;
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, path.join(dir, 'snapshot'));
    await fsyncDir(dir);
    this.through = throughSeq;
    if (this.changesFd >= 0) fs.closeSync(this.changesFd);
    // Never left naming a closed descriptor (the number may be another file's by the next write).
    this.changesFd = -1;
    this.changesFd = fs.openSync(path.join(dir, 'changes'), 'w', PRIVATE_FILE_MODE);
    await writeAll(this.changesFd, encodeFrameOf({ format: FORMAT, blockSize: this.opts.blockSize, roots: this.opts.roots, throughSeq } satisfies Header));
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
