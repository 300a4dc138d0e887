// The active side of an initial synchronisation. It starts from the passive's manifest and
// keeps a *shadow* of it: every record journaled after the sync-begin record (its own and
// capture's) is applied to the shadow in order, so at any point the shadow is what the passive
// will hold when it reaches that point of the stream. For each path it sends what differs
// between the active manifest and the shadow — as ordinary records through capture's loop, so
// they are ordered with capture's and resumable from the journal like any others. A path made
// equal leaves the shadow and is read from the active manifest (shadow-tree.ts).
// It never sends a block that does not match the active manifest: such a file is changing, so
// capture is asked to journal it first, and the difference is computed again.
import fsp from 'node:fs/promises';
import fs, { constants as fsConstants } from 'node:fs';
import type { Capture, CaptureTaskContext } from '../capture/index.ts';
import type { ProtectedRoot } from '../../shared/config/index.ts';
import type { Clock } from '../../shared/clock.ts';
import type { Logger } from '../../shared/log.ts';
import { HASH_BYTES, hash64, isAllZero } from '../../shared/hash.ts';
import { depthOf, type OwnerFields, type Xattr } from '../../shared/protocol/index.ts';
import type { Entry, FileEntry, Manifest } from '../manifest/index.ts';
import { KeptParent, aclNamesField, aclNamesOf, lstatAt, openParentOrNone, readXattrs, sameXattrHash, xattrsHash, type Parent } from '../tree/index.ts';
import { actionBytes, diffEntry, type LinkView, type SyncAction } from './entry-diff.ts';
import { ShadowTree, type PassiveView } from './shadow-tree.ts';
import { READ_AHEAD_BYTES, READ_AHEAD_FILES, READ_AHEAD_FILE_MAX, READ_AHEAD_JOB_BYTES, ReadAhead, type ReadAheadFile, type ReadAheadRequest } from './read-ahead.ts';

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
  /**
   * Bytes journaled that the passive has not acknowledged yet. While they exceed `limit`, the
   * runner waits before its next slice: the passive applies far slower than the active reads
   * (measured: 100,000 files journaled in ~20 s, applied in ~40 s), and what runs ahead sits in
   * the journal's send cache and arenas (130-180 MiB of the active's peak during (e)).
   */
  backlog?: { bytes: () => number; limit: number } | undefined;
  /** False: every file is read by the runner itself when its turn comes (read-ahead.ts). */
  readAhead?: boolean;
}

interface PlanItem {
  root: string;
  path: string;
}

/**
 * What differs, per root: paths, parents before children. Strings of the manifest's own keys,
 * not `{root, path}` objects: a plan of 100,000 paths held that many objects (4 MiB) on the
 * active through the whole synchronisation.
 */
interface PlanRoot {
  root: string;
  paths: string[];
}

/** Walks a plan in order, root after root. */
class PlanCursor {
  private r = 0;
  private i = 0;
  /** Items handed out so far. */
  position = 0;
  constructor(private readonly plan: PlanRoot[]) {}

  next(): PlanItem | undefined {
    for (;;) {
      const pr = this.plan[this.r];
      if (pr === undefined) return undefined;
      const path = pr.paths[this.i++];
      if (path !== undefined) {
        this.position++;
        return { root: pr.root, path };
      }
      this.r++;
      this.i = 0;
    }
  }

  get done(): boolean {
    for (let r = this.r; r < this.plan.length; r++) if ((r === this.r ? this.i : 0) < this.plan[r]!.paths.length) return false;
    return true;
  }
}

/** Paths one slice (one capture task) takes at most: as many as one read-ahead job reads. */
const SLICE_PATHS = READ_AHEAD_FILES;
/** How often a runner held back by the backlog bound looks again: the passive has the bound's worth to apply meanwhile. */
const BACKLOG_POLL_MS = 20;
const MAX_REFRESH_TRIES = 3;

