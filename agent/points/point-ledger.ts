// The consistency points a node knows of, by position in the log: point N is the state of the
// protected trees after record N, which the active's disk really had at instant `at`. Both nodes
// keep one: the active records each point it closes and, when nothing changed since, claims a
// later instant for the same point; the passive learns both from the batches and from the
// active's peer-state. The recovery point objective is then one subtraction: now minus the
// instant of the newest point a node holds. Pure.

export interface PointInfo {
  /** The sequence of the point's last record. */
  id: number;
  /** The latest instant (wall-clock ms) at which the active's disk was known to be this point. */
  at: number;
}

/** Points kept at most: the oldest go first (only the newest at or below an ack matters). */
const MAX_POINTS = 4096;

export class PointLedger {
  private readonly points: PointInfo[] = [];
  /** A claim for a point not recorded yet (its batch is still on the way). */
  private pendingClaim: PointInfo | undefined;

  /** A point closed after record `id`, an instant of the active's disk at `at`. */
  record(id: number, at: number): void {
    const last = this.points[this.points.length - 1];
    if (last !== undefined && id <= last.id) {
      // The same point again (a batch sent twice after a reconnect): only its instant may move on.
      if (id === last.id) last.at = Math.max(last.at, at);
      return;
    }
    this.points.push({ id, at });
    if (this.points.length > MAX_POINTS) this.points.shift();
    const c = this.pendingClaim;
    if (c !== undefined && c.id <= id) {
      if (c.id === id) this.claim(id, c.at);
      this.pendingClaim = undefined;
    }
  }

  /** Point `id` was still the active's state at `at` (nothing changed since it closed). */
  claim(id: number, at: number): void {
    const p = this.points.find((x) => x.id === id);
    if (p === undefined) {
      const last = this.points[this.points.length - 1];
      if (last === undefined || id > last.id) this.pendingClaim = { id, at: Math.max(at, this.pendingClaim?.id === id ? this.pendingClaim.at : 0) };
      return;
    }
    p.at = Math.max(p.at, at);
  }

  /** The newest point at or below record `seq` (what a node holding up to `seq` holds). */
  heldAt(seq: number): PointInfo | undefined {
    for (let i = this.points.length - 1; i >= 0; i--) {
      const p = this.points[i]!;
      if (p.id <= seq) return { ...p };
    }
    return undefined;
  }

  newest(): PointInfo | undefined {
    const p = this.points[this.points.length - 1];
    return p === undefined ? undefined : { ...p };
  }

  /** Forgets the points older than the newest one at or below `seq`. */
  trim(seq: number): void {
    let keep = 0;
    for (let i = this.points.length - 1; i >= 0; i--) {
      if (this.points[i]!.id <= seq) {
        keep = i;
        break;
      }
    }
    if (keep > 0) this.points.splice(0, keep);
  }
}
