// The active's start decisions (sync or resume) for each connection of the passive, split at the
// first synchronisation that completed. Before it, both nodes dialling at once can decide a
// synchronisation more than once (the second connection replaces the first before anything was
// sent); after it, every reconnection must resume, whatever was killed.
import type { NodeName, TestPair } from './pair.ts';

type Line = ReturnType<TestPair['logLines']>[number];

export interface StartDecisions {
  /** Decisions until the first synchronisation completed (all of them 'sync'). */
  untilSynced: Line[];
  /** Decisions after it (each 'resume' unless something forced a new synchronisation). */
  afterSynced: Line[];
}

export function startDecisions(p: TestPair, node: NodeName = 'alpha'): StartDecisions {
  const lines = p.logLines(node);
  const synced = lines.findIndex((l) => l.component === 'sender' && l.msg === 'sync: complete, passive in sync');
  const isDecision = (l: Line) => l.component === 'sender' && l.decision !== undefined;
  if (synced < 0) return { untilSynced: lines.filter(isDecision), afterSynced: [] };
  return { untilSynced: lines.slice(0, synced).filter(isDecision), afterSynced: lines.slice(synced).filter(isDecision) };
}

/** A decision as a failure should show it: the kind, why, and what each side held. */
export function describeDecision(l: Line): string {
  return `${l.decision.kind}:${l.decision.reason ?? ''} peer head ${l.peerHeadSeq} applied ${l.peerAppliedSeq}, journal ${l.firstSeq}-${l.headSeq}`;
}
