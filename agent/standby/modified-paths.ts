// The passive's paths that someone other than Tandem changed, kept until each is back to what
// the applier left there. Bounded (a flood of hand-made files costs at most MAX_TRACKED_PATHS
// entries, and the alarm says there were more), and kept in the state directory so that a
// restart does not forget a change that no stat shows any more (bytes rewritten in place).
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../shared/log.ts';
import { relPathProblem } from '../../shared/protocol/index.ts';
import type { Alarm } from '../replication/index.ts';
import type { Drift } from './stat-drift.ts';

export interface ModifiedPath {
  root: string;
  path: string;
  what: Drift;
  /** Wall-clock ms when it was first seen changed. */
  since: number;
}

/** Paths tracked one by one; beyond this the alarm only says there were more. */
export const MAX_TRACKED_PATHS = 10_000;
/** Paths named in the alarm's message, and listed in its details. */
const PATHS_IN_MESSAGE = 5;
const PATHS_IN_DETAILS = 100;
const FORMAT = 1;
const DRIFTS: readonly Drift[] = ['created', 'removed', 'kind', 'replaced', 'size', 'mtime', 'mode', 'owner', 'content'];

const WORDS: Record<Drift, string> = {
  created: 'created',
  removed: 'removed',
  kind: 'replaced by another kind',
  replaced: 'replaced',
  size: 'written',
  mtime: 'written',
  content: 'written',
  mode: 'mode changed',
  owner: 'owner changed',
};

export const MODIFIED_HINT =
  'run tandem verify --repair on the active node: it puts these paths back and clears this alarm (to keep such a change, make it on the active instead). ' +
  'Until then, if this node takes over it serves these paths as they are here: what was written here becomes the data, what was removed here is missing, and the active never had either';

function keyOf(root: string, rel: string): string {
  return `${root}\0${rel}`;
}

/** A path as the alarm's message shows it: control characters escaped (a name made by hand must
 * not rewrite an operator's terminal), at most 200 characters. */
function shown(root: string, rel: string): string {
  const p = `${root}/${rel}`.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return p.length > 200 ? `${p.slice(0, 199)}…` : p;
}

export class ModifiedPaths {
  private readonly flags = new Map<string, ModifiedPath>();
  /** root\0dir → how many tracked paths lie strictly below it. */
  private readonly below = new Map<string, number>();
  private overflowed = false;
  /** Unsaved changes. */
  private changed = false;
  /** The alarm as last built; null when the set changed since (status asks for it often). */
  private cached: Alarm | undefined | null = null;

  private constructor(
    private readonly file: string,
    private readonly max: number,
  ) {}

