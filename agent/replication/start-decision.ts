// Where the active resumes a passive that just connected: a pure function of what each side
// holds. Resuming is only safe when the passive's last durable record is one this journal
// still has and it really followed this journal; anything else is an initial synchronisation,
// which compares manifests and sends only differences.
import type { HelloMessage } from '../../shared/protocol/index.ts';

export interface ActiveView {
  generation: string;
  /** Last committed sequence of the journal. */
  headSeq: number;
  /** Oldest sequence the journal can still send (headSeq + 1 when it holds nothing). */
  firstSeq: number;
  /** Id of the synchronisation this active is running or finishing, if any. */
  syncId: string | undefined;
  /** The generation this one continues, and the last sequence of it this one started from. */
  parent?: { generation: string; forkSeq: number } | undefined;
}

export type StartDecision =
  /** `fork`: the passive is exactly where this generation began in its parent: it follows on. */
  | { kind: 'resume'; fromSeq: number; fork?: boolean }
  | { kind: 'sync'; reason: 'empty' | 'generation' | 'behind-journal' | 'ahead' | 'sync-restart' };

export function decideStart(active: ActiveView, passive: Pick<HelloMessage, 'generation' | 'headSeq' | 'syncId'>): StartDecision {
  if (passive.syncId !== '') {
    // A synchronisation this active still drives continues from the journal; any other one
    // (this active restarted, or another active started it) starts over from the manifests.
    if (passive.syncId === active.syncId && passive.headSeq + 1 >= active.firstSeq && passive.headSeq <= active.headSeq) {
      return { kind: 'resume', fromSeq: passive.headSeq + 1 };
    }
    return { kind: 'sync', reason: 'sync-restart' };
  }
  if (passive.generation === '') return { kind: 'sync', reason: 'empty' };
  // A role change forked this generation from the passive's at forkSeq. A passive that holds
  // exactly that point (the old active after a drained switchover, or a passive that had
  // everything) holds a state of this generation too; one past it has changes this active lacks.
  const p = active.parent;
  if (passive.generation === p?.generation && passive.headSeq === p.forkSeq && p.forkSeq <= active.headSeq && p.forkSeq + 1 >= active.firstSeq) {
    return { kind: 'resume', fromSeq: p.forkSeq + 1, fork: true };
  }
  if (passive.generation !== active.generation) return { kind: 'sync', reason: 'generation' };
  // The passive holds records this journal never committed (the active lost its journal's
  // tail, or was restored from an older copy): its tree is not a state this journal describes.
  if (passive.headSeq > active.headSeq) return { kind: 'sync', reason: 'ahead' };
  if (passive.headSeq + 1 < active.firstSeq) return { kind: 'sync', reason: 'behind-journal' };
  return { kind: 'resume', fromSeq: passive.headSeq + 1 };
}
