// Where the active resumes a passive that just connected: a pure function of what each side
// holds. Resuming is only safe when the passive's last durable record is one this journal
// still has and it really followed this journal. A passive on a line that forked from this
// one is caught up from where the two last agreed (a synchronisation, which compares
// manifests and sends only differences) unless it has changes of its own: then both sides
// changed since they split, and nothing is sent until the split brain is resolved.
import type { HelloMessage } from '../../shared/protocol/index.ts';
import { relate, type LineageEntry, type Relation } from './lineage.ts';

export interface ActiveView {
  generation: string;
  /** Last committed sequence of the journal. */
  headSeq: number;
  /** Oldest sequence the journal can still send (headSeq + 1 when it holds nothing). */
  firstSeq: number;
  /** Id of the synchronisation this active is running or finishing, if any. */
  syncId: string | undefined;
  /** The generations this one continues, newest first (agent/state NodeState.history). */
  history: readonly LineageEntry[];
}

export type PassiveView = Pick<HelloMessage, 'generation' | 'headSeq' | 'syncId' | 'history' | 'discard'>;

export type StartDecision =
  /** `fork`: the passive is exactly where this generation began in its parent: it follows on. */
  | { kind: 'resume'; fromSeq: number; fork?: boolean }
  | { kind: 'sync'; reason: 'empty' | 'generation' | 'behind-journal' | 'ahead' | 'sync-restart' | 'behind-fork' | 'discard' }
  /** Each side has records the other lacks since they last agreed. */
  | { kind: 'split-brain'; relation: Extract<Relation, { kind: 'related' }> };

export function decideStart(active: ActiveView, passive: PassiveView): StartDecision {
  if (passive.syncId !== '') {
    // A synchronisation this active still drives continues from the journal; any other one
    // (this active restarted, or another active started it) starts over from the manifests.
    if (passive.syncId === active.syncId && passive.headSeq + 1 >= active.firstSeq && passive.headSeq <= active.headSeq) {
      return { kind: 'resume', fromSeq: passive.headSeq + 1 };
    }
    return { kind: 'sync', reason: 'sync-restart' };
  }
  if (passive.generation === '') return { kind: 'sync', reason: 'empty' };
  const relation = relate(active, { generation: passive.generation, headSeq: passive.headSeq, history: passive.history ?? [] });
  if (relation.kind === 'related') {
    if (relation.passiveChanges > 0) {
      // The passive holds records this line never had. Discarding them needs the operator's
      // word (tandem resolve) or a configured policy, which the passive's hello carries.
      return passive.discard === true ? { kind: 'sync', reason: 'discard' } : { kind: 'split-brain', relation };
    }
    // The passive holds a state of this line. Exactly at this generation's fork point (the
    // old active after a drained switchover, or a passive that had everything) it follows on.
    const parent = active.history[0];
    if (parent !== undefined && relation.generation === parent.generation && passive.headSeq === parent.forkSeq && parent.forkSeq <= active.headSeq && parent.forkSeq + 1 >= active.firstSeq) {
      return { kind: 'resume', fromSeq: parent.forkSeq + 1, fork: true };
    }
    return { kind: 'sync', reason: 'behind-fork' };
  }
  if (relation.kind === 'unrelated') return { kind: 'sync', reason: 'generation' };
  // The passive holds records this journal never committed (the active lost its journal's
  // tail, or was restored from an older copy): its tree is not a state this journal describes.
  if (passive.headSeq > active.headSeq) return { kind: 'sync', reason: 'ahead' };
  if (passive.headSeq + 1 < active.firstSeq) return { kind: 'sync', reason: 'behind-journal' };
  return { kind: 'resume', fromSeq: passive.headSeq + 1 };
}
