// The stat of a regular file as the manifest keeps it: plain numbers, the mode's permission
// bits only. Read by capture when it opens a file, and by the applier after it wrote one.
import type fs from 'node:fs';

export interface FileStat {
  ino: number;
  size: number;
  mtimeMs: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  ctimeMs: number;
}

export function fileStatOf(st: fs.Stats): FileStat {
  return { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, nlink: st.nlink, ctimeMs: st.ctimeMs };
}
