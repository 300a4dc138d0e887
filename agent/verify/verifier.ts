// The active's side of `tandem verify`: walks the protected roots in a stable order, reads and
// hashes its own files (throttled), asks the passive for its entries and block hashes of the
// same paths (only hashes travel), and reports what differs. A path that differs is compared
// again later before it counts, and a path the active is still journaling (or that was
// replicated between the two reads) is never a difference. With --repair it journals, through
// capture, exactly what differs (blocks, size, metadata, presence), so repairs are ordered with
// replication. Progress is persisted, so an interrupted verification resumes at its cursor.
// It never writes to the passive other than through the journal.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Clock } from '../../shared/clock.ts';
import type { ProtectedRoot } from '../../shared/config/index.ts';
import { TandemError, describeCause, errnoOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { Message, VerifyEntryMessage, VerifyListMessage, VerifyReplyMessage, WireVerifyEntry } from '../../shared/protocol/index.ts';
import { compileExcludes, readBlocks, type Capture } from '../capture/index.ts';
import type { ExcludeMatcher } from '../capture/exclude.ts';
import type { Entry, Manifest } from '../manifest/index.ts';
import { depthOf } from '../../shared/protocol/index.ts';
import { RateLimit } from '../replication/rate-limit.ts';
import { diffEntry, entryFromWire, journalAction, type LinkView } from '../sync/index.ts';
import { PathSwapped, closeFd, fdPath, openDirBeneath, openParentOrNone, readEntryMeta, lstatAt } from '../tree/index.ts';
import { kindOf } from '../capture/stat-match.ts';
import { judge, linkViewFromCount, type DiskView, type Verdict } from './difference.ts';
import { isDone, joinRel, mustDescend } from './path-order.ts';
import { loadRecord, newRecord, saveRecord, type VerifyDifference, type VerifyRecord } from './verify-record.ts';

/** What the verifier needs from the replication session with the passive (the Sender). */
export interface VerifyPeer {
  /** A passive is connected, streaming, and not in an initial synchronisation. */
  ready(): boolean;
  /** Sends a message to the passive; false when there is none. */
  send(m: Message): boolean;
  /** Listens to verify replies; returns what stops listening. */
  onReply(listener: (m: VerifyReplyMessage) => void): () => void;
  /** Called when the connection to the passive goes away; returns what stops listening. */
  onDetach(listener: () => void): () => void;
  /** Resolves true once the passive acknowledged `seq`. */
  waitAcked(seq: number, timeoutMs: number): Promise<boolean>;
}

export interface VerifierOptions {
  roots: ProtectedRoot[];
  blockSize: number;
  /** verify.rate: bytes per second the active reads, at most; 0: no limit. */
  rateBytesPerSec: number;
  stateDir: string;
  generation: string;
  capture: Capture;
  manifest: Manifest;
  /** The journal's last committed sequence. */
  headSeq: () => number;
  peer: VerifyPeer;
  log: Logger;
  clock: Clock;
}

/** The verification as status and the control API show it. */
export interface VerifySummary {
  id: string;
  state: VerifyRecord['phase'];
  repair: boolean;
  /** Waiting for a passive to answer (not connected, synchronising, or an error to retry). */
  waiting: string | null;
  startedAt: number;
  finishedAt: number | null;
  pathsDone: number;
  bytesDone: number;
  differences: number;
  repaired: number;
  bytesRepaired: number;
  changing: number;
  resumedAt: number | null;
  error: VerifyRecord['error'];
}

/** Paths compared at once (the passive hashes one while the active hashes another). */
const WINDOW = 4;
const ASK_TIMEOUT_MS = 60_000;
const PERSIST_EVERY_MS = 500;
const PROGRESS_LOG_MS = 5000;
const RECHECK_ROUNDS = 6;
const REPAIR_ACK_TIMEOUT_MS = 120_000;
const RETRY_PAUSE_MS = 500;
/** Files up to this size come hashed in the passive's directory listing (no question per file). */
const LISTED_BLOCKS_UP_TO = 1 << 20;

interface Snapshot {
  headSeq: number;
  entries: Map<string, Entry>;
  /** Files with other names in the root (hard links): all names of the inode, first name first. */
  links: Map<string, string[]>;
}

interface Compared {
  root: string;
  path: string;
  verdict: Verdict;
  passive: Entry | undefined;
  links: LinkView;
}

type VerifyRoot = ProtectedRoot & { isExcluded: ExcludeMatcher; real: string };

interface WindowItem {
  rootIndex: number;
  path: string;
  work: Promise<Compared>;
}

class Interrupted extends Error {}

export class Verifier {
  private readonly log: Logger;
  private readonly roots: VerifyRoot[];
  private rec: VerifyRecord | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private waiting: string | null = null;
  private readonly rate: RateLimit | undefined;
  private nextReq = 1;
  private readonly asks = new Map<number, { resolve: (m: VerifyReplyMessage) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  /** Last sequence journaled for each path while a verification runs (see `touched`). */
  private readonly touches = new Map<string, number>();
  private readonly liveSnapshots = new Map<number, number>();
  private window: WindowItem[] = [];
  private lastPersist = 0;
  private lastProgressLog = 0;
  private persistChain: Promise<void> = Promise.resolve();
  private readonly detach: (() => void)[] = [];

  constructor(private readonly opts: VerifierOptions) {
    this.log = opts.log.child({ component: 'verify' });
    this.roots = opts.roots.map((r) => ({ ...r, isExcluded: compileExcludes(r.exclude), real: realOrAsIs(r.path) }));
    this.rate = opts.rateBytesPerSec > 0 ? new RateLimit(opts.rateBytesPerSec, opts.clock) : undefined;
    this.detach.push(
      opts.peer.onReply((m) => {
        const a = this.asks.get(m.req);
        if (a === undefined) return;
        this.asks.delete(m.req);
        clearTimeout(a.timer);
        a.resolve(m);
      }),
      opts.peer.onDetach(() => this.rejectAsks('the passive disconnected')),
      opts.capture.onAppend((r) => {
        if (this.running === undefined || !('root' in r)) return;
        this.touches.set(`${r.root}\0${r.path}`, r.seq);
        if (r.op === 'rename') this.touches.set(`${r.root}\0${r.to}`, r.seq);
      }),
    );
  }

  /** Resumes a verification that an earlier run of this agent left unfinished. */
  async resumeInterrupted(): Promise<void> {
    const r = await loadRecord(this.opts.stateDir);
    if (r === undefined) return;
    if (r.generation !== this.opts.generation) return; // another node was active since: stale
    this.rec = r;
    if (r.phase === 'done' || r.phase === 'failed') return;
    r.resumedAt = r.pathsDone;
    this.log.info({ verify: r.id, pathsDone: r.pathsDone, bytesDone: r.bytesDone, phase: r.phase, cursor: r.cursor }, 'verify: resuming an interrupted verification at its cursor');
    this.launch();
  }

  /**
   * Starts a verification, or joins the one running. Throws TANDEM_ERR_VERIFY_BUSY when one
   * runs with another --repair choice.
   */
  start(repair: boolean): VerifySummary {
    const cur = this.rec;
    if (cur !== undefined && this.running !== undefined) {
      if (cur.repair !== repair) {
        throw new TandemError({
          code: 'TANDEM_ERR_VERIFY_BUSY',
          op: 'start verify',
          reason: `verification ${cur.id} is running ${cur.repair ? 'with' : 'without'} --repair`,
          hint: 'wait for it to finish (tandem status shows its progress), then run the command again',
        });
      }
      return this.summary()!;
    }
    this.rec = newRecord(crypto.randomBytes(6).toString('hex'), repair, this.opts.generation, this.opts.clock.now());
    this.log.info({ verify: this.rec.id, repair }, 'verify: started');
    this.launch();
    return this.summary()!;
  }

  summary(): VerifySummary | undefined {
    const r = this.rec;
    if (r === undefined) return undefined;
    return {
      id: r.id,
      state: r.phase,
      repair: r.repair,
      waiting: this.running === undefined ? null : this.waiting,
      startedAt: r.startedAt,
      finishedAt: r.finishedAt,
      pathsDone: r.pathsDone,
      bytesDone: r.bytesDone,
      differences: r.differences.length,
      repaired: r.differences.filter((d) => d.repaired === true).length,
      bytesRepaired: r.bytesRepaired,
      changing: r.changing.length,
      resumedAt: r.resumedAt,
      error: r.error,
    };
  }

  /** The whole record: the summary's source, with every difference and changing path. */
  report(): VerifyRecord | undefined {
    return this.rec;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.rejectAsks('the agent is stopping');
    for (const d of this.detach.splice(0)) d();
    await this.running?.catch(() => {});
    if (this.rec !== undefined) await this.persist(true);
  }

  // ---------------------------------------------------------------- the run

  private launch(): void {
    this.touches.clear();
    this.running = this.run().finally(() => {
      this.running = undefined;
      this.touches.clear();
    });
  }

  private async run(): Promise<void> {
    const r = this.rec!;
    let lastError = '';
    while (!this.stopped && r.phase !== 'done' && r.phase !== 'failed') {
      try {
        await this.waitForPeer();
        this.waiting = null;
        if (r.phase === 'walking') {
          await this.walkAll();
          r.phase = 'rechecking';
          await this.persist(true);
        }
        if (r.phase === 'rechecking' || r.phase === 'repairing') await this.recheckAndRepair();
        r.phase = 'done';
        r.finishedAt = this.opts.clock.now();
        await this.persist(true);
        const repaired = r.differences.filter((d) => d.repaired === true).length;
        this.log.info(
          { verify: r.id, pathsDone: r.pathsDone, bytesDone: r.bytesDone, differences: r.differences.length, repaired, bytesRepaired: r.bytesRepaired, changing: r.changing.length, durationMs: r.finishedAt - r.startedAt },
          'verify: complete',
        );
      } catch (err) {
        // In-flight comparisons are dropped; the cursor says where to start again.
        for (const w of this.window.splice(0)) void w.work.catch(() => {});
        this.liveSnapshots.clear();
        if (this.stopped) break;
        if (err instanceof TandemError && err.code === 'TANDEM_ERR_VERIFY_FAILED') {
          r.phase = 'failed';
          r.finishedAt = this.opts.clock.now();
          r.error = { code: err.code, message: err.message, ...(err.hint === undefined ? {} : { hint: err.hint }) };
          await this.persist(true);
          this.log.error({ verify: r.id, err, code: err.code }, `verify: ${err.message}`);
          break;
        }
        const why = describeCause(err);
        this.waiting = why;
        if (why !== lastError) this.log.warn({ verify: r.id, err, cursor: r.cursor }, 'verify: interrupted; resuming at the cursor');
        lastError = why;
        await this.persist(true).catch(() => {});
        await sleep(RETRY_PAUSE_MS);
      }
    }
  }

  private async waitForPeer(): Promise<void> {
    while (!this.opts.peer.ready()) {
      if (this.stopped) throw new Interrupted('stopped');
      this.waiting = 'no passive connected and in step (not connected, or an initial synchronisation runs)';
      await sleep(200);
    }
  }

  // ---------------------------------------------------------------- walking

  private async walkAll(): Promise<void> {
    const r = this.rec!;
    for (let ri = r.cursor.rootIndex; ri < this.roots.length; ri++) {
      await this.walkDir(ri, '');
      await this.drainWindow();
      r.cursor = { rootIndex: ri + 1, path: undefined };
    }
  }

  private async walkDir(ri: number, dir: string): Promise<void> {
    if (this.stopped) throw new Interrupted('stopped');
    const root = this.roots[ri]!;
    const snap = await this.snapshotDir(root.name, dir);
    this.holdSnapshot(snap.headSeq, 1);
    try {
      const [diskNames, listing] = await Promise.all([this.readdirActive(root, dir), this.ask({ t: 'verify-list', req: 0, root: root.name, path: dir, afterSeq: snap.headSeq, blocksUpTo: LISTED_BLOCKS_UP_TO })]);
      const listed = new Map((listing.entries ?? []).map((e) => [e.name, e]));
      const names = [...new Set([...snap.entries.keys(), ...diskNames, ...listed.keys()])].sort();
      for (const name of names) {
        const p = joinRel(dir, name);
        const a = snap.entries.get(name);
        if (isDone(this.rec!.cursor, ri, p)) {
          if (a?.kind === 'dir' && mustDescend(this.rec!.cursor, ri, p)) await this.walkDir(ri, p);
          continue;
        }
        const work = this.compare(root, p, a, snap.headSeq, snap.links.get(name) ?? [], { entry: listed.get(name) });
        void work.catch(() => {}); // awaited in order by the window; never unhandled
        await this.enqueue({ rootIndex: ri, path: p, work });
        if (a?.kind === 'dir') await this.walkDir(ri, p);
      }
    } finally {
      this.holdSnapshot(snap.headSeq, -1);
    }
  }

  /** The manifest's view of a directory's children, and the journal head it is true at. */
  private async snapshotDir(root: string, dir: string): Promise<Snapshot> {
    let snap: Snapshot | undefined;
    await this.opts.capture.runTask(async (ctx) => {
      const entries = new Map<string, Entry>();
      const links = new Map<string, string[]>();
      for (const full of this.opts.manifest.childrenOf(root, dir)) {
        const e = this.opts.manifest.get(root, full);
        if (e === undefined) continue;
        const name = path.posix.basename(full);
        entries.set(name, cloneEntry(e));
        if (e.kind === 'file') links.set(name, linkNames(this.opts.manifest, root, full, e.ino));
      }
      snap = { headSeq: ctx.headSeq(), entries, links };
    });
    return snap!;
  }

  /** One path's manifest entry and the journal head it is true at. */
  private async snapshotPath(root: string, p: string): Promise<{ headSeq: number; entry: Entry | undefined; links: string[] }> {
    let out: { headSeq: number; entry: Entry | undefined; links: string[] } | undefined;
    await this.opts.capture.runTask(async (ctx) => {
      const e = this.opts.manifest.get(root, p);
      out = { headSeq: ctx.headSeq(), entry: e === undefined ? undefined : cloneEntry(e), links: e?.kind === 'file' ? linkNames(this.opts.manifest, root, p, e.ino) : [] };
    });
    return out!;
  }

  /** The names in one of the active's directories, listed through a walk from its root (never through a link). */
  private async readdirActive(root: VerifyRoot, dir: string): Promise<string[]> {
    root.real = fs.realpathSync(root.path);
    let fd: number | undefined;
    try {
      fd = openDirBeneath(root.real, dir);
    } catch (err) {
      if (err instanceof PathSwapped) return [];
      throw err;
    }
    if (fd === undefined) return [];
    try {
      return fs.readdirSync(fdPath(fd)).filter((n) => !root.isExcluded(joinRel(dir, n)));
    } catch (err) {
      if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return [];
      throw err;
    } finally {
      closeFd(fd);
    }
  }

  private async enqueue(item: WindowItem): Promise<void> {
    this.window.push(item);
    while (this.window.length >= WINDOW) await this.finishHead();
  }

  private async drainWindow(): Promise<void> {
    while (this.window.length > 0) await this.finishHead();
  }

  /** The oldest comparison in flight is over: note its verdict and move the cursor past it. */
  private async finishHead(): Promise<void> {
    const item = this.window[0]!;
    const c = await item.work;
    this.window.shift();
    const r = this.rec!;
    if (c.verdict.kind === 'different') r.suspects.push({ root: c.root, path: c.path, seen: 1 });
    else if (c.verdict.kind === 'unsettled') {
      r.suspects.push({ root: c.root, path: c.path, seen: 0 });
      // Capture may simply have missed it (an event lost): make it look.
      this.opts.capture.hint(c.root, c.path);
    }
    r.cursor = { rootIndex: item.rootIndex, path: item.path };
    r.pathsDone++;
    await this.persist(false);
  }

  // ---------------------------------------------------------------- comparing

  /**
   * Compares one path: the manifest entry `a` (true at `headSeq`), the active's disk, and the
   * passive's entry (from its directory listing when given, else asked for; always asked, with
   * block hashes, when both sides hold a file).
   */
  private async compare(root: VerifyRoot, p: string, a: Entry | undefined, headSeq: number, names: string[], listed?: { entry: WireVerifyEntry | undefined }): Promise<Compared> {
    const disk = diskView(root.real, p);
    const needHash = a?.kind === 'file' && disk?.kind === 'file' && (listed === undefined || listed.entry?.kind === 'file');
    let passiveWire: WireVerifyEntry | undefined;
    // A small file's hashes came with the listing: nothing to ask.
    const inListing = listed?.entry?.blocks !== undefined;
    if (listed === undefined || needHash) {
      const asked = inListing ? Promise.resolve({ t: 'verify-reply' as const, req: 0, atSeq: 0, entry: listed!.entry! }) : this.ask({ t: 'verify-entry', req: 0, root: root.name, path: p, afterSeq: headSeq });
      void asked.catch(() => {});
      if (needHash) {
        const hashed = await this.hashFile(root.real, p);
        if (hashed === undefined) {
          await asked.catch(() => {});
          return { root: root.name, path: p, verdict: { kind: 'unsettled', reason: 'changed while read' }, passive: undefined, links: {} };
        }
        disk!.blocks = hashed.blocks;
        disk!.size = hashed.size;
      }
      const reply = await asked;
      passiveWire = reply.entry ?? undefined;
    } else {
      passiveWire = listed.entry;
    }
    const passive = passiveWire === undefined ? undefined : entryFromWire({ ...passiveWire, link: undefined });
    const links = passive?.kind === 'file' ? linkViewFromCount(p, names, passiveWire?.nlink) : {};
    const verdict = judge(a, disk, passive, this.opts.blockSize, this.touched(root.name, p, headSeq), links, passiveWire?.modified === true);
    return { root: root.name, path: p, verdict, passive, links };
  }

  /** Reads and hashes one of the active's files at verify.rate, through a walk from its root; undefined when it changed while read. */
  private async hashFile(rootPath: string, p: string): Promise<{ blocks: Buffer; size: number } | undefined> {
    const parent = openParentOrNone(rootPath, p);
    if (parent === undefined) return undefined;
    try {
      const r = await readBlocks(parent.at, this.opts.blockSize, () => this.opts.clock.now(), async (_offset, chunk) => {
        this.rec!.bytesDone += chunk.length;
        await this.throttle(chunk.length);
      });
      if (r.kind !== 'file' || r.torn) return undefined;
      return { blocks: r.blocks, size: r.size };
    } finally {
      parent.close();
    }
  }

  private async throttle(bytes: number): Promise<void> {
    if (this.rate === undefined) return;
    for (;;) {
      const waitMs = this.rate.delayFor(bytes);
      if (waitMs === 0) return;
      await sleep(waitMs);
    }
  }

  /**
   * A record for `p` (or a directory above it) was journaled after the active's view
   * (`headSeq`): the passive may have applied it, or be applying it, while it read, so the two
   * views may be of different moments. (Not only up to the passive's applied sequence: the
   * applier writes a record before it counts it as applied.)
   */
  private touched(root: string, p: string, headSeq: number): boolean {
    for (let q = p; ; q = q.slice(0, Math.max(0, q.lastIndexOf('/')))) {
      const seq = this.touches.get(`${root}\0${q}`);
      if (seq !== undefined && seq > headSeq) return true;
      if (q === '' || !q.includes('/')) break;
    }
    return false;
  }

  /** Keeps `touches` small: nothing journaled before the oldest view still in use matters. */
  private holdSnapshot(headSeq: number, delta: 1 | -1): void {
    const n = (this.liveSnapshots.get(headSeq) ?? 0) + delta;
    if (n <= 0) this.liveSnapshots.delete(headSeq);
    else this.liveSnapshots.set(headSeq, n);
    if (this.touches.size < 50_000) return;
    const low = Math.min(this.opts.headSeq(), ...this.liveSnapshots.keys());
    for (const [k, seq] of this.touches) if (seq <= low) this.touches.delete(k);
  }

  private ask(m: VerifyListMessage | VerifyEntryMessage): Promise<VerifyReplyMessage> {
    const req = this.nextReq++;
    return new Promise<VerifyReplyMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.asks.delete(req);
        reject(new Error(`the passive did not answer ${m.t} ${m.root}/${m.path} within ${ASK_TIMEOUT_MS} ms`));
      }, ASK_TIMEOUT_MS);
      this.asks.set(req, { resolve, reject, timer });
      if (!this.opts.peer.send({ ...m, req })) {
        this.asks.delete(req);
        clearTimeout(timer);
        reject(new Error('no passive connected'));
      }
    }).then((reply) => {
      if (reply.error !== undefined) throw new Error(`the passive could not answer about ${m.root}/${m.path}: ${reply.error}`);
      return reply;
    });
  }

  private rejectAsks(reason: string): void {
    for (const [req, a] of this.asks) {
      this.asks.delete(req);
      clearTimeout(a.timer);
      a.reject(new Error(reason));
    }
  }

  // ---------------------------------------------------------------- rechecking and repair

  /**
   * Compares every suspect again, a little later each round, until it is the same (dropped),
   * differed twice (a difference; repaired at once with --repair), or the rounds run out while
   * it keeps changing (listed as changing).
   */
  private async recheckAndRepair(): Promise<void> {
    const r = this.rec!;
    let journaled = false;
    for (let round = 0; round < RECHECK_ROUNDS && r.suspects.length > 0; round++) {
      // Give capture a moment to journal what it has seen (never idle under a steady writer).
      await sleep(Math.min(2000, 100 * 2 ** round));
      await Promise.race([this.opts.capture.whenIdle(), sleep(1000)]);
      const next: VerifyRecord['suspects'] = [];
      const round0 = r.suspects;
      // A few at once (each waits for its own capture snapshot and the passive's answer).
      for (let i = 0; i < round0.length; i += WINDOW) {
        if (this.stopped) throw new Interrupted('stopped');
        const slice = round0.slice(i, i + WINDOW);
        const results = await Promise.all(slice.map((s) => this.compareAgain(s)));
        for (let k = 0; k < slice.length; k++) {
          const s = slice[k]!;
          const c = results[k];
          if (c === undefined || c.verdict.kind === 'same') continue;
          if (c.verdict.kind === 'unsettled' || s.seen < 1) {
            next.push(c.verdict.kind === 'different' ? { ...s, seen: s.seen + 1 } : s);
            continue;
          }
          const d: VerifyDifference = { root: s.root, path: s.path, what: c.verdict.what, blocks: c.verdict.blocks };
          r.differences.push(d);
          this.log.warn({ verify: r.id, root: s.root, path: s.path, what: d.what, blocks: d.blocks }, 'verify: difference');
          if (r.repair) {
            r.phase = 'repairing';
            journaled = (await this.repair(this.roots.find((x) => x.name === s.root)!, s.path, c.passive, c.links)) || journaled;
          }
        }
        // What a resume must still look at: the next round's suspects and this round's rest.
        r.suspects = [...next, ...round0.slice(i + WINDOW)];
        await this.persist(false);
      }
      r.suspects = next;
      await this.persist(true);
    }
    r.changing = r.suspects.map((s) => `${s.root}/${s.path}`);
    r.suspects = [];
    if (r.repair && journaled) {
      const seq = this.opts.headSeq();
      if (!(await this.opts.peer.waitAcked(seq, REPAIR_ACK_TIMEOUT_MS))) {
        throw new TandemError({
          code: 'TANDEM_ERR_VERIFY_FAILED',
          op: `verify ${r.id}: repair`,
          reason: `the passive did not acknowledge the repairs (journaled up to ${seq}) within ${REPAIR_ACK_TIMEOUT_MS / 1000} s`,
          hint: 'the repairs stay in the journal and replicate when the passive catches up; run tandem verify again to confirm',
        });
      }
    }
    if (r.repair) for (const d of r.differences) d.repaired = d.repaired === true || this.repairedPaths.has(`${d.root}\0${d.path}`);
  }

  private readonly repairedPaths = new Set<string>();

  /** One suspect compared afresh (a new snapshot of its manifest entry); undefined: its root is gone. */
  private async compareAgain(s: { root: string; path: string }): Promise<Compared | undefined> {
    const root = this.roots.find((x) => x.name === s.root);
    if (root === undefined) return undefined;
    const snap = await this.snapshotPath(s.root, s.path);
    this.holdSnapshot(snap.headSeq, 1);
    try {
      return await this.compare(root, s.path, snap.entry, snap.headSeq, snap.links);
    } finally {
      this.holdSnapshot(snap.headSeq, -1);
    }
  }

  /**
   * Journals what the passive needs at `p` (its entry `passive` as last read) to become the
   * active's, through a capture task; blocks are checked against the manifest as they are read.
   */
  private async repair(root: VerifyRoot, p: string, passive: Entry | undefined, links: LinkView): Promise<boolean> {
    const r = this.rec!;
    let done = false;
    await this.opts.capture.runTask(async (ctx) => {
      for (let attempt = 0; attempt < 3 && !done; attempt++) {
        const a = this.opts.manifest.get(root.name, p);
        const action = diffEntry(a, passive, this.opts.blockSize, links);
        if (action === undefined) {
          done = true;
          break;
        }
        done = await journalAction(ctx, { root: root.name, path: p, rootPath: root.real }, action, a, this.opts.blockSize, (n) => (r.bytesRepaired += n));
        // The path no longer matches the manifest: let capture journal its change first.
        if (!done) await ctx.refresh(root.name, p);
      }
    });
    if (done) this.repairedPaths.add(`${root.name}\0${p}`);
    else this.log.warn({ verify: r.id, root: root.name, path: p }, 'verify: not repaired: the file keeps changing; run verify again');
    return done;
  }

  // ---------------------------------------------------------------- persistence

  private async persist(now: boolean): Promise<void> {
    const r = this.rec;
    if (r === undefined) return;
    const t = this.opts.clock.monotonic();
    if (t - this.lastProgressLog >= PROGRESS_LOG_MS && r.phase === 'walking') {
      this.lastProgressLog = t;
      this.log.info({ verify: r.id, pathsDone: r.pathsDone, bytesDone: r.bytesDone, suspects: r.suspects.length, cursor: r.cursor }, 'verify: progress');
    }
    if (!now && t - this.lastPersist < PERSIST_EVERY_MS) return;
    this.lastPersist = t;
    const copy = JSON.parse(JSON.stringify(r)) as VerifyRecord;
    this.persistChain = this.persistChain.then(() => saveRecord(this.opts.stateDir, copy)).catch((err: unknown) => this.log.warn({ err }, 'verify: cannot persist progress'));
    await this.persistChain;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function cloneEntry(e: Entry): Entry {
  return e.kind === 'file' ? { ...e, blocks: Buffer.from(e.blocks) } : { ...e };
}

function realOrAsIs(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return p;
  }
}

