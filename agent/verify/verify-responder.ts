// The passive's side of `tandem verify`: answers the active's questions about its tree with
// stat fields and block hashes, never with file data, and only once it has applied everything
// up to the point at which the active read its own side. It never writes anything, and never
// reads outside a protected root (no path through a symlink, excluded paths are not shown).
import fs from 'node:fs';
import type { ProtectedRoot } from '../../shared/config/index.ts';
import { systemClock } from '../../shared/clock.ts';
import { describeCause, errnoOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { VerifyEntryMessage, VerifyListMessage, VerifyReplyMessage, WireVerifyEntry } from '../../shared/protocol/index.ts';
import { compileExcludes, readBlocks } from '../capture/index.ts';
import type { ExcludeMatcher } from '../capture/exclude.ts';
import { kindOf } from '../capture/stat-match.ts';
import { wireMetaOf } from '../sync/manifest-export.ts';
import { Parent, PathSwapped, UserDb, at, closeFd, fdPath, lstatAt, openDirBeneath, openParentOrNone, readEntryMeta, type OwnersMode, type UserNames } from '../tree/index.ts';
import { joinRel } from './path-order.ts';

export interface VerifyResponderOptions {
  roots: ProtectedRoot[];
  blockSize: number;
  /** Resolves true once every record up to `seq` is applied, false if not within `timeoutMs`. */
  whenApplied: (seq: number, timeoutMs: number) => Promise<boolean>;
  appliedSeq: () => number;
  /** replication.owners of this node: owners are described in the terms it applies them by. */
  owners?: OwnersMode;
  users?: UserNames;
  /** Whether the standby watch holds a path as changed by hand (agent/standby); absent: never. */
  modified?: (root: string, rel: string) => boolean;
  log: Logger;
}

/** How a question waits for the passive to apply up to its point before it is answered with an error. */
const APPLY_WAIT_MS = 20_000;
/** Bytes of block hashes one directory listing may carry. */
const LISTED_HASH_BYTES = 2 * 1024 * 1024;

type Root = ProtectedRoot & { isExcluded: ExcludeMatcher; real: string };

export class VerifyResponder {
  private readonly roots = new Map<string, Root>();
  private readonly log: Logger;
  private readonly owners: OwnersMode;
  private readonly users: UserNames;

  constructor(private readonly opts: VerifyResponderOptions) {
    this.log = opts.log.child({ component: 'verify' });
    this.owners = opts.owners ?? 'numeric';
    this.users = opts.users ?? new UserDb(systemClock);
    for (const r of opts.roots) this.roots.set(r.name, { ...r, isExcluded: compileExcludes(r.exclude), real: r.path });
  }

  /** Answers one question; the reply goes out through `send`. Never throws. */
  async answer(m: VerifyListMessage | VerifyEntryMessage, send: (reply: VerifyReplyMessage) => void): Promise<void> {
    const fail = (error: string) => send({ t: 'verify-reply', req: m.req, atSeq: this.opts.appliedSeq(), error });
    const root = this.roots.get(m.root);
    if (root === undefined) return fail(`root ${m.root} is not protected on this node`);
    if (!(await this.opts.whenApplied(m.afterSeq, APPLY_WAIT_MS))) return fail(`not applied up to ${m.afterSeq} within ${APPLY_WAIT_MS} ms (applied ${this.opts.appliedSeq()})`);
    const atSeq = this.opts.appliedSeq();
    try {
      root.real = fs.realpathSync(root.path);
      if (m.t === 'verify-list') {
        const listed = await this.list(root, m.path, m.blocksUpTo ?? 0);
        for (const e of listed ?? []) this.markModified(root, joinRel(m.path, e.name), e);
        send({ t: 'verify-reply', req: m.req, atSeq, ...(listed === undefined ? { missing: true, entries: [] } : { entries: listed }) });
      } else {
        const entry = root.isExcluded(m.path) ? undefined : await this.entry(root, m.path);
        if (entry !== undefined) this.markModified(root, m.path, entry);
        send({ t: 'verify-reply', req: m.req, atSeq, entry: entry ?? null });
      }
    } catch (err) {
      this.log.warn({ root: m.root, path: m.path, err }, 'verify: cannot read a path the active asked about');
      fail(`cannot read ${m.root}/${m.path}: ${describeCause(err)}`);
    }
  }

  private markModified(root: Root, rel: string, e: WireVerifyEntry): void {
    if (this.opts.modified?.(root.name, rel) === true) e.modified = true;
  }

  /**
   * The entries of directory `dir`, read through a walk from the root: a directory swapped for
   * a link (anywhere on the way) is not listed through, it reads as missing.
   */
  private async list(root: Root, dir: string, blocksUpTo: number): Promise<WireVerifyEntry[] | undefined> {
    let fd: number | undefined;
    try {
      fd = openDirBeneath(root.real, dir);
    } catch (err) {
      if (err instanceof PathSwapped) return undefined;
      throw err;
    }
    if (fd === undefined) return undefined;
    try {
      const names = fs
        .readdirSync(fdPath(fd))
        .filter((n) => !root.isExcluded(joinRel(dir, n)))
        .sort();
      const out: WireVerifyEntry[] = [];
      for (const n of names) {
        const e = statEntryAt(new Parent(fd, n), n, this.owners, this.users);
        if (e !== undefined) out.push(e);
      }
      // Small files come hashed: one answer instead of one question per file, within a budget
      // that keeps the answer far below channel.maxFrameBytes (the others are asked one by one).
      let budget = LISTED_HASH_BYTES;
      for (const e of out) {
        if (e.kind !== 'file' || e.size > blocksUpTo) continue;
        budget -= Math.ceil(e.size / this.opts.blockSize) * 8 + 64;
        if (budget < 0) break;
        const r = await readBlocks(at(fd, e.name), this.opts.blockSize, Date.now, () => {});
        if (r.kind === 'file' && !r.torn) Object.assign(e, { size: r.size, mode: r.stat.mode, mtimeMs: r.stat.mtimeMs, blocks: r.blocks });
      }
      return out;
    } finally {
      closeFd(fd);
    }
  }

  private async entry(root: Root, rel: string): Promise<WireVerifyEntry | undefined> {
    const parent = openParentOrNone(root.real, rel);
    if (parent === undefined) return undefined;
    try {
      const e = statEntryAt(parent, parent.name, this.owners, this.users);
      if (e?.kind !== 'file') return e;
      const r = await readBlocks(parent.at, this.opts.blockSize, Date.now, () => {});
      if (r.kind !== 'file') return r.kind === 'vanished' ? undefined : statEntryAt(parent, parent.name, this.owners, this.users);
      return { ...e, mode: r.stat.mode, size: r.size, mtimeMs: r.stat.mtimeMs, blocks: r.blocks };
    } finally {
      parent.close();
    }
  }
}

/**
 * One entry's stat fields, owner (in the terms of `owners`), attribute hash and link count,
 * and a symlink's target; undefined when absent or of a kind not replicated.
 */
export function statEntryAt(parent: Parent, name: string, owners: OwnersMode, users: UserNames | undefined): WireVerifyEntry | undefined {
  const st = lstatAt(parent.at);
  if (st === undefined) return undefined;
  const kind = kindOf(st);
  if (kind === undefined) return undefined;
  const e: WireVerifyEntry = { name, kind, mode: st.mode & 0o7777, size: kind === 'file' ? st.size : 0, mtimeMs: st.mtimeMs };
  if (kind === 'symlink') {
    try {
      e.target = fs.readlinkSync(parent.at, 'utf8');
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return undefined;
      throw err;
    }
  }
  let xattrHash: Buffer | undefined;
  if (kind !== 'symlink') {
    try {
      xattrHash = readEntryMeta(parent.at, st, undefined).xattrHash;
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return undefined;
      throw err;
    }
  }
  const meta = wireMetaOf(
    kind === 'file'
      ? { kind, mode: 0, size: 0, mtimeMs: 0, ino: st.ino, blocks: Buffer.alloc(0), readAt: 0, uid: st.uid, gid: st.gid, xattrHash, nlink: st.nlink }
      : kind === 'dir'
        ? { kind, mode: 0, ino: st.ino, mtimeMs: 0, uid: st.uid, gid: st.gid, xattrHash }
        : { kind, target: '', ino: st.ino, mtimeMs: 0, uid: st.uid, gid: st.gid },
    owners,
    users,
  );
  return Object.assign(e, meta);
}
