// A tree as the tests compare it: sha256 of every file, its mode and owner, every link's target
// and owner, every directory's mode and owner, and which files share an inode (hard links). Two replicas are identical when these maps are equal.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export type TreeDigest = Map<string, string>;

export function digestTree(root: string, opts: { mtimes?: boolean } = {}): TreeDigest {
  const out: TreeDigest = new Map();
  const firstNames = new Map<string, string>();
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const abs = path.join(root, r);
      const st = fs.lstatSync(abs);
      const owner = `${st.uid}:${st.gid}`;
      if (st.isSymbolicLink()) out.set(r, `link ${fs.readlinkSync(abs)} ${owner}`);
      else if (st.isDirectory()) {
        out.set(r, `dir ${(st.mode & 0o7777).toString(8)} ${owner}`);
        walk(r);
      } else if (st.isFile()) {
        const sha = crypto.createHash('sha256').update(fs.readFileSync(abs)).digest('hex');
        // The first name of an inode seen in the walk stands for the hard link group.
        const key = `${st.dev}:${st.ino}`;
        if (st.nlink > 1 && !firstNames.has(key)) firstNames.set(key, r);
        const links = st.nlink > 1 ? ` links ${firstNames.get(key)}` : '';
        out.set(r, `file ${(st.mode & 0o7777).toString(8)} ${owner} ${sha}${links}${opts.mtimes === true ? ` ${Math.floor(st.mtimeMs)}` : ''}`);
      }
    }
  };
  walk('');
  return out;
}

/** Lines describing how `got` differs from `want` ('' when identical). */
export function treeDiff(want: TreeDigest, got: TreeDigest, max = 15): string {
  const lines: string[] = [];
  for (const [k, v] of want) {
    const g = got.get(k);
    if (g === undefined) lines.push(`missing ${k} (${v.slice(0, 40)})`);
    else if (g !== v) lines.push(`differs ${k}: want ${v.slice(0, 50)} got ${g.slice(0, 50)}`);
  }
  for (const k of got.keys()) if (!want.has(k)) lines.push(`extra ${k}`);
  return lines.length > max ? `${lines.slice(0, max).join('\n')}\n… and ${lines.length - max} more` : lines.join('\n');
}
