// The passive side of an initial synchronisation: make the passive's manifest true to its
// disk (stat every path, hash only what does not match), then stream it to the active in
// chunks. Only hashes cross the wire, never file data.
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { ProtectedRoot } from '../../shared/config/index.ts';
import type { Clock } from '../../shared/clock.ts';
import { errnoOf } from '../../shared/errors.ts';
import type { WireManifestEntry } from '../../shared/protocol/index.ts';
import { compileExcludes, readBlocks, scanRoot } from '../capture/index.ts';
import type { Manifest } from '../manifest/index.ts';

export interface RefreshResult {
  entries: number;
  rehashed: number;
  bytesHashed: number;
}

/** Brings `manifest` in line with the trees on disk, hashing only files whose stat differs. */
export async function refreshManifest(roots: ProtectedRoot[], manifest: Manifest, blockSize: number, clock: Clock): Promise<RefreshResult> {
  const result: RefreshResult = { entries: 0, rehashed: 0, bytesHashed: 0 };
  for (const root of roots) {
    const hinted: string[] = [];
    const r = await scanRoot(root, manifest, compileExcludes(root.exclude), (rel) => hinted.push(rel));
    result.entries += r.entries;
    for (const rel of hinted) {
      const abs = path.join(root.path, rel);
      const st = await fsp.lstat(abs).catch((err: unknown) => {
        if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return undefined;
        throw err;
      });
      if (st === undefined || !(st.isFile() || st.isDirectory() || st.isSymbolicLink())) {
        manifest.delete(root.name, rel);
      } else if (st.isDirectory()) {
        manifest.set(root.name, rel, { kind: 'dir', mode: st.mode & 0o7777, ino: st.ino, mtimeMs: st.mtimeMs });
      } else if (st.isSymbolicLink()) {
        manifest.set(root.name, rel, { kind: 'symlink', target: await fsp.readlink(abs), ino: st.ino, mtimeMs: st.mtimeMs });
      } else {
        const out = await readBlocks(abs, blockSize, () => clock.now(), () => {});
        if (out.kind !== 'file') {
          manifest.delete(root.name, rel);
          continue;
        }
        result.rehashed++;
        result.bytesHashed += out.size;
        manifest.set(root.name, rel, {
          kind: 'file',
          mode: out.stat.mode,
          size: out.size,
          mtimeMs: out.stat.mtimeMs,
          ino: out.stat.ino,
          blocks: Buffer.from(out.blocks),
          readAt: out.readAt,
        });
      }
    }
  }
  return result;
}

/** The manifest as wire entries, in chunks of at most `maxEntries` entries or about `maxBytes`. */
export function* manifestChunks(manifest: Manifest, maxEntries = 2000, maxBytes = 4 << 20): Generator<WireManifestEntry[]> {
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
      };
      chunk.push(w);
      bytes += 64 + p.length + (e.kind === 'file' ? e.blocks.length : 0);
      if (chunk.length >= maxEntries || bytes >= maxBytes) {
        yield chunk;
        chunk = [];
        bytes = 0;
      }
    }
  }
  if (chunk.length > 0) yield chunk;
}
