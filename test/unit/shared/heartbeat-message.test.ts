// The heartbeat's echo comes from the peer: a malformed one is refused like any bad field,
// and a heartbeat without one (an older agent) is still valid.
import { describe, expect, it } from 'vitest';
import { messageProblem } from '../../../shared/protocol/messages.ts';

const hb = { t: 'hb', seq: 7, role: 'active', epoch: 2, serving: true, publicState: 'ok', inSync: true };

describe('heartbeat message', () => {
  it('accepts a heartbeat with or without an echo', () => {
    expect(messageProblem(hb)).toBeUndefined();
    expect(messageProblem({ ...hb, echo: { seq: 6, heldUs: 1500 } })).toBeUndefined();
  });

  it('refuses an echo that is not two whole non-negative numbers', () => {
    for (const echo of [null, 5, 'x', {}, { seq: -1, heldUs: 0 }, { seq: 1, heldUs: 1.5 }, { seq: 1 }, { seq: 1, heldUs: Number.MAX_VALUE }]) {
      expect(messageProblem({ ...hb, echo }), JSON.stringify(echo)).toBe('hb: bad echo');
    }
  });

  it("accepts an active's unsent age as a whole non-negative number, and refuses anything else", () => {
    expect(messageProblem({ ...hb, unsentMs: 0 })).toBeUndefined();
    expect(messageProblem({ ...hb, unsentMs: 8_000 })).toBeUndefined();
    for (const unsentMs of [null, -1, 1.5, 'x', Number.MAX_VALUE]) {
      expect(messageProblem({ ...hb, unsentMs }), JSON.stringify(unsentMs)).toBe('hb: bad unsentMs');
    }
  });
});
