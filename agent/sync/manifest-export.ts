// The passive side of an initial synchronisation: make the passive's manifest true to its
// disk (stat every path, hash only what does not match), then stream it to the active in
// chunks. Only hashes cross the wire, never file data. Every path is read through a walk from
// its root (agent/tree/beneath.ts): a directory someone swapped for a link is not followed, and
// nothing outside the root is hashed.
import fs, { type Stats } from 'node:fs';
import type { ProtectedRoot } from '../../shared/config/index.ts';
import type { Clock } from '../../shared/clock.ts';
import type { WireManifestEntry, WireMeta } from '../../shared/protocol/index.ts';
import { compileExcludes, readBlocks, scanRoot } from '../capture/index.ts';
import { isRacy } from '../capture/stat-match.ts';
import { ownerOf, type Entry, type Manifest } from '../manifest/index.ts';
import { lstatAt, openParentOrNone, readEntryMeta, type OwnersMode, type Parent, type UserNames } from '../tree/index.ts';

export interface RefreshResult {
  entries: number;
  rehashed: number;
  bytesHashed: number;
}

/** Brings `manifest` in line with the trees on disk, hashing only files whose content stat differs. */
export async function refreshManifest(roots: ProtectedRoot[], manifest: Manifest, blockSize: number, clock: Clock, users?: UserNames): Promise<RefreshResult> {
  const result: RefreshResult = { entries: 0, rehashed: 0, bytesHashed: 0 };
  for (const root of roots) {
    const real = fs.realpathSync(root.path);
    const hinted: string[] = [];
    const r = await scanRoot(root, manifest, compileExcludes(root.exclude), (rel) => hinted.push(rel));
    result.entries += r.entries;
    for (const rel of hinted) {
      const parent = openParentOrNone(real, rel);
      try {
        const st = parent === undefined ? undefined : lstatAt(parent.at);
        if (parent === undefined || st === undefined || !(st.isFile() || st.isDirectory() || st.isSymbolicLink())) {
          manifest.delete(root.name, rel);
          continue;
        }
        const fresh = await entryOnDisk(parent, st, manifest.get(root.name, rel), blockSize, clock, users, result);
        if (fresh === undefined) manifest.delete(root.name, rel);
        else manifest.set(root.name, rel, fresh);
      } finally {
        parent?.close();
      }
    }
  }
  return result;
}

/** The manifest entry of what stands at `parent` now; the content is hashed only when its stat says it changed. */
async function entryOnDisk(parent: Parent, st: Stats, prev: Entry | undefined, blockSize: number, clock: Clock, users: UserNames | undefined, result: RefreshResult): Promise<Entry | undefined> {
  const meta = readEntryMeta(parent.at, st, users);
  const attrs = { ...ownerOf(meta.owner), xattrHash: meta.xattrHash, ctimeMs: st.ctimeMs };
  if (st.isDirectory()) return { kind: 'dir', mode: st.mode & 0o7777, ino: st.ino, mtimeMs: st.mtimeMs, ...attrs };
  if (st.isSymbolicLink()) return { kind: 'symlink', target: fs.readlinkSync(parent.at, 'utf8'), ino: st.ino, mtimeMs: st.mtimeMs, ...ownerOf(meta.owner) };
  if (prev?.kind === 'file' && prev.ino === st.ino && prev.size === st.size && prev.mtimeMs === st.mtimeMs && !isRacy(prev)) {
    return { ...prev, mode: st.mode & 0o7777, nlink: st.nlink, ...attrs };
  }
  const out = await readBlocks(parent.at, blockSize, () => clock.now(), () => {});
  if (out.kind !== 'file') return undefined;
  result.rehashed++;
  result.bytesHashed += out.size;
  return {
    kind: 'file',
    mode: out.stat.mode,
    size: out.size,
    mtimeMs: out.stat.mtimeMs,
    ino: out.stat.ino,
    blocks: Buffer.from(out.blocks),
    readAt: out.readAt,
    nlink: out.stat.nlink,
    ...attrs,
  };
}

/**
 * An entry's owner, attributes and links in the terms this node applies them by (`owners`):
 * numeric ids; with `names`, the names too (this node's, for the ids on its disk); with `off`,
 * no owner at all.
 */
export function wireMetaOf(e: Entry, owners: OwnersMode, users: UserNames | undefined): WireMeta {
  const out: WireMeta = {};
  if (owners !== 'off' && e.uid !== undefined && e.gid !== undefined) {
    out.uid = e.uid;
    out.gid = e.gid;
    if (owners === 'names') {
      const user = users?.userName(e.uid);
      const group = users?.groupName(e.gid);
      if (user !== undefined) out.user = user;
      if (group !== undefined) out.group = group;
    }
  }
  if (e.kind !== 'symlink' && e.xattrHash !== undefined) out.xattrHash = e.xattrHash;
  if (e.kind === 'file' && e.nlink !== undefined) {
    out.nlink = e.nlink;
    if (e.nlink > 1 && e.ino > 0) out.link = e.ino;
  }
  return out;
}

/** The manifest as wire entries, in chunks of at most `maxEntries` entries or about `maxBytes`. */
export function* manifestChunks(manifest: Manifest, owners: OwnersMode = 'numeric', users?: UserNames, maxEntries = 2000, maxBytes = 4 << 20): Generator<WireManifestEntry[]> {
  let chunk: WireManifestEntry[] = [];
  let bytes = 0;
  for (const root of manifest.rootNames()) {
    for (const [p, e] of manifest.entries(root)) {
      const w: WireManifestEntry = {
        root,
        path: p,
        kind: e.kind,
        mode: e.kind === 'symlink' ? 0 : e.mode,
        size: e.kind === 'file' ? e.size : 0,
        mtimeMs: e.mtimeMs,
        ...(e.kind === 'file' ? { blocks: e.blocks } : {}),
        ...(e.kind === 'symlink' ? { target: e.target } : {}),
        ...wireMetaOf(e, owners, users),
      };
      chunk.push(w);
      bytes += 96 + p.length + (e.kind === 'file' ? e.blocks.length : 0);
      if (chunk.length >= maxEntries || bytes >= maxBytes) {
        yield chunk;
        chunk = [];
        bytes = 0;
      }
    }
  }
  if (chunk.length > 0) yield chunk;
}