/** All names of inode `ino` in the manifest of `root`, first name first (the synchronisation's order: parents first, then by name). */
function linkNames(m: Manifest, root: string, p: string, ino: number): string[] {
  const names = ino > 0 ? m.pathsForIno(root, ino).filter((q) => m.get(root, q)?.kind === 'file') : [];
  if (!names.includes(p)) names.push(p);
  return names.sort((x, y) => depthOf(x) - depthOf(y) || (x < y ? -1 : x > y ? 1 : 0));
}

/** The active's disk at `p`, read through a walk from its root: stat fields, owner, attributes, a symlink's target. */
function diskView(rootPath: string, p: string): DiskView | undefined {
  const parent = openParentOrNone(rootPath, p);
  if (parent === undefined) return undefined;
  try {
    const st = lstatAt(parent.at);
    const kind = st === undefined ? undefined : kindOf(st);
    if (st === undefined || kind === undefined) return undefined;
    const view: DiskView = { kind, mode: st.mode & 0o7777, size: kind === 'file' ? st.size : 0, mtimeMs: st.mtimeMs, uid: st.uid, gid: st.gid };
    if (kind === 'symlink') view.target = fs.readlinkSync(parent.at, 'utf8');
    else view.xattrHash = readEntryMeta(parent.at, st, undefined).xattrHash;
    return view;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  } finally {
    parent.close();
  }
}
