// The paths one batch of records may change while the applier works on it: each record's path
// (and a rename's target), everything below them (a directory removed, replaced or moved takes
// its content along) and everything above them (missing parents are created). While a batch
// runs, the disk and the manifest of these paths may disagree for a moment; nothing else may.
import type { DataRecord } from '../../shared/protocol/index.ts';

function keyOf(root: string, rel: string): string {
  return `${root}\0${rel}`;
}

export class InFlightPaths {
  /** root\0path of every record's path and rename target, in the order first met. */
  private readonly touched = new Map<string, { root: string; path: string }>();
  /** root\0dir of every directory above a touched path ("" is the root itself). */
  private readonly above = new Set<string>();
  readonly syncBegins: boolean;
  readonly syncEnds: boolean;

  constructor(records: readonly DataRecord[]) {
    let begins = false;
    let ends = false;
    for (const r of records) {
      if (r.op === 'sync-begin') begins = true;
      else if (r.op === 'sync-end') ends = true;
      else {
        this.add(r.root, r.path);
        if (r.op === 'rename') this.add(r.root, r.to);
      }
    }
    this.syncBegins = begins;
    this.syncEnds = ends;
  }

  private add(root: string, rel: string): void {
    const key = keyOf(root, rel);
    if (this.touched.has(key)) return;
    this.touched.set(key, { root, path: rel });
    this.above.add(keyOf(root, ''));
    for (let i = rel.indexOf('/'); i >= 0; i = rel.indexOf('/', i + 1)) this.above.add(keyOf(root, rel.slice(0, i)));
  }

  /** Whether the batch may change `rel` (or the manifest's entry of it). */
  covers(root: string, rel: string): boolean {
    const key = keyOf(root, rel);
    if (this.touched.has(key) || this.above.has(key)) return true;
    for (let i = rel.lastIndexOf('/'); i > 0; i = rel.lastIndexOf('/', i - 1)) {
      if (this.touched.has(keyOf(root, rel.slice(0, i)))) return true;
    }
    return false;
  }

  /** The distinct paths the records name (not what lies above or below them). */
  paths(): IterableIterator<{ root: string; path: string }> {
    return this.touched.values();
  }
}
