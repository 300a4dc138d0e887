import { describe, expect, it } from 'vitest';
import { autoKeep } from '../../../agent/replication/lineage.ts';
import { decideStart, type ActiveView, type PassiveView } from '../../../agent/replication/index.ts';

const active: ActiveView = { generation: 'g1', headSeq: 500, firstSeq: 100, syncId: undefined, history: [] };
const passive = (p: Partial<PassiveView>): PassiveView => ({ generation: 'g1', headSeq: 300, syncId: '', history: [], ...p });

describe('where the active resumes a passive', () => {
  it('resumes right after the passive\'s last durable record when the journal still has it', () => {
    expect(decideStart(active, passive({}))).toEqual({ kind: 'resume', fromSeq: 301 });
    expect(decideStart(active, passive({ headSeq: 99 }))).toEqual({ kind: 'resume', fromSeq: 100 });
    expect(decideStart(active, passive({ headSeq: 500 }))).toEqual({ kind: 'resume', fromSeq: 501 });
  });

  it('synchronises a passive that is behind beyond the journal', () => {
    expect(decideStart(active, passive({ headSeq: 98 }))).toEqual({ kind: 'sync', reason: 'behind-journal' });
  });

  it('synchronises an empty passive and one of another generation', () => {
    expect(decideStart(active, passive({ generation: '' }))).toEqual({ kind: 'sync', reason: 'empty' });
    expect(decideStart(active, passive({ generation: 'g0' }))).toEqual({ kind: 'sync', reason: 'generation' });
  });

  it('never resumes a passive that holds records this journal never committed', () => {
    expect(decideStart(active, passive({ headSeq: 501 }))).toEqual({ kind: 'sync', reason: 'ahead' });
  });

  it('resumes a synchronisation this active still drives, and restarts any other', () => {
    const syncing = { ...active, syncId: 's1' };
    expect(decideStart(syncing, passive({ syncId: 's1', headSeq: 420 }))).toEqual({ kind: 'resume', fromSeq: 421 });
    expect(decideStart(active, passive({ syncId: 's1', headSeq: 420 }))).toEqual({ kind: 'sync', reason: 'sync-restart' });
    expect(decideStart(syncing, passive({ syncId: 's0', headSeq: 420 }))).toEqual({ kind: 'sync', reason: 'sync-restart' });
  });

  it('resumes across a role change a passive that stands exactly where the new generation forked from its own', () => {
    // g2 began (a promotion) after seq 300 of g1; its journal starts at 301.
    const forked: ActiveView = { generation: 'g2', headSeq: 350, firstSeq: 301, syncId: undefined, history: [{ generation: 'g1', forkSeq: 300 }] };
    expect(decideStart(forked, passive({ generation: 'g1', headSeq: 300 }))).toEqual({ kind: 'resume', fromSeq: 301, fork: true });
    // Short of it: a state of this line, caught up from the manifests.
    expect(decideStart(forked, passive({ generation: 'g1', headSeq: 299 }))).toEqual({ kind: 'sync', reason: 'behind-fork' });
    // Of another lineage, or mid-synchronisation: no shared state to resume from.
    expect(decideStart(forked, passive({ generation: 'g0', headSeq: 300 }))).toEqual({ kind: 'sync', reason: 'generation' });
    expect(decideStart(forked, passive({ generation: 'g1', headSeq: 300, syncId: 's1' }))).toEqual({ kind: 'sync', reason: 'sync-restart' });
    // The journal no longer holds the records after the fork.
    expect(decideStart({ ...forked, firstSeq: 320 }, passive({ generation: 'g1', headSeq: 300 }))).toEqual({ kind: 'sync', reason: 'behind-fork' });
  });

  it('stops at a split brain: both sides changed since the fork; the passive\'s changes go only when it agreed to discard them', () => {
    const forked: ActiveView = { generation: 'g2', headSeq: 350, firstSeq: 301, syncId: undefined, history: [{ generation: 'g1', forkSeq: 300 }] };
    // The old active journaled 5 records past the fork that never reached the new active.
    expect(decideStart(forked, passive({ generation: 'g1', headSeq: 305 }))).toEqual({
      kind: 'split-brain',
      relation: { kind: 'related', generation: 'g1', commonSeq: 300, activeChanges: 50, passiveChanges: 5 },
    });
    expect(decideStart(forked, passive({ generation: 'g1', headSeq: 305, discard: true }))).toEqual({ kind: 'sync', reason: 'discard' });
    // The passive on a newer line than the active (it was active later, then stepped down).
    const old: ActiveView = { generation: 'g1', headSeq: 320, firstSeq: 1, syncId: undefined, history: [] };
    expect(decideStart(old, passive({ generation: 'g2', headSeq: 340, history: [{ generation: 'g1', forkSeq: 300 }] }))).toMatchObject({
      kind: 'split-brain',
      relation: { commonSeq: 300, activeChanges: 20, passiveChanges: 40 },
    });
  });

  it('finds where two lines agreed through several role changes', () => {
    // g1 → (fork at 100) g2 → (fork at 200) g3 on the active; the passive stayed on g1 up to 100.
    const deep: ActiveView = { generation: 'g3', headSeq: 260, firstSeq: 201, syncId: undefined, history: [{ generation: 'g2', forkSeq: 200 }, { generation: 'g1', forkSeq: 100 }] };
    expect(decideStart(deep, passive({ generation: 'g1', headSeq: 100 }))).toEqual({ kind: 'sync', reason: 'behind-fork' });
    expect(decideStart(deep, passive({ generation: 'g1', headSeq: 120 }))).toMatchObject({ kind: 'split-brain', relation: { generation: 'g1', commonSeq: 100, activeChanges: 160, passiveChanges: 20 } });
    // A passive that followed into g2 and stopped there at 180 holds a state of this line.
    expect(decideStart(deep, passive({ generation: 'g2', headSeq: 180, history: [{ generation: 'g1', forkSeq: 100 }] }))).toEqual({ kind: 'sync', reason: 'behind-fork' });
  });
});

describe('automatic split-brain policies', () => {
  const facts = { activeChanges: 10, passiveChanges: 4, activeEpoch: 3, passiveActiveEpoch: 2 };
  it('keeps the side with changes when the other has none, and nothing else by default', () => {
    expect(autoKeep(['zero-changes'], { ...facts, activeChanges: 0 })).toEqual({ keep: 'passive', policy: 'zero-changes' });
    expect(autoKeep(['zero-changes'], facts)).toBeUndefined();
    expect(autoKeep([], { ...facts, activeChanges: 0 })).toBeUndefined();
  });
  it('applies the configured policies in order', () => {
    expect(autoKeep(['zero-changes', 'younger-active'], facts)).toEqual({ keep: 'passive', policy: 'younger-active' });
    expect(autoKeep(['older-active'], facts)).toEqual({ keep: 'active', policy: 'older-active' });
    expect(autoKeep(['least-changes'], facts)).toEqual({ keep: 'active', policy: 'least-changes' });
    expect(autoKeep(['least-changes', 'older-active'], { ...facts, passiveChanges: 10 })).toEqual({ keep: 'active', policy: 'older-active' });
    expect(autoKeep(['younger-active'], { ...facts, passiveActiveEpoch: 3 })).toBeUndefined();
  });
});
