// chokidar on one protected root. Its events are hints ("look at this path again"), never
// facts: it drops the last change of a burst, delivers renames as unlink + add in either
// order, and past the inotify limit silently watches nothing (PACKAGES.md). Capture re-reads,
// re-checks after quiet and scans periodically; this file only turns events into hints.
import { watch, type FSWatcher } from 'chokidar';
import path from 'node:path';
import type { ProtectedRoot } from '../../shared/config/index.ts';
import type { Logger } from '../../shared/log.ts';
import { errnoOf } from '../../shared/errors.ts';
import type { ExcludeMatcher } from './exclude.ts';

export interface RootWatcherOptions {
  root: ProtectedRoot;
  isExcluded: ExcludeMatcher;
  onHint: (relPath: string) => void;
  /** The watcher lost coverage (watch limit, root gone): capture should rely on scans. */
  onDegraded: (reason: string) => void;
  log: Logger;
}

export class RootWatcher {
  private watcher: FSWatcher | undefined;
  private degradedReported = false;

  constructor(private readonly opts: RootWatcherOptions) {}

  start(): Promise<void> {
    const { root, isExcluded, log } = this.opts;
    const toRel = (abs: string) => path.relative(root.path, abs).split(path.sep).join('/');
    this.watcher = watch(root.path, {
      ignoreInitial: true,
      persistent: true,
      // Symlinks are replicated as links; following them would report events twice (PACKAGES.md).
      followSymlinks: false,
      // atomic holds unlinks 100 ms and delays creates by ~100 ms; capture pairs renames by inode
      // itself, so the lower latency wins.
      atomic: false,
      alwaysStat: false,
      ignored: (abs: string) => {
        const rel = toRel(abs);
        return rel !== '' && !rel.startsWith('..') && isExcluded(rel);
      },
    });
    this.watcher.on('all', (_event, abs) => {
      const rel = toRel(abs);
      if (rel === '' || rel.startsWith('..')) return;
      this.opts.onHint(rel);
    });
    this.watcher.on('error', (err) => {
      const code = errnoOf(err);
      if (!this.degradedReported) {
        this.degradedReported = true;
        const reason =
          code === 'ENOSPC'
            ? 'inotify watch limit reached (fs.inotify.max_user_watches): some files are only seen by periodic scans'
            : `watcher error ${code ?? ''}: ${(err as Error).message}`;
        log.warn({ root: root.name, err, code }, `capture: ${reason}`);
        this.opts.onDegraded(reason);
      }
    });
    return new Promise((resolve) => this.watcher!.once('ready', () => resolve()));
  }

  async close(): Promise<void> {
    await this.watcher?.close();
    this.watcher = undefined;
  }
}
