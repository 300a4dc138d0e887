// A system program the agent runs (btrfs, sync), looked up in fixed directories, never through
// PATH: whoever set the agent's environment must not choose what runs as root.
import fs from 'node:fs';

/** The first of `locations` that is an executable regular file. */
export function findProgram(locations: readonly string[]): string | undefined {
  for (const p of locations) {
    try {
      const st = fs.statSync(p);
      if (st.isFile() && (st.mode & 0o111) !== 0) return p;
    } catch {
      // not there
    }
  }
  return undefined;
}