  /** The set kept in `file`; an unreadable or damaged file counts as empty (with a warning). */
  static async load(file: string, log: Logger, max = MAX_TRACKED_PATHS): Promise<ModifiedPaths> {
    const m = new ModifiedPaths(file, max);
    let text: string;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ err, file }, 'standby: cannot read the paths changed by hand; starting from none');
      return m;
    }
    try {
      const doc = JSON.parse(text) as { format?: unknown; overflow?: unknown; paths?: unknown };
      if (doc.format !== FORMAT || !Array.isArray(doc.paths)) throw new Error('unknown format');
      for (const p of doc.paths.slice(0, max)) {
        if (!Array.isArray(p)) continue;
        const [root, rel, what, since] = p as unknown[];
        if (typeof root !== 'string' || relPathProblem(rel) !== undefined || !DRIFTS.includes(what as Drift) || typeof since !== 'number') continue;
        m.flag(root, rel as string, what as Drift, since);
      }
      m.overflowed = doc.overflow === true || doc.paths.length > max;
      m.changed = false;
    } catch (err) {
      log.warn({ err, file }, 'standby: the file of paths changed by hand is damaged; starting from none');
    }
    return m;
  }

  private touch(): void {
    this.changed = true;
    this.cached = null;
  }

  get size(): number {
    return this.flags.size;
  }

  /** Some changed paths could not be tracked one by one (more than the bound). */
  get overflow(): boolean {
    return this.overflowed;
  }

  has(root: string, rel: string): boolean {
    return this.flags.has(keyOf(root, rel));
  }

  /** 'new' when it was not tracked, 'known' when it was, 'dropped' when the bound is reached. */
  flag(root: string, rel: string, what: Drift, now: number): 'new' | 'known' | 'dropped' {
    const key = keyOf(root, rel);
    if (this.flags.has(key)) return 'known';
    if (this.flags.size >= this.max) {
      if (!this.overflowed) this.touch();
      this.overflowed = true;
      return 'dropped';
    }
    this.flags.set(key, { root, path: rel, what, since: now });
    for (let i = rel.lastIndexOf('/'); ; i = rel.lastIndexOf('/', i - 1)) {
      const dir = keyOf(root, i < 0 ? '' : rel.slice(0, i));
      this.below.set(dir, (this.below.get(dir) ?? 0) + 1);
      if (i <= 0) break;
    }
    this.touch();
    return 'new';
  }

  /** Forgets `rel`: it is back to what the applier left there. True when it was tracked. */
  clear(root: string, rel: string): boolean {
    const key = keyOf(root, rel);
    if (!this.flags.delete(key)) return false;
    for (let i = rel.lastIndexOf('/'); ; i = rel.lastIndexOf('/', i - 1)) {
      const dir = keyOf(root, i < 0 ? '' : rel.slice(0, i));
      const n = (this.below.get(dir) ?? 1) - 1;
      if (n <= 0) this.below.delete(dir);
      else this.below.set(dir, n);
      if (i <= 0) break;
    }
    this.touch();
    return true;
  }

  /** Forgets everything (a synchronisation rewrites the whole tree). True when anything went. */
  clearAll(): boolean {
    if (this.flags.size === 0 && !this.overflowed) return false;
    this.flags.clear();
    this.below.clear();
    this.overflowed = false;
    this.touch();
    return true;
  }

  /** A full pass found every changed path trackable: the untracked ones are tracked or gone. */
  endOverflow(): boolean {
    if (!this.overflowed) return false;
    this.overflowed = false;
    this.touch();
    return true;
  }

  /** The tracked paths strictly below `dir` ("" is the root). */
  under(root: string, dir: string): ModifiedPath[] {
    if ((this.below.get(keyOf(root, dir)) ?? 0) === 0) return [];
    const prefix = dir === '' ? '' : `${dir}/`;
    return [...this.flags.values()].filter((f) => f.root === root && f.path.startsWith(prefix) && f.path !== dir);
  }

  list(): ModifiedPath[] {
    return [...this.flags.values()];
  }

  /** TANDEM_ERR_PASSIVE_MODIFIED while any path is changed, naming a bounded list of them. */
  alarm(): Alarm | undefined {
    if (this.cached === null) this.cached = this.build();
    return this.cached;
  }

  private build(): Alarm | undefined {
    if (this.flags.size === 0 && !this.overflowed) return undefined;
    const all = [...this.flags.values()].sort((a, b) => a.since - b.since || (a.path < b.path ? -1 : 1));
    const named = all.slice(0, PATHS_IN_MESSAGE).map((f) => `${shown(f.root, f.path)} ${WORDS[f.what]}`);
    const more = all.length - named.length;
    const count = this.overflowed ? `more than ${all.length} paths` : all.length === 1 ? '1 path' : `${all.length} paths`;
    const list = named.length === 0 ? '' : ` (${named.join(', ')}${more > 0 ? `, and ${more} more` : ''})`;
    return {
      code: 'TANDEM_ERR_PASSIVE_MODIFIED',
      message: `the passive's copy was changed by someone other than Tandem: ${count}${list}`,
      hint: MODIFIED_HINT,
      since: all[0]?.since ?? 0,
      details: {
        count: all.length,
        overflow: this.overflowed,
        paths: all.slice(0, PATHS_IN_DETAILS).map((f) => ({ path: `${f.root}/${f.path}`, what: f.what, since: f.since })),
      },
    };
  }

  /** Writes the set if it changed since the last save (atomically, readable by root alone). */
  async save(): Promise<void> {
    if (!this.changed) return;
    this.changed = false;
    const doc = { format: FORMAT, overflow: this.overflowed, paths: [...this.flags.values()].map((f) => [f.root, f.path, f.what, f.since]) };
    const tmp = `${this.file}.tmp`;
    try {
      await fsp.mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
      const fh = await fsp.open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(JSON.stringify(doc));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(tmp, this.file);
    } catch (err) {
      this.touch();
      throw err;
    }
  }

  /** Removes the file (the node stops being passive: these paths are its data now). */
  async remove(): Promise<void> {
    await fsp.rm(this.file, { force: true });
    await fsp.rm(`${this.file}.tmp`, { force: true });
    this.changed = false;
  }
}
