import { describe, expect, it } from 'vitest';
import { catchUpLeft, nextCatchUp, type CatchUpObservation } from '../../../agent/replication/catch-up.ts';

const obs = (o: Partial<CatchUpObservation>): CatchUpObservation => ({
  connected: true,
  syncing: false,
  ackedSeq: 100,
  headSeq: 100,
  journalBytesLeft: 0,
  capturePending: 0,
  captureWaitingForSpace: false,
  ...o,
});

describe('when a passive is catching up', () => {
  it('begins when a passive resumes behind the head, and ends once it acknowledged that head', () => {
    let s = nextCatchUp(undefined, obs({ ackedSeq: 40, headSeq: 100, journalBytesLeft: 6000 }), true);
    expect(s).toEqual({ targetSeq: 100, backlog: false });
    // New changes keep coming: the target stays where the passive came back, so it ends under load.
    s = nextCatchUp(s, obs({ ackedSeq: 99, headSeq: 130 }));
    expect(s).toEqual({ targetSeq: 100, backlog: false });
    expect(nextCatchUp(s, obs({ ackedSeq: 100, headSeq: 140 }))).toBeUndefined();
  });

  it('is no catch-up when the passive comes back with everything', () => {
    expect(nextCatchUp(undefined, obs({}), true)).toBeUndefined();
    expect(nextCatchUp(undefined, obs({ ackedSeq: 90 }))).toBeUndefined(); // ordinary lag, not a resume
  });

  it('lasts while capture journals what a full journal held back, whatever the passive acknowledged', () => {
    let s = nextCatchUp(undefined, obs({ ackedSeq: 10, headSeq: 100, capturePending: 900, captureWaitingForSpace: true }), true);
    expect(s).toEqual({ targetSeq: 100, backlog: true });
    s = nextCatchUp(s, obs({ ackedSeq: 100, headSeq: 100, capturePending: 500 }));
    expect(s).toEqual({ targetSeq: 100, backlog: true });
    s = nextCatchUp(s, obs({ ackedSeq: 150, headSeq: 220, capturePending: 0 }));
    expect(s).toEqual({ targetSeq: 220, backlog: false });
    expect(nextCatchUp(s, obs({ ackedSeq: 220, headSeq: 230 }))).toBeUndefined();
  });

  it('ends with the connection, and gives way to a synchronisation', () => {
    const s = { targetSeq: 100, backlog: true };
    expect(nextCatchUp(s, obs({ connected: false, ackedSeq: 5 }))).toBeUndefined();
    expect(nextCatchUp(s, obs({ syncing: true, ackedSeq: 5 }))).toBeUndefined();
  });

  it('reports the bytes journaled and not acknowledged, and the paths not yet journaled', () => {
    expect(catchUpLeft(obs({ journalBytesLeft: 4096, capturePending: 7 }))).toEqual({ bytesLeft: 4096, pathsLeft: 7 });
  });
});
