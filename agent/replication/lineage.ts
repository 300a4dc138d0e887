// Generation histories (DRBD's generation identifiers, with sequence numbers): where two
// nodes' data last agreed and what each changed since. Pure: the start decision and the
// split-brain policies read it, nothing here touches a file or a socket.
//
// A node's line is its current generation (up to its head) followed by the generations it
// continues, each up to the sequence where the next one forked from it. Sequences run on
// across a fork (a promotion's journal starts after the sequence it forked at), so along one
// line "records since sequence c" is simply head − c.

export interface LineageEntry {
  generation: string;
  /** The last sequence of `generation` the next generation of this line started from. */
  forkSeq: number;
}

export interface Position {
  generation: string;
  /** Active: last journaled sequence. Passive: last sequence it holds. */
  headSeq: number;
  /** The generations this one continues, newest first (history[0] is the parent). */
  history: readonly LineageEntry[];
}

export type Relation =
  | { kind: 'same' }
  /** Both lines pass through `generation`; they agree up to `commonSeq` of it. */
  | { kind: 'related'; generation: string; commonSeq: number; activeChanges: number; passiveChanges: number }
  /** No generation in common (a node cloned from another pair, or history longer than kept). */
  | { kind: 'unrelated' };

/** How many ancestors a node keeps: each role change adds one. */
export const MAX_HISTORY = 32;

function line(p: Position): Map<string, number> {
  const m = new Map<string, number>([[p.generation, p.headSeq]]);
  for (const h of p.history) if (!m.has(h.generation)) m.set(h.generation, h.forkSeq);
  return m;
}

export function relate(active: Position, passive: Position): Relation {
  if (active.generation === passive.generation) return { kind: 'same' };
  const passiveLine = line(passive);
  // The newest generation of the active's line the passive's line also passes through.
  for (const [generation, activeEnd] of line(active)) {
    const passiveEnd = passiveLine.get(generation);
    if (passiveEnd === undefined) continue;
    const commonSeq = Math.min(activeEnd, passiveEnd);
    return {
      kind: 'related',
      generation,
      commonSeq,
      activeChanges: Math.max(0, active.headSeq - commonSeq),
      passiveChanges: Math.max(0, passive.headSeq - commonSeq),
    };
  }
  return { kind: 'unrelated' };
}

/** The history of a generation forked from `parent` at `forkSeq`: the parent first, bounded. */
export function forkHistory(parent: Pick<Position, 'generation' | 'history'>, forkSeq: number): LineageEntry[] {
  return [{ generation: parent.generation, forkSeq }, ...parent.history].slice(0, MAX_HISTORY);
}

/**
 * Automatic split-brain policies (DRBD's after-sb), tried in the configured order; the first
 * that can tell which side to keep decides. Off unless configured, except `zero-changes`.
 * - `zero-changes`: a side that changed nothing since the split loses nothing: keep the other.
 * - `younger-active` / `older-active`: discard the side that was active last / first.
 * - `least-changes`: discard the side with fewer records since the split.
 */
export type SplitBrainPolicy = 'zero-changes' | 'younger-active' | 'older-active' | 'least-changes';
export const SPLIT_BRAIN_POLICIES: readonly SplitBrainPolicy[] = ['zero-changes', 'younger-active', 'older-active', 'least-changes'];

export interface SplitBrainFacts {
  activeChanges: number;
  passiveChanges: number;
  /** The last epoch in which each side was active. */
  activeEpoch: number;
  passiveActiveEpoch: number;
}

export function autoKeep(policies: readonly SplitBrainPolicy[], f: SplitBrainFacts): { keep: 'active' | 'passive'; policy: SplitBrainPolicy } | undefined {
  for (const policy of policies) {
    let keep: 'active' | 'passive' | undefined;
    switch (policy) {
      case 'zero-changes':
        keep = f.passiveChanges === 0 ? 'active' : f.activeChanges === 0 ? 'passive' : undefined;
        break;
      case 'younger-active':
        keep = f.activeEpoch === f.passiveActiveEpoch ? undefined : f.activeEpoch > f.passiveActiveEpoch ? 'passive' : 'active';
        break;
      case 'older-active':
        keep = f.activeEpoch === f.passiveActiveEpoch ? undefined : f.activeEpoch > f.passiveActiveEpoch ? 'active' : 'passive';
        break;
      case 'least-changes':
        keep = f.activeChanges === f.passiveChanges ? undefined : f.activeChanges > f.passiveChanges ? 'active' : 'passive';
        break;
    }
    if (keep !== undefined) return { keep, policy };
  }
  return undefined;
}