export class SyncRunner {
  readonly progress: SyncProgress;
  private readonly log: Logger;
  private readonly rootPaths = new Map<string, string>();
  private readonly realRoots = new Map<string, string>();
  private cancelled = false;
  private unlisten: (() => void) | undefined;
  /** The directory of the path synchronised last, open for the next of it in the plan (closed as run ends). */
  private readonly parents = new KeptParent();
  /** What the passive will hold: its manifest, followed through every record journaled since sync-begin. */
  private readonly shadow: ShadowTree;
  /** Small files of the plan read ahead by a worker thread; undefined when turned off. */
  private readonly ahead: ReadAhead | undefined;

  constructor(private readonly opts: SyncRunnerOptions) {
    this.shadow = new ShadowTree(opts.shadow, opts.manifest, opts.blockSize);
    this.ahead = opts.readAhead === false ? undefined : new ReadAhead((err) => this.log.warn({ err }, 'sync: the read-ahead worker failed: files are read in their turn from now on'));
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
    const { capture } = this.opts;
    const shadow = this.shadow;
    let plan: PlanRoot[] = [];
    await capture.runTask(async (ctx) => {
      plan = this.makePlan();
      const baseSeq = ctx.headSeq();
      this.progress.pathsTotal = plan.reduce((n, pr) => n + pr.paths.length, 0);
      const beginSeq = ctx.append({ op: 'sync-begin', id: this.opts.id, baseSeq, bytesTotal: this.progress.bytesTotal });
      this.progress.beginSeq = beginSeq;
      // From here on every journaled record is one the passive will apply: follow it.
      this.unlisten = capture.onAppend((r) => shadow.apply(r));
      onBegin(beginSeq);
    });
    this.log.info({ paths: this.progress.pathsTotal, bytesTotal: this.progress.bytesTotal, beginSeq: this.progress.beginSeq }, 'sync: started');

    const retry: PlanItem[] = [];
    const cursor = new PlanCursor(plan);
    const aheadCursor = new PlanCursor(plan);
    try {
      while (!cursor.done) {
        this.throwIfCancelled();
        await this.waitForPassive();
        // The files of this slice were asked for before the last one (before the first, now):
        // wait for them (the worker reads a file in a fraction of the time the slice takes to
        // journal it), then ask for the next slice's, read while this one runs.
        if (aheadCursor.position === 0) this.readAhead(cursor, aheadCursor);
        await this.ahead?.settled();
        this.ahead?.dropBefore(cursor.position);
        this.readAhead(cursor, aheadCursor);
        await capture.runTask(async (ctx) => {
          const t0 = this.opts.clock.monotonic();
          const sliceEnd = this.progress.bytesDone + this.opts.sliceBytes;
          let n = 0;
          while (n < SLICE_PATHS && this.progress.bytesDone < sliceEnd && this.opts.clock.monotonic() - t0 < 250) {
            const item = cursor.next();
            if (item === undefined) break;
            if (!(await this.syncPath(ctx, item))) retry.push(item);
            this.progress.pathsDone++;
            n++;
          }
        });
      }
      // Paths that kept changing under us: try again until they hold still long enough.
      for (let round = 0; retry.length > 0; round++) {
        this.throwIfCancelled();
        if (round > 0) await this.opts.clock.sleep(Math.min(1000, 50 * 2 ** round));
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
      this.log.info({ endSeq, bytesSent: this.progress.bytesDone, filesReadAhead: this.filesReadAhead }, 'sync: all differences journaled');
      return endSeq;
    } finally {
      this.parents.close();
      await this.ahead?.close();
      this.unlisten?.();
      this.unlisten = undefined;
    }
  }

  cancel(): void {
    this.cancelled = true;
  }

  /** Files the worker read ahead that the runner took (tests, benchmarks). */
  get filesReadAhead(): number {
    return this.ahead?.used ?? 0;
  }

  /**
   * Asks the worker for the small files of the plan past those it was last asked for, up to a
   * slice and READ_AHEAD_FILES items past the runner and READ_AHEAD_BYTES held: read while the
   * runner journals this slice, they are there for the next one (a job's answer arrives only
   * once the slice gives the event loop back). Only files whose blocks can come from what was read: a
   * manifest entry of a regular file with no attribute to read (provenWithoutXattrs).
   */
  private readAhead(cursor: PlanCursor, ahead: PlanCursor): void {
    const ra = this.ahead;
    if (ra === undefined || !ra.idle) return;
    while (ahead.position < cursor.position && ahead.next() !== undefined);
    const files: ReadAheadRequest[] = [];
    const room = Math.min(READ_AHEAD_JOB_BYTES, READ_AHEAD_BYTES - ra.bytes);
    let bytes = 0;
    while (files.length < READ_AHEAD_FILES && ahead.position < cursor.position + SLICE_PATHS + READ_AHEAD_FILES) {
      const item = ahead.next();
      if (item === undefined) break;
      const e = this.opts.manifest.get(item.root, item.path);
      if (e?.kind !== 'file' || e.size === 0 || e.size > READ_AHEAD_FILE_MAX || e.xattrHash !== undefined || e.ctimeMs === undefined) continue;
      if (bytes + e.size > room) break;
      const i = item.path.lastIndexOf('/');
      const rootPath = this.realRoot(item.root);
      files.push({ key: keyOf(item), pos: ahead.position - 1, dir: i < 0 ? rootPath : `${rootPath}/${item.path.slice(0, i)}`, name: item.path.slice(i + 1), size: e.size });
      bytes += e.size;
    }
    ra.request(files);
  }

  private throwIfCancelled(): void {
    if (this.cancelled) throw new Error('synchronisation cancelled');
  }

  /** Waits while the passive is more than the backlog bound behind (a passive away: until cancelled). */
  private async waitForPassive(): Promise<void> {
    const b = this.opts.backlog;
    if (b === undefined) return;
    while (b.bytes() > b.limit) {
      this.throwIfCancelled();
      await this.opts.clock.sleep(BACKLOG_POLL_MS);
    }
  }

  /** Every path that differs, parents before children; bytesTotal estimates the block data. */
  private makePlan(): PlanRoot[] {
    const { manifest, blockSize } = this.opts;
    const shadow = this.shadow;
    const plan: PlanRoot[] = [];
    let bytes = 0;
    for (const root of manifest.rootNames()) {
      const paths: string[] = [];
      const seen = new Set<string>();
      const consider = (p: string) => {
        if (seen.has(p)) return;
        seen.add(p);
        const a = manifest.get(root, p);
        const action = diffEntry(a, shadow.hasRoot(root) ? shadow.get(root, p) : undefined, blockSize, linkView(manifest, shadow, root, p));
        if (action === undefined) return;
        paths.push(p);
        bytes += actionBytes(action, a, blockSize);
      };
      for (const [p] of manifest.entries(root)) consider(p);
      if (shadow.hasRoot(root)) for (const [p] of shadow.entries(root)) consider(p);
      paths.sort((a, b) => depthOf(a) - depthOf(b) || (a < b ? -1 : 1));
      plan.push({ root, paths });
    }
    this.progress.bytesTotal = bytes;
    return plan;
  }

  /** Journals what `item` needs. False when its file kept changing and it must be tried later. */
  private async syncPath(ctx: CaptureTaskContext, item: PlanItem): Promise<boolean> {
    const { manifest, blockSize } = this.opts;
    const shadow = this.shadow;
    // Read ahead or not, taken now: a retry reads the file anew.
    let pre = this.ahead?.take(keyOf(item));
    for (let attempt = 0; attempt < MAX_REFRESH_TRIES; attempt++) {
      const a = manifest.get(item.root, item.path);
      const links = linkView(manifest, shadow, item.root, item.path);
      const action = diffEntry(a, shadow.hasRoot(item.root) ? shadow.get(item.root, item.path) : undefined, blockSize, links);
      if (action === undefined) {
        this.converge(item);
        return true;
      }
      // A name to link to a first name the passive does not hold yet (it is being retried): later.
      if (action.kind === 'hardlink' && shadow.get(item.root, action.target)?.kind !== 'file') return false;
      const done = await journalAction(ctx, { root: item.root, path: item.path, rootPath: this.realRoot(item.root) }, action, a, blockSize, (n) => (this.progress.bytesDone += n), this.parents, pre);
      pre = undefined;
      if (done) {
        this.converge(item);
        return true;
      }
      // The path no longer matches the manifest: let capture journal its change first.
      await ctx.refresh(item.root, item.path);
    }
    return false;
  }

  /** The path now holds on the passive what the active manifest says: the shadow reads it from there. */
  private converge(item: PlanItem): void {
    const { manifest, blockSize } = this.opts;
    this.shadow.converge(item.root, item.path, (a, s) => diffEntry(a, s, blockSize, linkView(manifest, this.shadow, item.root, item.path)) === undefined);
  }

  /** Paths the shadow reads from the active manifest (tests). */
  get convergedPaths(): number {
    return this.shadow.convergedCount();
  }

  private realRoot(root: string): string {
    // Capture says where the state its manifest describes is read: the root itself, or in
    // snapshot mode the snapshot of the last consistency point (agent/points).
    if (typeof this.opts.capture.readRoot === 'function') return this.opts.capture.readRoot(root);
    let real = this.realRoots.get(root);
    if (real === undefined) {
      real = fs.realpathSync(this.rootPaths.get(root)!);
      this.realRoots.set(root, real);
    }
    return real;
  }
}

/**
 * How path `p` stands among hard links: its inode's first name on the active (sync order:
 * parents first, then by name), whether the passive (its manifest, or the shadow of it) already
 * has it linked there, and whether the passive links it to a name the active does not.
 */
export function linkView(active: Manifest, passive: PassiveView, root: string, p: string): LinkView {
  const a = active.get(root, p);
  if (a?.kind !== 'file') return {};
  const group = a.ino > 0 ? active.pathsForIno(root, a.ino).filter((q) => active.get(root, q)?.kind === 'file') : [p];
  let leader: string | undefined;
  for (const q of group) if (leader === undefined || depthOf(q) < depthOf(leader) || (depthOf(q) === depthOf(leader) && q < leader)) leader = q;
  const s = passive.hasRoot(root) ? passive.get(root, p) : undefined;
  const sIno = s?.kind === 'file' ? s.ino : 0;
  const others = sIno !== 0 ? passive.pathsForIno(root, sIno).filter((q) => q !== p) : [];
  return {
    leader: leader === p ? undefined : leader,
    linkedToLeader: leader !== undefined && others.includes(leader),
    sharedWrongly: others.some((q) => !group.includes(q)),
  };
}

/**
 * Journals one action of a synchronisation or a verify repair. Metadata comes from the active
 * manifest (`entry`), extended attributes from the disk (they are kept in a manifest only as a
 * hash), checked against it. False when the path no longer matches the manifest: the caller
 * lets capture journal the change, then diffs again. `parents`: a directory kept open from the
 * path before (KeptParent); without it each path walks from its root.
 */
export async function journalAction(
  ctx: CaptureTaskContext,
  file: { root: string; path: string; rootPath: string },
  action: SyncAction,
  entry: Entry | undefined,
  blockSize: number,
  onBytes: (n: number) => void,
  parents?: KeptParent,
  pre?: ReadAheadFile,
): Promise<boolean> {
  const { root, path: p } = file;
  switch (action.kind) {
    case 'remove':
      ctx.append({ op: action.dir ? 'rmdir' : 'unlink', root, path: p });
      return true;
    case 'symlink':
      ctx.append({ op: 'symlink', root, path: p, target: action.target, ...(entry === undefined ? {} : ownerFieldsOfEntry(entry)) });
      return true;
    case 'hardlink':
      ctx.append({ op: 'hardlink', root, path: p, target: action.target });
      return true;
    case 'mkdir': {
      if (entry?.kind !== 'dir') return false;
      const xattrs = currentXattrs(file.rootPath, p, entry, parents);
      if (xattrs === undefined) return false;
      ctx.append({ op: 'mkdir', root, path: p, mode: action.mode, ...ownerFieldsOfEntry(entry), xattrs, ...aclNamesField({ aclNames: aclNamesOf(xattrs) }) });
      return true;
    }
    case 'file':
      if (entry?.kind !== 'file') return false;
      return journalFileBlocks(ctx, file, entry, { setSize: action.setSize, blocks: action.blocks, blockSize, passiveSize: action.passiveSize, replace: action.replace }, onBytes, parents, pre);
  }
}

/** The owner fields of a manifest entry, as a record carries them (none when it has none). */
function ownerFieldsOfEntry(e: Entry): OwnerFields {
  if (e.uid === undefined || e.gid === undefined) return {};
  return { uid: e.uid, gid: e.gid, ...(e.user === undefined ? {} : { user: e.user }), ...(e.group === undefined ? {} : { group: e.group }) };
}

/** The attributes of `p` on disk now, when they are those the manifest entry hashed; undefined when they changed. */
function currentXattrs(rootPath: string, p: string, entry: Entry, parents?: KeptParent): Xattr[] | undefined {
  const parent = parentOf(rootPath, p, parents);
  if (parent === undefined) return undefined;
  try {
    const st = lstatAt(parent.at);
    if (st === undefined || st.ino !== entry.ino) return undefined;
    const { xattrs } = readXattrs(parent.at);
    return entry.kind !== 'symlink' && sameXattrHash(xattrsHash(xattrs), entry.xattrHash) ? xattrs : undefined;
  } finally {
    parent.close();
  }
}

/** The open parent of `p`: the kept one when it is still there, else a walk from the root. */
function parentOf(rootPath: string, p: string, parents: KeptParent | undefined): Parent | undefined {
  return parents === undefined ? openParentOrNone(rootPath, p) : parents.parentOf(rootPath, p);
}

/**
 * Whether the file open as `st` is proven to have no extended attributes without listing them:
 * the manifest read none, and its ctime is still the one recorded with that read. Capture
 * records a ctime only when it lies clear of the read's timestamp tick (metaCtime), and any
 * setxattr, chown or chmod since would have moved it: the stat scan already skips a path on
 * the same proof. A listxattr per file was ~7 % of the active's CPU synchronising 100,000
 * small files; a file with attributes is still read, its values are sent.
 */
function provenWithoutXattrs(entry: FileEntry, st: { ctimeMs: number }): boolean {
  return entry.xattrHash === undefined && entry.ctimeMs !== undefined && st.ctimeMs === entry.ctimeMs;
}

/**
 * Journals blocks `blocks` of one file (and its size first when `setSize`, after an unlink when
 * `replace`; its mode, mtime, owner and attributes last), each checked against the active
 * manifest `entry` as it is read. A block of zeros goes as a hole, and not at all past the
 * passive's old size (setting the size leaves a hole there). False as soon as something does
 * not match (the file is changing): what was journaled so far matched the manifest, so the
 * caller can let capture journal the change and diff again. The file is opened through a walk
 * from its root: never through a link.
 */
export async function journalFileBlocks(
  ctx: CaptureTaskContext,
  file: { root: string; path: string; rootPath: string },
  entry: FileEntry,
  what: { setSize: boolean; blocks: number[]; blockSize: number; passiveSize?: number; replace?: boolean },
  onBytes: (n: number) => void,
  parents?: KeptParent,
  pre?: ReadAheadFile,
): Promise<boolean> {
  const bs = what.blockSize;
  const { blocks } = what;
  // Read ahead (read-ahead.ts) as the very inode, size and mtime the manifest holds, with no
  // attribute to read: its bytes are the source, checked block by block below as any read.
  const ahead = pre !== undefined && pre.ino === entry.ino && pre.size === entry.size && pre.mtimeMs === entry.mtimeMs && provenWithoutXattrs(entry, pre) ? pre : undefined;
  const parent = ahead === undefined ? parentOf(file.rootPath, file.path, parents) : undefined;
  if (ahead === undefined && parent === undefined) return false;
  const src = ahead !== undefined ? new AheadSource(ahead) : await openSource(parent!.at, entry.size);
  if (src === undefined) {
    parent?.close();
    return false;
  }
  try {
    const st = await src.stat();
    if (!st.isFile() || st.ino !== entry.ino || st.size !== entry.size || st.mtimeMs !== entry.mtimeMs) return false;
    let xattrs: Xattr[] = [];
    if (!provenWithoutXattrs(entry, st)) {
      if (parent === undefined) return false;
      xattrs = readXattrs(parent.at).xattrs;
    }
    if (!sameXattrHash(xattrsHash(xattrs), entry.xattrHash)) return false;
    if (what.replace === true) ctx.append({ op: 'unlink', root: file.root, path: file.path });
    if (what.setSize || what.replace === true) ctx.append({ op: 'file', root: file.root, path: file.path, size: entry.size });
    const passiveSize = what.replace === true ? 0 : (what.passiveSize ?? 0);
    const runBlocks = Math.max(1, Math.floor(RUN_BYTES / bs));
    // Never more than the file: a small file must not cost a 4 MiB buffer (at 100,000 files that
    // was 400 GB of allocations, and a quarter of the active's time went to the collector).
    const buf = ahead !== undefined ? undefined : bufferFor(Math.min(runBlocks * bs, Math.max(1, entry.size)), src.sync);
    for (let k = 0; k < blocks.length; ) {
      // A run of consecutive blocks is read in one call.
      let n = 1;
      while (k + n < blocks.length && n < runBlocks && blocks[k + n] === blocks[k]! + n) n++;
      const offset = blocks[k]! * bs;
      const len = Math.min(entry.size, offset + n * bs) - offset;
      let run: Buffer;
      if (ahead !== undefined) {
        // Read ahead: its bytes are there already (they are never written to), no copy to make.
        run = ahead.data.subarray(offset, offset + len);
        if (run.length !== len) return false;
      } else {
        let got = 0;
        while (got < len) {
          const bytesRead = await src.read(buf!, got, len - got, offset + got);
          if (bytesRead === 0) return false;
          got += bytesRead;
        }
        run = buf!;
      }
      for (let j = 0; j < n; j++) {
        const b = blocks[k + j]!;
        const data = run.subarray(j * bs, Math.min(len, (j + 1) * bs));
        const hash = hash64(data);
        if (hash.compare(entry.blocks, b * HASH_BYTES, (b + 1) * HASH_BYTES) !== 0) return false;
        await ctx.makeRoom();
        // The journal copies the block as it frames it: the buffer is reused by the next read.
        if (isAllZero(data)) {
          if (b * bs < passiveSize) ctx.append({ op: 'hole', root: file.root, path: file.path, offset: b * bs, length: data.length });
        } else {
          ctx.append({ op: 'write', root: file.root, path: file.path, offset: b * bs, data, hash });
          onBytes(data.length);
        }
      }
      k += n;
    }
    ctx.append({ op: 'meta', root: file.root, path: file.path, mode: entry.mode, mtimeMs: entry.mtimeMs, ...ownerFieldsOfEntry(entry), xattrs, ...aclNamesField({ aclNames: aclNamesOf(xattrs) }) });
    return true;
  } finally {
    await src.close();
    parent?.close();
  }
}

/**
 * A file read ahead as a source: its stat as read (its bytes are taken as views, not read). A
 * class, not an object of closures: the bundle names every closure of an object literal as it
 * is made (esbuild's keepNames), and four of them per file cost ~3.6 µs at 100,000 files.
 */
class AheadSource implements Source, SourceStat {
  readonly sync = true;
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  constructor(f: ReadAheadFile) {
    this.ino = f.ino;
    this.size = f.size;
    this.mtimeMs = f.mtimeMs;
    this.ctimeMs = f.ctimeMs;
  }
  isFile(): boolean {
    return true;
  }
  stat(): SourceStat {
    return this;
  }
  read(): number {
    throw new Error('AheadSource.read: a file read ahead is taken as views of its bytes');
  }
  close(): void {}
}

function keyOf(item: PlanItem): string {
  return `${item.root}\0${item.path}`;
}

/** Blocks read in one call from a file being synchronised. */
const RUN_BYTES = 4 << 20;
/**
 * Files up to this size are read with synchronous calls: from the page cache open, fstat, read
 * and close take microseconds each, while each trip to the thread pool and back costs a
 * turn of the event loop (measured: 100,000 files of 1 KiB spent more time in those trips than
 * in reading). Larger files are read in the pool, so the loop stays free for the heartbeat.
 */
const SYNC_SOURCE_MAX_BYTES = 256 * 1024;

/** The file being read, synchronously (small) or through the thread pool (large). */
/** What journalFileBlocks asks of a source's stat. */
interface SourceStat {
  isFile(): boolean;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
}

interface Source {
  readonly sync: boolean;
  stat(): Promise<SourceStat> | SourceStat;
  read(buf: Buffer, offset: number, length: number, position: number): Promise<number> | number;
  close(): Promise<void> | void;
}

const SOURCE_FLAGS = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK;

/** Opens `at` (a path below an open parent: its last component is never followed); undefined when it cannot be. */
async function openSource(at: string, size: number): Promise<Source | undefined> {
  if (size <= SYNC_SOURCE_MAX_BYTES) {
    let fd: number;
    try {
      fd = fs.openSync(at, SOURCE_FLAGS);
    } catch {
      return undefined;
    }
    return { sync: true, stat: () => fs.fstatSync(fd), read: (b, o, l, p) => fs.readSync(fd, b, o, l, p), close: () => fs.closeSync(fd) };
  }
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(at, SOURCE_FLAGS);
  } catch {
    return undefined;
  }
  return { sync: false, stat: () => fh.stat(), read: async (b, o, l, p) => (await fh.read(b, o, l, p)).bytesRead, close: () => fh.close() };
}

