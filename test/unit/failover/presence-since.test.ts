// How long the peer counts as gone: from its last signed answer, not from the probe that
// first noticed (the probe interval must not add to the failover time).
import { describe, expect, it } from 'vitest';
import { presenceSince } from '../../../agent/failover/failover-runner.ts';

describe('presence outage start', () => {
  it('counts a gone peer from its last answer, and anything else from the verdict itself', () => {
    expect(presenceSince('dead', 10_450, 10_000)).toBe(10_000);
    expect(presenceSince('unreachable', 10_450, 10_000)).toBe(10_000);
    // Never answered since this agent started: from the verdict.
    expect(presenceSince('dead', 10_450, undefined)).toBe(10_450);
    // Not gone: the verdict's own start (a stalled peer is never counted as gone).
    expect(presenceSince('stalled', 10_450, 10_000)).toBe(10_450);
    expect(presenceSince('alive', 10_450, 10_400)).toBe(10_450);
  });
});
