// The passive's side of `tandem verify`: answers the active's questions about its tree with
// stat fields and block hashes, never with file data, and only once it has applied everything
// up to the point at which the active read its own side. It never writes anything, and never
// reads outside a protected root (no path through a symlink, excluded paths are not shown).
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { ProtectedRoot } from '../../shared/config/index.ts';
import { describeCause, errnoOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { VerifyEntryMessage, VerifyListMessage, VerifyReplyMessage, WireVerifyEntry } from '../../shared/protocol/index.ts';
import { compileExcludes, readBlocks } from '../capture/index.ts';
import type { ExcludeMatcher } from '../capture/exclude.ts';
import { kindOf } from '../capture/stat-match.ts';
import { joinRel } from './path-order.ts';

export interface VerifyResponderOptions {
  roots: ProtectedRoot[];
  blockSize: number;
  /** Resolves true once every record up to `seq` is applied, false if not within `timeoutMs`. */
  whenApplied: (seq: number, timeoutMs: number) => Promise<boolean>;
  appliedSeq: () => number;
  log: Logger;
}

/** How long a question waits for the passive to apply up to its point before it is answered with an error. */
const APPLY_WAIT_MS = 20_000;
const PARALLEL_LSTAT = 32;
/** Bytes of block hashes one directory listing may carry. */
const LISTED_HASH_BYTES = 2 * 1024 * 1024;

export class VerifyResponder {
  private readonly roots = new Map<string, ProtectedRoot & { isExcluded: ExcludeMatcher }>();
  private readonly log: Logger;

  constructor(private readonly opts: VerifyResponderOptions) {
    this.log = opts.log.child({ component: 'verify' });
    for (const r of opts.roots) this.roots.set(r.name, { ...r, isExcluded: compileExcludes(r.exclude) });
  }

  /** Answers one question; the reply goes out through `send`. Never throws. */
  async answer(m: VerifyListMessage | VerifyEntryMessage, send: (reply: VerifyReplyMessage) => void): Promise<void> {
    const fail = (error: string) => send({ t: 'verify-reply', req: m.req, atSeq: this.opts.appliedSeq(), error });
    const root = this.roots.get(m.root);
    if (root === undefined) return fail(`root ${m.root} is not protected on this node`);
    if (!(await this.opts.whenApplied(m.afterSeq, APPLY_WAIT_MS))) return fail(`not applied up to ${m.afterSeq} within ${APPLY_WAIT_MS} ms (applied ${this.opts.appliedSeq()})`);
    const atSeq = this.opts.appliedSeq();
    try {
      if (!(await this.insideRoot(root.path, m.path))) {
        return send(m.t === 'verify-list' ? { t: 'verify-reply', req: m.req, atSeq, missing: true, entries: [] } : { t: 'verify-reply', req: m.req, atSeq, entry: null });
      }
      if (m.t === 'verify-list') {
        const listed = await this.list(root, m.path, m.blocksUpTo ?? 0);
        send({ t: 'verify-reply', req: m.req, atSeq, ...(listed === undefined ? { missing: true, entries: [] } : { entries: listed }) });
      } else {
        const entry = root.isExcluded(m.path) ? undefined : await this.entry(root.path, m.path);
        send({ t: 'verify-reply', req: m.req, atSeq, entry: entry ?? null });
      }
    } catch (err) {
      this.log.warn({ root: m.root, path: m.path, err }, 'verify: cannot read a path the active asked about');
      fail(`cannot read ${m.root}/${m.path}: ${describeCause(err)}`);
    }
  }

  /** Every ancestor of `rel` is a real directory (not a symlink): reading it stays in the root. */
  private async insideRoot(rootPath: string, rel: string): Promise<boolean> {
    const segs = rel === '' ? [] : rel.split('/');
    let p = rootPath;
    for (let i = 0; i < segs.length - 1; i++) {
      p = path.join(p, segs[i]!);
      try {
        if (!(await fsp.lstat(p)).isDirectory()) return false;
      } catch {
        return false;
      }
    }
    return true;
  }

  private async list(root: ProtectedRoot & { isExcluded: ExcludeMatcher }, dir: string, blocksUpTo: number): Promise<WireVerifyEntry[] | undefined> {
    const abs = dir === '' ? root.path : path.join(root.path, dir);
    try {
      if (!(await fsp.lstat(abs)).isDirectory()) return undefined;
    } catch (err) {
      if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return undefined;
      throw err;
    }
    const names = (await fsp.readdir(abs)).filter((n) => !root.isExcluded(joinRel(dir, n))).sort();
    const out: WireVerifyEntry[] = [];
    for (let i = 0; i < names.length; i += PARALLEL_LSTAT) {
      const slice = names.slice(i, i + PARALLEL_LSTAT);
      const got = await Promise.all(slice.map((n) => statEntry(path.join(abs, n), n)));
      for (const e of got) if (e !== undefined) out.push(e);
    }
    // Small files come hashed: one answer instead of one question per file, within a budget
    // that keeps the answer far below channel.maxFrameBytes (the others are asked one by one).
    let budget = LISTED_HASH_BYTES;
    for (const e of out) {
      if (e.kind !== 'file' || e.size > blocksUpTo) continue;
      budget -= Math.ceil(e.size / this.opts.blockSize) * 8 + 64;
      if (budget < 0) break;
      const r = await readBlocks(path.join(abs, e.name), this.opts.blockSize, Date.now, () => {});
      if (r.kind === 'file' && !r.torn) Object.assign(e, { size: r.size, mode: r.stat.mode, mtimeMs: r.stat.mtimeMs, blocks: r.blocks });
    }
    return out;
  }

  private async entry(rootPath: string, rel: string): Promise<WireVerifyEntry | undefined> {
    const abs = path.join(rootPath, rel);
    const name = path.posix.basename(rel);
    const e = await statEntry(abs, name);
    if (e?.kind !== 'file') return e;
    const r = await readBlocks(abs, this.opts.blockSize, Date.now, () => {});
    if (r.kind !== 'file') return r.kind === 'vanished' ? undefined : statEntry(abs, name);
    return { name, kind: 'file', mode: r.stat.mode, size: r.size, mtimeMs: r.stat.mtimeMs, blocks: r.blocks };
  }
}

/** One path's stat fields (and a symlink's target); undefined when absent or of a kind not replicated. */
export async function statEntry(abs: string, name: string): Promise<WireVerifyEntry | undefined> {
  let st;
  try {
    st = await fsp.lstat(abs);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return undefined;
    throw err;
  }
  const kind = kindOf(st);
  if (kind === undefined) return undefined;
  const e: WireVerifyEntry = { name, kind, mode: st.mode & 0o7777, size: kind === 'file' ? st.size : 0, mtimeMs: st.mtimeMs };
  if (kind === 'symlink') {
    try {
      e.target = await fsp.readlink(abs);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return undefined;
      throw err;
    }
  }
  return e;
}
