import { describe, expect, it } from 'vitest';
import { decideStart, type ActiveView } from '../../../agent/replication/index.ts';

const active: ActiveView = { generation: 'g1', headSeq: 500, firstSeq: 100, syncId: undefined };
const passive = (p: Partial<{ generation: string; headSeq: number; syncId: string }>) => ({ generation: 'g1', headSeq: 300, syncId: '', ...p });

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
    const forked: ActiveView = { generation: 'g2', headSeq: 350, firstSeq: 301, syncId: undefined, parent: { generation: 'g1', forkSeq: 300 } };
    expect(decideStart(forked, passive({ generation: 'g1', headSeq: 300 }))).toEqual({ kind: 'resume', fromSeq: 301, fork: true });
    // Past the fork: it has changes this active never had (an old active's unreplicated writes).
    expect(decideStart(forked, passive({ generation: 'g1', headSeq: 305 }))).toEqual({ kind: 'sync', reason: 'generation' });
    // Short of it, or of another lineage, or mid-synchronisation: no shared state to resume from.
    expect(decideStart(forked, passive({ generation: 'g1', headSeq: 299 }))).toEqual({ kind: 'sync', reason: 'generation' });
    expect(decideStart(forked, passive({ generation: 'g0', headSeq: 300 }))).toEqual({ kind: 'sync', reason: 'generation' });
    expect(decideStart(forked, passive({ generation: 'g1', headSeq: 300, syncId: 's1' }))).toEqual({ kind: 'sync', reason: 'sync-restart' });
    // The journal no longer holds the records after the fork.
    expect(decideStart({ ...forked, firstSeq: 320 }, passive({ generation: 'g1', headSeq: 300 }))).toEqual({ kind: 'sync', reason: 'generation' });
  });
});
