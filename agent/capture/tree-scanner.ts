// Walks a protected root and hints every path whose lstat does not match the manifest, and
// every manifest path that is gone. It hashes nothing: capture reads only what it is hinted.
// Used at start-up (changes made while the agent was stopped) and periodically (what the
// watcher missed: events can be lost (inotify queue overflow), and past the inotify watch limit
// a directory is not watched at all).
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Stats } from 'node:fs';
import type { ProtectedRoot } from '../../shared/config/index.ts';
import { errnoOf } from '../../shared/errors.ts';
import type { Entry, Manifest } from '../manifest/index.ts';
import type { ExcludeMatcher } from './exclude.ts';
import { kindOf, statMatches } from './stat-match.ts';

export interface ScanResult {
  dirs: number;
  entries: number;
  hinted: number;
}

/** lstat calls in flight at once: enough to keep the thread pool busy, few enough to stay fair. */
const PARALLEL_LSTAT = 32;

export async function scanRoot(
  root: ProtectedRoot,
  manifest: Manifest,
  isExcluded: ExcludeMatcher,
  hint: (relPath: string) => void,
  shouldStop: () => boolean = () => false,
  /** Whether a path's lstat proves its entry right (the passive's standby watch asks more of it). */
  matches: (entry: Entry | undefined, st: Stats, relPath: string) => boolean = statMatches,
): Promise<ScanResult> {
  const result: ScanResult = { dirs: 0, entries: 0, hinted: 0 };
  const emit = (p: string) => {
    result.hinted++;
    hint(p);
  };
  const queue: string[] = [''];
  while (queue.length > 0 && !shouldStop()) {
    const dir = queue.pop()!;
    result.dirs++;
    let names: string[];
    try {
      names = await fsp.readdir(dir === '' ? root.path : path.join(root.path, dir));
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        if (dir !== '') emit(dir);
        continue;
      }
      throw err;
    }
    const seen = new Set<string>();
    const rels = names.map((n) => (dir === '' ? n : `${dir}/${n}`)).filter((rel) => !isExcluded(rel));
    for (let i = 0; i < rels.length; i += PARALLEL_LSTAT) {
      const slice = rels.slice(i, i + PARALLEL_LSTAT);
      const stats = await Promise.all(slice.map((rel) => fsp.lstat(path.join(root.path, rel)).catch(() => undefined)));
      slice.forEach((rel, j) => {
        const st: Stats | undefined = stats[j];
        if (st === undefined) return emit(rel); // vanished between readdir and lstat
        const kind = kindOf(st);
        if (kind === undefined) return;
        seen.add(rel);
        result.entries++;
        if (!matches(manifest.get(root.name, rel), st, rel)) emit(rel);
        if (kind === 'dir') queue.push(rel);
      });
    }
    for (const known of manifest.childrenOf(root.name, dir)) if (!seen.has(known)) emit(known);
  }
  return result;
}