/**
 * Synchronous reads share one buffer: journalFileBlocks runs only inside capture tasks, which
 * capture runs one at a time, and the journal copies each block before the next read. Large
 * files get a buffer of their own.
 */
let syncBuffer = Buffer.alloc(0);

function bufferFor(bytes: number, sync: boolean): Buffer {
  if (!sync) return Buffer.allocUnsafe(bytes);
  if (syncBuffer.length < bytes) syncBuffer = Buffer.allocUnsafe(Math.max(bytes, 64 * 1024));
  return syncBuffer.subarray(0, bytes);
}

/** Turns a manifest received from the passive into Entry objects (ino: the passive's, only to group its hard links). */
export function entryFromWire(e: {
  kind: 'file' | 'dir' | 'symlink';
  mode: number;
  size: number;
  mtimeMs: number;
  blocks?: Uint8Array | undefined;
  target?: string | undefined;
  uid?: number | undefined;
  gid?: number | undefined;
  user?: string | undefined;
  group?: string | undefined;
  xattrHash?: Uint8Array | undefined;
  nlink?: number | undefined;
  link?: number | undefined;
}): Entry {
  const owner = e.uid === undefined ? {} : { uid: e.uid, gid: e.gid, ...(e.user === undefined ? {} : { user: e.user }), ...(e.group === undefined ? {} : { group: e.group }) };
  const xattrHash = e.xattrHash === undefined ? {} : { xattrHash: Buffer.from(e.xattrHash) };
  switch (e.kind) {
    case 'file':
      return { kind: 'file', mode: e.mode, size: e.size, mtimeMs: e.mtimeMs, ino: e.link ?? 0, blocks: Buffer.from(e.blocks ?? new Uint8Array(0)), readAt: 0, ...owner, ...xattrHash, ...(e.nlink === undefined ? {} : { nlink: e.nlink }) };
    case 'dir':
      return { kind: 'dir', mode: e.mode, ino: 0, mtimeMs: e.mtimeMs, ...owner, ...xattrHash };
    case 'symlink':
      return { kind: 'symlink', target: e.target ?? '', ino: 0, mtimeMs: e.mtimeMs, ...owner };
  }
}
