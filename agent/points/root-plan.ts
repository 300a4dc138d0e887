// What each protected root of this node gets: consistency points (snapshot mode) or file-level
// consistency, with the reason, and where its snapshots go. Made when an engine starts, so that
// status on either role says what capture does (or would do after a takeover).
import fs from 'node:fs';
import type { ProtectedRoot } from '../../shared/config/index.ts';
import { TandemError } from '../../shared/errors.ts';
import { BTRFS_MAGIC, SUBVOLUME_ROOT_INO, decideConsistency, defaultPointsDir, gatherRootFacts, type ConsistencyVerdict } from './consistency-mode.ts';
import { preparePointsDir } from './snapshot-store.ts';

export interface RootPlan {
  name: string;
  /** The root's real path (its snapshots are of this subvolume). */
  real: string;
  /** Where its snapshots go (beside the root, on the same file system). */
  pointsDir: string;
  verdict: ConsistencyVerdict;
}

/** The consistency of each root, preparing the points directory of those that can have points. */
export function planRoots(roots: readonly ProtectedRoot[]): RootPlan[] {
  return roots.map((r) => {
    let real = r.path;
    try {
      real = fs.realpathSync(r.path);
    } catch {
      // missing: the verdict says why it cannot have points; capture reports it at start
    }
    const pointsDir = defaultPointsDir(real);
    const setting = r.consistency ?? 'auto';
    let problem: string | undefined;
    // Only a root that could have points gets a points directory made beside it.
    if (setting !== 'file') {
      try {
        if (fs.statfsSync(real).type === BTRFS_MAGIC && fs.statSync(real).ino === SUBVOLUME_ROOT_INO) problem = preparePointsDir(pointsDir);
      } catch {
        // unreadable root: gatherRootFacts says so
      }
    }
    return { name: r.name, real, pointsDir, verdict: decideConsistency(setting, gatherRootFacts(real, problem)) };
  });
}

/** Throws TANDEM_ERR_POINTS_UNSUPPORTED for a root set to `snapshot` that cannot have points. */
export function refuseUnsupported(plans: readonly RootPlan[]): void {
  const bad = plans.filter((p) => p.verdict.refused !== undefined);
  if (bad.length === 0) return;
  throw new TandemError({
    code: 'TANDEM_ERR_POINTS_UNSUPPORTED',
    op: 'start capture',
    reason: bad.map((p) => `protected root ${p.name} is set to consistency: snapshot, but ${p.verdict.refused}`).join('; '),
    hint: 'make the root a btrfs subvolume (btrfs subvolume create), install btrfs-progs and run the agent as root, or set consistency: auto (docs/replication.md, "Consistency points")',
    details: { roots: bad.map((p) => p.name) },
  });
}
