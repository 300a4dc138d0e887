// When a passive is catching up, seen from the active: a pure function of what the sender and
// capture hold, so the passive (and the operator) can be told "not in sync, this much left" for
// the whole of it. A catch-up begins when a passive resumes behind the journal's head, or when
// capture is held back because the journal is full (the changes it holds back are part of what
// the passive lacks); it ends once the passive acknowledged everything journaled and capture
// has nothing pending. A full synchronisation reports its own progress instead.

export interface CatchUpObservation {
  /** A passive is attached and streaming. */
  connected: boolean;
  /** A synchronisation (manifest comparison) runs: its progress is reported instead. */
  syncing: boolean;
  ackedSeq: number;
  headSeq: number;
  /** Bytes journaled and not yet acknowledged by the passive. */
  journalBytesLeft: number;
  /** Paths capture has seen changed and not yet journaled. */
  capturePending: number;
  /** Capture waits for the passive to acknowledge before it may journal more. */
  captureWaitingForSpace: boolean;
}

export interface CatchUp {
  bytesLeft: number;
  pathsLeft: number;
}

/** A catch-up in progress: done once the passive acknowledged `targetSeq` and no backlog is left. */
export interface CatchUpState {
  targetSeq: number;
  /** Capture was held back by a full journal and has not yet journaled what it held. */
  backlog: boolean;
}

/**
 * The catch-up after `obs`, from the one before it (undefined: none ran). `resumedBehind`: this
 * observation starts a session that resumed before the journal's head. The target is the head
 * when the passive came back (or when capture last held changes back), not the head of the
 * moment: under a steady load the passive is always a little behind, and that is replication,
 * not a catch-up that never ends.
 */
export function nextCatchUp(prev: CatchUpState | undefined, obs: CatchUpObservation, resumedBehind = false): CatchUpState | undefined {
  if (!obs.connected || obs.syncing) return undefined;
  let s = prev;
  if (resumedBehind && obs.ackedSeq < obs.headSeq) s = { targetSeq: Math.max(s?.targetSeq ?? 0, obs.headSeq), backlog: s?.backlog ?? false };
  if (obs.captureWaitingForSpace) s = { targetSeq: obs.headSeq, backlog: true };
  if (s === undefined) return undefined;
  // What capture held back is journaled after the target: follow the head until it is all in.
  if (s.backlog) s = obs.capturePending > 0 ? { targetSeq: Math.max(s.targetSeq, obs.headSeq), backlog: true } : { targetSeq: Math.max(s.targetSeq, obs.headSeq), backlog: false };
  return s.backlog || obs.ackedSeq < s.targetSeq ? s : undefined;
}

/** What is left of a catch-up, as reported in status and to the passive. */
export function catchUpLeft(obs: CatchUpObservation): CatchUp {
  return { bytesLeft: obs.journalBytesLeft, pathsLeft: obs.capturePending };
}
