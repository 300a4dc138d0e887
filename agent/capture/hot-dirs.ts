// Which watched directories of a snapshot-mode root are too busy to watch. Under a database's
// load one directory (PostgreSQL's pg_wal) sends an inotify event per commit: measured 1,500 a
// second, each a wake-up of the agent's event loop, about a quarter of the active's CPU. In
// snapshot mode the watcher only says *that* a root changed; btrfs's change list between two
// snapshots says exactly what. So a directory that sends more than `limit` events between two
// points is not watched while it stays busy: its root takes a snapshot every interval instead,
// and the directory is watched again after the first point whose change list names nothing in
// it (and once more point follows, for what changed before the watch was back).
//
// Pure bookkeeping: it never touches a watch or a file; capture and the watcher act on it.
// It must never be used for a root captured file by file: there a missed event is a missed change.

/** Events from one directory between two points above which its watch is set aside. */
export const HOT_DIR_EVENTS = 32;

export class HotDirs {
  /** Events per watched directory since the current point began. */
  private readonly counts = new Map<string, number>();
  /** Directories whose watch is set aside ("" for the root itself). */
  private readonly idle = new Set<string>();

  /** False while the root is captured file by file (its snapshots fail): every watch stays. */
  enabled = true;

  constructor(private readonly limit = HOT_DIR_EVENTS) {}

  /** One event from `dir`'s watch: true when it crosses the limit now (set its watch aside). */
  event(dir: string): boolean {
    if (!this.enabled || this.idle.has(dir)) return false;
    const n = (this.counts.get(dir) ?? 0) + 1;
    this.counts.set(dir, n);
    if (n <= this.limit) return false;
    this.counts.delete(dir);
    this.idle.add(dir);
    return true;
  }

  /** Directories set aside now. */
  get unwatched(): ReadonlySet<string> {
    return this.idle;
  }

  /**
   * A point's change list (every path it names, relative to the root) is in: the counts start
   * again, and the directories set aside in which nothing listed lies (at any depth) are
   * returned: watch them again. The caller takes one more point after that.
   */
  pointListed(paths: Iterable<string> | undefined): string[] {
    this.counts.clear();
    // No list (the first point, a whole comparison): nothing is known to have been quiet.
    if (this.idle.size === 0 || paths === undefined) return [];
    const busy = new Set<string>();
    for (const p of paths) {
      // Every ancestor of a listed path is busy: walk up until the root.
      let d = parentOf(p);
      for (;;) {
        if (this.idle.has(d)) busy.add(d);
        if (d === '') break;
        d = parentOf(d);
      }
    }
    const quiet = [...this.idle].filter((d) => !busy.has(d));
    for (const d of quiet) this.idle.delete(d);
    return quiet;
  }

  /** Everything set aside is to be watched again (the root falls back to file by file). */
  takeAll(): string[] {
    const all = [...this.idle];
    this.idle.clear();
    this.counts.clear();
    return all;
  }

  /** A directory and what is below it went away or moved: forget them. */
  forget(dir: string): void {
    for (const d of [...this.idle]) if (dir === '' || d === dir || d.startsWith(`${dir}/`)) this.idle.delete(d);
    for (const d of [...this.counts.keys()]) if (dir === '' || d === dir || d.startsWith(`${dir}/`)) this.counts.delete(d);
  }
}

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}
