// What the passive will hold once it has applied every record journaled so far, as a
// synchronisation follows it: the passive's manifest, changed by each record in order. Most
// paths end up as the active's manifest has them (the synchronisation made them so), and a
// second full copy of a 100,000-file manifest cost the active ~36 MiB of heap at the peak of
// a synchronisation (heap snapshot, bench (e)). So a path made equal is *converged*: its entry
// is dropped here and read from the active's manifest instead, which every later record changes
// the same way (capture journals a path's records before it sets its manifest entry). A record
// that touches a converged path, or a directory above one, first copies that path's entry back
// from the active's manifest as it stands before the record, then applies as before. It must
// never answer for a path anything but what the passive will hold.
//
// A new file's records (its `file`, its writes, its `meta`, one after another) are held back
// as they come, unapplied: when the synchronisation then finds the path equal, the entry they
// make (newFileEntry) is compared and the path converges without ever being set here and
// deleted again (three manifest changes and a removal per file, ~10 % of the active's main
// thread in bench (e)). Any other record, and any read that could see the path, first applies
// them one by one as before.
import { applyRecordToManifest, newFileEntry, type Entry, type Manifest } from '../manifest/index.ts';
import type { DataRecord, FileRecord, MetaRecord, WriteRecord } from '../../shared/protocol/index.ts';

/** A new file's records held back (see the header), in journal order. */
interface HeldFile {
  root: string;
  path: string;
  file: FileRecord;
  writes: WriteRecord[];
  /** Set by its meta record, which ends it: nothing more is held for it after. */
  meta?: MetaRecord;
}

/** What linkView needs of the passive's side. */
export interface PassiveView {
  hasRoot(root: string): boolean;
  get(root: string, path: string): Entry | undefined;
  pathsForIno(root: string, ino: number): string[];
}

export class ShadowTree implements PassiveView {
  /** Root → paths whose entry is the active manifest's (files and symlinks only). */
  private readonly converged = new Map<string, Set<string>>();
  /** A new file's records not applied yet (see the header). */
  private held: HeldFile | undefined;
  /** Files converged from their held records (tests). */
  private heldConverged = 0;

  /**
   * `explicit`: the passive's manifest as it reported it, changed in place from then on.
   * `active`: the active's manifest, which converged paths are read from.
   */
  constructor(
    private readonly explicit: Manifest,
    private readonly active: Manifest,
    private readonly blockSize: number,
  ) {}

  hasRoot(root: string): boolean {
    return this.explicit.hasRoot(root);
  }

  get(root: string, path: string): Entry | undefined {
    if (!this.explicit.hasRoot(root)) return undefined;
    // Held records change their own path's entry and no other (their entry's inode number is
    // none, so no list of names either).
    if (this.held !== undefined && this.held.path === path && this.held.root === root) this.release();
    if (this.converged.get(root)?.has(path) === true) return this.active.get(root, path);
    return this.explicit.get(root, path);
  }

  pathsForIno(root: string, ino: number): string[] {
    // A converged path never shares an inode with another name here (converge() refuses it,
    // and a hard link made to it later copies it back first).
    return this.explicit.pathsForIno(root, ino);
  }

  /** The paths as the passive reported them (before anything converged). */
  entries(root: string): IterableIterator<[string, Entry]> {
    this.release();
    return this.explicit.entries(root);
  }

  /** Paths converged (status, tests). */
  convergedCount(): number {
    let n = 0;
    for (const s of this.converged.values()) n += s.size;
    return n;
  }

  /**
   * `path` holds what the active's manifest says (the caller diffed the two and found nothing
   * to send): from now on it is read from there. Only a file or a symlink with one name on
   * both sides, and only when the two entries are `equal` as the synchronisation compares them.
   */
  converge(root: string, path: string, equal: (active: Entry, passive: Entry) => boolean): boolean {
    if (!this.explicit.hasRoot(root)) return false;
    if (this.held !== undefined && this.convergeHeld(root, path, equal)) return true;
    this.release();
    const a = this.active.get(root, path);
    const s = this.explicit.get(root, path);
    if (a === undefined || s === undefined || a.kind === 'dir' || s.kind === 'dir' || a.kind !== s.kind) return false;
    // One name on the active: a record on another name of its inode changes it there too.
    if (a.kind === 'file' && ((a.nlink ?? 1) > 1 || (a.ino !== 0 && this.active.pathsForIno(root, a.ino).length > 1))) return false;
    if (s.kind === 'file' && s.ino !== 0 && this.explicit.pathsForIno(root, s.ino).length > 1) return false;
    if (!equal(a, s)) return false;
    this.explicit.delete(root, path);
    let set = this.converged.get(root);
    if (set === undefined) this.converged.set(root, (set = new Set()));
    set.add(path);
    return true;
  }

