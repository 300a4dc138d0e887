// Which compiled build `tandem` runs, and the proof that it matches the sources. Read at every
// start, so it must stay cheap: one JSON file and one stat per source; a file is read and
// hashed only when its stat data (size, times, inode) differs from what the build recorded.
// ctime cannot be set back by a user, so an edit is always seen; a file merely touched or
// checked out again with the same bytes hashes equal and the record is refreshed.
//
// From an installed package (no sources beside bin/) the build shipped in dist/ is the truth.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const ENTRY_SOURCE = 'console/cli.ts';

/**
 * { fresh, id, entryFile, sources, stale, reason }: `fresh` when dist/current.json names a build
 * whose every input is unchanged; `sources` when the sources are there to compare and rebuild
 * from; `stale` lists the inputs that changed or disappeared.
 */
export function currentBuild(root) {
  const dist = path.join(root, 'dist');
  const sources = fs.existsSync(path.join(root, ENTRY_SOURCE));
  let info;
  try {
    info = JSON.parse(fs.readFileSync(path.join(dist, 'current.json'), 'utf8'));
  } catch {
    return { fresh: false, sources, stale: [], reason: 'no build yet' };
  }
  const id = typeof info.id === 'string' && /^[0-9a-f]{16}$/.test(info.id) ? info.id : undefined;
  const entryFile = id === undefined ? undefined : path.join(dist, id, 'cli.js');
  if (entryFile === undefined || !fs.existsSync(entryFile)) return { fresh: false, sources, stale: [], reason: 'the recorded build is missing' };
  if (!sources) return { fresh: true, id, entryFile, sources, stale: [], reason: 'installed build' };
  const stale = [];
  let touched = false;
  for (const [rel, rec] of Object.entries(info.inputs ?? {})) {
    let st;
    try {
      st = fs.statSync(path.join(root, rel), { bigint: true });
    } catch {
      stale.push(rel);
      continue;
    }
    if (Number(st.size) === rec.size && String(st.mtimeNs) === rec.mtimeNs && String(st.ctimeNs) === rec.ctimeNs && String(st.ino) === rec.ino) continue;
    const sha256 = crypto.createHash('sha256').update(fs.readFileSync(path.join(root, rel))).digest('hex');
    if (sha256 !== rec.sha256) {
      stale.push(rel);
      continue;
    }
    info.inputs[rel] = { size: Number(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs), ino: String(st.ino), sha256 };
    touched = true;
  }
  if (stale.length > 0) return { fresh: false, id, entryFile, sources, stale, reason: `${stale.length} source(s) changed since build ${id}: ${stale.slice(0, 3).join(', ')}${stale.length > 3 ? ', …' : ''}` };
  if (touched) {
    // Same bytes, new stat data: remember it, so the next start need not hash again. Best effort.
    try {
      const tmp = path.join(dist, `current.json.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
      fs.writeFileSync(tmp, `${JSON.stringify(info, null, 1)}\n`);
      fs.renameSync(tmp, path.join(dist, 'current.json'));
    } catch {
      // A read-only checkout: the next start hashes again, and is still right.
    }
  }
  return { fresh: true, id, entryFile, sources, stale: [], reason: 'up to date' };
}