  /** Files converged from their held records, never set here (tests). */
  get convergedUnset(): number {
    return this.heldConverged;
  }

  /** Record `r` was journaled: the passive will apply it. */
  apply(r: DataRecord): void {
    if (r.op === 'sync-begin' || r.op === 'sync-end') return;
    const h = this.held;
    if (h !== undefined && h.meta === undefined && r.root === h.root && r.path === h.path && (r.op === 'write' || r.op === 'meta')) {
      if (r.op === 'write') h.writes.push(r);
      else h.meta = r;
      return;
    }
    this.release();
    const set = this.converged.get(r.root);
    if (set !== undefined && set.size > 0) {
      // Every path the record reads or changes and, unless it only sets a directory's or a
      // file's metadata, every one below it (it may remove, move or replace a directory), as
      // the active's manifest has them before the record.
      this.restore(r.root, set, r.path, r.op !== 'mkdir' && r.op !== 'meta');
      if (r.op === 'rename') this.restore(r.root, set, r.to, true);
      if (r.op === 'hardlink') this.restore(r.root, set, r.target, false);
    }
    // A file record for a path the passive will not hold before it (and not read from the
    // active's manifest): its records are held until the path converges or anything else comes.
    if (r.op === 'file' && this.explicit.hasRoot(r.root) && this.explicit.get(r.root, r.path) === undefined && set?.has(r.path) !== true) {
      this.held = { root: r.root, path: r.path, file: r, writes: [] };
      return;
    }
    applyRecordToManifest(this.explicit, r, this.blockSize);
  }

  /**
   * converge() for the held file's path: the entry its records make, compared without setting
   * it. False (nothing changed) when the records are not a whole new file or the entry is not
   * equal: the caller then releases them and compares as before.
   */
  private convergeHeld(root: string, path: string, equal: (active: Entry, passive: Entry) => boolean): boolean {
    const h = this.held!;
    if (h.root !== root || h.path !== path || h.meta === undefined) return false;
    const a = this.active.get(root, path);
    // The same conditions as converge()'s for a file (the held entry has no inode number).
    if (a?.kind !== 'file' || (a.nlink ?? 1) > 1 || (a.ino !== 0 && this.active.pathsForIno(root, a.ino).length > 1)) return false;
    const e = newFileEntry(h.file, h.writes, h.meta, this.blockSize);
    // `equal` may read this shadow (linkView): the path is then absent, which reads as the held
    // entry does for links (no inode number, no other names). Whatever it does, the records are
    // held again unless the path converged.
    this.held = undefined;
    let same = false;
    try {
      same = equal(a, e);
    } finally {
      if (!same) this.held = h;
    }
    if (!same) return false;
    let set = this.converged.get(root);
    if (set === undefined) this.converged.set(root, (set = new Set()));
    set.add(path);
    this.heldConverged++;
    return true;
  }

  /** Applies the held records, if any, one by one as they came. */
  private release(): void {
    const h = this.held;
    if (h === undefined) return;
    this.held = undefined;
    applyRecordToManifest(this.explicit, h.file, this.blockSize);
    for (const w of h.writes) applyRecordToManifest(this.explicit, w, this.blockSize);
    if (h.meta !== undefined) applyRecordToManifest(this.explicit, h.meta, this.blockSize);
  }

  /** Copies `path` (and, with `subtree`, every converged path below it) back from the active's manifest. */
  private restore(root: string, set: Set<string>, path: string, subtree: boolean): void {
    if (set.delete(path)) {
      const e = this.active.get(root, path);
      if (e !== undefined) this.explicit.set(root, path, copyEntry(e));
    }
    if (!subtree) return;
    // The active's manifest holds every converged path (each one's records change it the same
    // way), so the names below `path` in it find them all: by its index of children, whatever
    // stands at `path` itself.
    const stack = [path];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      for (const c of this.active.childrenOf(root, dir)) {
        stack.push(c);
        const e = this.active.get(root, c);
        if (set.delete(c) && e !== undefined) this.explicit.set(root, c, copyEntry(e));
      }
    }
  }
}

/**
 * A copy the shadow may change in place (a write record sets a block hash in its buffer). Its
 * inode number is the active's, which means nothing here: the shadow's numbers are the
 * passive's (or made up for links records made), and a match would make two unrelated paths
 * one file's names. None, as for an entry a record made.
 */
function copyEntry(e: Entry): Entry {
  return e.kind === 'file' ? { ...e, ino: 0, blocks: Buffer.from(e.blocks) } : { ...e, ino: 0 };
}
