// Every row of DESIGN.md's decision matrix, and the rules around it, with time passed in
// explicitly (the decision never reads a clock).
import { describe, expect, it } from 'vitest';
import { initialState, step, type DecisionConfig, type DecisionState, type Effect, type Input, type Observations, type PeerView } from '../../../agent/failover/decision.ts';

const cfg: DecisionConfig = {
  intervalMs: 1000,
  threshold: 5,
  demoteThreshold: 3,
  auto: true,
  maxLagOnFailoverMs: 10_000,
  allowDataLoss: false,
  autoFailback: false,
  maxRoleChangesPerHour: 3,
  preferred: false,
};

const T0 = 1_000_000;

function peer(p: Partial<PeerView> = {}): PeerView {
  return { role: 'active', epoch: 1, serving: true, publicState: 'ok', inSync: true, at: T0, ...p };
}

function obs(o: Partial<Observations> = {}): Observations {
  return {
    channel: { up: true, since: T0 },
    peer: peer(),
    ownPublic: { state: 'ok', since: T0, checked: true },
    presence: { state: 'alive', since: T0, answer: { role: 'active', epoch: 1, serving: true } },
    replication: { lagMs: 0, syncing: false },
    ...o,
  };
}

/** Runs ticks every 100 ms from `from` to `to` with observations from `at(t)`, feeding back no done. */
function run(s: DecisionState, from: number, to: number, at: (t: number) => Observations, c = cfg): { state: DecisionState; effects: { t: number; e: Effect }[] } {
  const effects: { t: number; e: Effect }[] = [];
  let state = s;
  for (let t = from; t <= to; t += 100) {
    const r = step(state, { kind: 'tick', now: t, obs: at(t) }, c);
    state = r.state;
    for (const e of r.effects) effects.push({ t, e });
  }
  return { state, effects };
}

function done(s: DecisionState, input: Omit<Extract<Input, { kind: 'done' }>, 'kind'>): DecisionState {
  return step(s, { kind: 'done', ...input }, cfg).state;
}

/** A steady passive of epoch 1, in sync. */
function steadyPassive(): DecisionState {
  return run(initialState('passive', 1, T0), T0, T0 + 100, () => obs()).state;
}

/** A steady, serving active of epoch 1. */
function steadyActive(): DecisionState {
  const r = run(initialState('active', 1, T0), T0, T0, () => obs({ peer: peer({ role: 'passive' }) }));
  expect(r.effects.map((x) => x.e.kind)).toEqual(['serve']);
  return done(r.state, { now: T0 + 10, action: 'serve', ok: true });
}

describe('the failover decision', () => {
  describe('matrix: what the passive does', () => {
    it('does nothing while the channel is up and the active is visible (normal)', () => {
      const r = run(steadyPassive(), T0, T0 + 60_000, () => obs());
      expect(r.effects).toEqual([]);
      expect(r.state.role).toBe('passive');
    });

    it('never fails over when only the channel is down and the active is visible on the public network', () => {
      const r = run(steadyPassive(), T0, T0 + 60_000, () => obs({ channel: { up: false, since: T0 }, peer: undefined, presence: { state: "alive", since: T0 } }));
      expect(r.effects).toEqual([]);
      expect(r.state.reason).toContain('outdated');
    });

    it('fails over after threshold intervals when the channel is down and the active is gone from the public network', () => {
      const gone = (t: number) => obs({ channel: { up: false, since: T0 }, peer: undefined, presence: { state: t >= T0 ? 'dead' : 'alive', since: T0 } });
      const r = run(steadyPassive(), T0, T0 + 10_000, gone);
      expect(r.effects.map((x) => x.e.kind)).toEqual(['promote']);
      expect(r.effects[0]!.t).toBe(T0 + 5_000); // interval × threshold, not before
      const promoted = r.effects[0]!.e;
      expect(promoted.kind === 'promote' && promoted.epoch).toBe(2);
    });

    it('promotes beyond the highest epoch the active ever showed, even from an older epoch of its own', () => {
      const behind = run(initialState('passive', 0, T0), T0, T0 + 100, () => obs({ peer: peer({ epoch: 7 }) })).state;
      const r = run(behind, T0 + 200, T0 + 10_000, () => obs({ channel: { up: false, since: T0 + 200 }, peer: undefined, presence: { state: 'dead', since: T0 + 200 } }));
      const promoted = r.effects[0]!.e;
      expect(promoted.kind === 'promote' && promoted.epoch).toBe(8);
    });

    it('also fails over when the active host is unreachable (no answer to the connection)', () => {
      const r = run(steadyPassive(), T0, T0 + 10_000, () => obs({ channel: { up: false, since: T0 }, peer: undefined, presence: { state: 'unreachable', since: T0 } }));
      expect(r.effects.map((x) => x.e.kind)).toEqual(['promote']);
    });

    it('never promotes while its own public checks fail: it may be the isolated one', () => {
      const r = run(steadyPassive(), T0, T0 + 60_000, () =>
        obs({ channel: { up: false, since: T0 }, peer: undefined, presence: { state: 'unreachable', since: T0 }, ownPublic: { state: 'failing', since: T0, checked: true } }),
      );
      expect(r.effects).toEqual([]);
      expect(r.state.alarms.TANDEM_ERR_FAILOVER_REFUSED?.message).toContain('own public checks fail');
    });

    it('counts the active as gone only while its own public side works: a verdict from its own outage is not evidence', () => {
      // Own side cut from T0 to T0 + 8 s; the active refused the probes all along (they never got out).
      const back = T0 + 8_000;
      const at = (t: number) =>
        obs({ channel: { up: false, since: T0 }, peer: undefined, presence: { state: 'dead', since: T0 }, ownPublic: t < back ? { state: 'failing', since: T0, checked: true } : { state: 'ok', since: back, checked: true } });
      const r = run(steadyPassive(), T0, T0 + 20_000, at);
      expect(r.effects.map((x) => x.e.kind)).toEqual(['promote']);
      // Not at the moment its network returned, but interval × threshold later.
      expect(r.effects[0]!.t).toBe(back + cfg.intervalMs * cfg.threshold);
    });

    it('never fails over from an active that is stalled (its agent accepts connections but does not answer)', () => {
      const r = run(steadyPassive(), T0, T0 + 60_000, () => obs({ channel: { up: false, since: T0 }, peer: undefined, presence: { state: 'stalled', since: T0 } }));
      expect(r.effects).toEqual([]);
      expect(r.state.alarms.TANDEM_ERR_PEER_STALLED).toBeDefined();
    });

    it('refuses to fail over when it was behind beyond maxLagOnFailover, or mid-synchronisation, unless data loss is allowed', () => {
      const gone = (replication: Observations['replication']) => () => obs({ channel: { up: false, since: T0 }, peer: undefined, presence: { state: 'dead', since: T0 }, replication });
      const behind = run(steadyPassive(), T0, T0 + 10_000, gone({ lagMs: 30_000, syncing: false }));
      expect(behind.effects).toEqual([]);
      expect(behind.state.alarms.TANDEM_ERR_FAILOVER_REFUSED?.message).toContain('behind');
      const syncing = run(steadyPassive(), T0, T0 + 10_000, gone({ lagMs: 0, syncing: true }));
      expect(syncing.effects).toEqual([]);
      const allowed = run(steadyPassive(), T0, T0 + 10_000, gone({ lagMs: 30_000, syncing: false }), { ...cfg, allowDataLoss: true });
      expect(allowed.effects.map((x) => x.e.kind)).toEqual(['promote']);
    });

    it('refuses to fail over without a way to see the active on the public network', () => {
      const r = run(steadyPassive(), T0, T0 + 10_000, () => obs({ channel: { up: false, since: T0 }, peer: undefined, presence: { state: 'unconfigured', since: T0 } }));
      expect(r.effects).toEqual([]);
      expect(r.state.alarms.TANDEM_ERR_FAILOVER_REFUSED?.message).toContain('not configured');
    });

    it('does not fail over when failover.auto is off', () => {
      const r = run(steadyPassive(), T0, T0 + 10_000, () => obs({ channel: { up: false, since: T0 }, peer: undefined, presence: { state: 'dead', since: T0 } }), { ...cfg, auto: false });
      expect(r.effects).toEqual([]);
    });
  });

  describe('matrix: what the active does', () => {
    it('keeps serving and journaling while only the channel is down', () => {
      const r = run(steadyActive(), T0, T0 + 60_000, () => obs({ channel: { up: false, since: T0 }, peer: undefined }));
      expect(r.effects).toEqual([]);
      expect(r.state.serving).toBe(true);
    });

    it('switches over (drained) when its own public checks fail and the passive sees the public network', () => {
      const r = run(steadyActive(), T0, T0 + 5_000, () => obs({ peer: peer({ role: 'passive' }), ownPublic: { state: 'failing', since: T0, checked: true } }));
      expect(r.effects.map((x) => x.e.kind)).toEqual(['switchover']);
    });

    it('stays active with an alarm when its public checks fail but the passive is synchronising, far behind, or not on the public network', () => {
      const behind = peer({ role: 'passive', inSync: false });
      for (const [p, replication] of [
        [behind, { lagMs: 0, syncing: true }],
        [behind, { lagMs: 30_000, syncing: false }],
        [peer({ role: 'passive', publicState: 'failing' }), { lagMs: 0, syncing: false }],
      ] as const) {
        const r = run(steadyActive(), T0, T0 + 5_000, () => obs({ peer: p, replication, ownPublic: { state: 'failing', since: T0, checked: true } }));
        expect(r.effects).toEqual([]);
        expect(r.state.alarms.TANDEM_ERR_FAILOVER_REFUSED).toBeDefined();
      }
    });

    it('switches over to a passive a little behind while writes go on: the switchover drains first', () => {
      const r = run(steadyActive(), T0, T0 + 5_000, () =>
        obs({ peer: peer({ role: 'passive', inSync: false }), replication: { lagMs: 40, syncing: false }, ownPublic: { state: 'failing', since: T0, checked: true } }),
      );
      expect(r.effects.map((x) => x.e.kind)).toEqual(['switchover']);
    });

    it('stops serving when isolated, after demoteThreshold intervals: before its peer may promote', () => {
      const isolated = () => obs({ channel: { up: false, since: T0 }, peer: undefined, ownPublic: { state: 'failing', since: T0, checked: true } });
      const r = run(steadyActive(), T0, T0 + 10_000, isolated);
      expect(r.effects.map((x) => x.e.kind)).toEqual(['demote']);
      expect(r.effects[0]!.t).toBe(T0 + 3_000);
      // The passive's promotion for the same outage comes at threshold intervals: later.
      const p = run(steadyPassive(), T0, T0 + 10_000, () => obs({ channel: { up: false, since: T0 }, peer: undefined, presence: { state: 'unreachable', since: T0 } }));
      expect(p.effects[0]!.t).toBeGreaterThan(r.effects[0]!.t);
    });

    it('does not demote for failing public checks it cannot confirm (no targets configured)', () => {
      const r = run(steadyActive(), T0, T0 + 10_000, () => obs({ channel: { up: false, since: T0 }, peer: undefined, ownPublic: { state: 'ok', since: T0, checked: false } }));
      expect(r.effects).toEqual([]);
    });

    it('steps down at once when it meets an active peer of a newer epoch (it was failed over while away)', () => {
      const r = run(steadyActive(), T0, T0 + 200, () => obs({ peer: peer({ role: 'active', epoch: 2 }) }));
      expect(r.effects.map((x) => x.e.kind)).toEqual(['demote']);
      const after = done(r.state, { now: T0 + 300, action: 'demote', ok: true });
      expect(after.role).toBe('passive');
      expect(after.serving).toBe(false);
    });
  });

  describe('start-up', () => {
    it('does not serve before it has heard its peer or waited out the failover threshold', () => {
      const silent = () => obs({ channel: { up: false, since: T0 }, peer: undefined, presence: { state: 'dead', since: T0 } });
      const r = run(initialState('active', 1, T0), T0, T0 + 4_900, silent);
      expect(r.effects).toEqual([]);
      const later = run(r.state, T0 + 5_000, T0 + 5_000, silent);
      expect(later.effects.map((x) => x.e.kind)).toEqual(['serve']);
    });

    it('rejoins as passive when the peer became active meanwhile (no automatic failback)', () => {
      const r = run(initialState('active', 1, T0), T0, T0 + 100, () => obs({ peer: peer({ role: 'active', epoch: 2 }) }));
      expect(r.effects.map((x) => x.e.kind)).toEqual(['demote']);
    });

    it('learns from the public network that the peer is active even with the channel down', () => {
      const r = run(initialState('active', 1, T0), T0, T0 + 100, () => obs({ channel: { up: false, since: T0 }, peer: undefined, presence: { state: 'alive', since: T0, answer: { role: 'active', epoch: 2, serving: true } } }));
      expect(r.effects.map((x) => x.e.kind)).toEqual(['demote']);
    });

    it('does not serve while the peer is stalled', () => {
      const r = run(initialState('active', 1, T0), T0, T0 + 20_000, () => obs({ channel: { up: false, since: T0 }, peer: undefined, presence: { state: 'stalled', since: T0 } }));
      expect(r.effects).toEqual([]);
    });
  });

  describe('outcomes and damping', () => {
    it('becomes active with the new epoch when the promotion succeeded, and keeps the role with an alarm when start failed', () => {
      const ok = done({ ...steadyPassive(), phase: 'busy', pending: 'promote' }, { now: T0, action: 'promote', ok: true, epoch: 2 });
      expect([ok.role, ok.epoch, ok.serving]).toEqual(['active', 2, true]);
      const failed = done({ ...steadyPassive(), phase: 'busy', pending: 'promote' }, { now: T0, action: 'promote', ok: false, epoch: 2, error: 'exit 1' });
      expect([failed.role, failed.serving]).toEqual(['active', false]);
      expect(failed.alarms.TANDEM_ERR_FAILOVER_FAILED).toBeDefined();
      // It tries to start again later, not on every tick.
      const retry = run(failed, T0 + 100, T0 + 6_000, () => obs({ channel: { up: false, since: T0 }, peer: undefined, presence: { state: 'dead', since: T0 } }));
      expect(retry.effects.map((x) => x.e.kind)).toEqual(['serve']);
      expect(retry.effects[0]!.t).toBeGreaterThanOrEqual(T0 + 5_000);
    });

    it('holds after maxRoleChangesPerHour automatic role changes, and counts only the last hour', () => {
      let s = { ...steadyPassive(), roleChanges: [T0 - 50 * 60_000, T0 - 40 * 60_000, T0 - 30 * 60_000] };
      const gone = () => obs({ channel: { up: false, since: T0 }, peer: undefined, presence: { state: 'dead', since: T0 } });
      const held = run(s, T0, T0 + 10_000, gone);
      expect(held.effects).toEqual([]);
      expect(held.state.alarms.TANDEM_ERR_FAILOVER_REFUSED?.message).toContain('automatic role changes');
      s = { ...s, roleChanges: [T0 - 70 * 60_000, T0 - 40 * 60_000, T0 - 30 * 60_000] };
      expect(run(s, T0, T0 + 10_000, gone).effects.map((x) => x.e.kind)).toEqual(['promote']);
    });

    it('rolls back to serving when a switchover fails, and becomes passive when it succeeds', () => {
      const a = steadyActive();
      const failed = done({ ...a, phase: 'busy', pending: 'switchover' }, { now: T0, action: 'switchover', ok: false, error: 'the passive did not take over' });
      expect([failed.role, failed.serving]).toEqual(['active', true]);
      expect(failed.alarms.TANDEM_ERR_SWITCHOVER_FAILED).toBeDefined();
      const ok = done({ ...a, phase: 'busy', pending: 'switchover' }, { now: T0, action: 'switchover', ok: true });
      expect([ok.role, ok.serving]).toEqual(['passive', false]);
    });

    it('takes over on a planned handover with the epoch the active proposed', () => {
      const r = step(steadyPassive(), { kind: 'takeover', now: T0, epoch: 2 }, cfg);
      expect(r.effects).toEqual([{ kind: 'promote', reason: 'planned switchover: the active handed over', epoch: 2 }]);
    });

    it('gives the role back to the preferred node only when autoFailback is on and it caught up', () => {
      const a = steadyActive();
      const passivePeer = () => obs({ peer: peer({ role: 'passive', inSync: true }) });
      expect(run(a, T0, T0 + 5_000, passivePeer).effects).toEqual([]);
      expect(run(a, T0, T0 + 5_000, passivePeer, { ...cfg, autoFailback: true }).effects.map((x) => x.e.kind)).toEqual(['switchover']);
      expect(run(a, T0, T0 + 5_000, passivePeer, { ...cfg, autoFailback: true, preferred: true }).effects).toEqual([]);
    });

    it('does not count operator switchovers or planned takeovers towards damping', () => {
      const a = steadyActive();
      const asked = step(a, { kind: 'operator-switchover', now: T0 }, cfg);
      expect(asked.effects.map((e) => e.kind)).toEqual(['switchover']);
      expect(done(asked.state, { now: T0 + 500, action: 'switchover', ok: true }).roleChanges).toEqual([]);
      const taken = step(steadyPassive(), { kind: 'takeover', now: T0, epoch: 2 }, cfg);
      expect(done(taken.state, { now: T0 + 500, action: 'promote', ok: true, epoch: 2 }).roleChanges).toEqual([]);
      // An automatic one counts.
      const appFailed = step(a, { kind: 'app-failed', now: T0, reason: 'check failed 3 times' }, cfg);
      expect(done(appFailed.state, { now: T0 + 500, action: 'switchover', ok: true }).roleChanges).toEqual([T0 + 500]);
    });

    it('retries a failed stop on a passive that serves, but not on every tick', () => {
      const s = { ...steadyPassive(), serving: true };
      const first = run(s, T0, T0, () => obs());
      expect(first.effects.map((x) => x.e.kind)).toEqual(['release']);
      const failed = done(first.state, { now: T0 + 100, action: 'release', ok: false, error: 'exit code 1' });
      expect(failed.alarms.TANDEM_ERR_SCRIPT_FAILED).toBeDefined();
      const again = run(failed, T0 + 200, T0 + 10_000, () => obs());
      expect(again.effects.map((x) => x.e.kind)).toEqual(['release']);
      expect(again.effects[0]!.t).toBeGreaterThanOrEqual(T0 + 5_000);
      const ok = done(again.state, { now: T0 + 10_100, action: 'release', ok: true });
      expect([ok.serving, ok.alarms.TANDEM_ERR_SCRIPT_FAILED]).toEqual([false, undefined]);
    });

    it('after a switchover rolled back whose own start failed, does not count itself serving and starts again later', () => {
      const a = steadyActive();
      const failed = done({ ...a, phase: 'busy', pending: 'switchover' }, { now: T0, action: 'switchover', ok: false, serving: false, error: "drain timed out; and the rollback's start failed: exit code 1" });
      expect([failed.role, failed.serving]).toEqual(['active', false]);
      const retry = run(failed, T0 + 100, T0 + 10_000, () => obs({ peer: peer({ role: 'passive' }) }));
      expect(retry.effects.map((x) => x.e.kind)).toEqual(['serve']);
      expect(retry.effects[0]!.t).toBeGreaterThanOrEqual(T0 + 5_000);
    });

    it('with both nodes passive and the channel up, the node active last takes the role again after threshold intervals', () => {
      // The isolated active stepped down; its peer could not take over. The links are back.
      const demoted = { ...steadyPassive(), activeEpoch: 1 };
      const otherPassive = () => obs({ peer: peer({ role: 'passive', serving: false, activeEpoch: 0 }) });
      const r = run(demoted, T0, T0 + 10_000, otherPassive);
      expect(r.effects.map((x) => x.e.kind)).toEqual(['promote']);
      expect(r.effects[0]!.t).toBe(T0 + 5_000);
      expect(r.effects[0]!.e).toMatchObject({ epoch: 2 });
      // The other one waits, and nobody acts before the peer said when it was active last.
      const never = { ...steadyPassive(), activeEpoch: 0 };
      expect(run(never, T0, T0 + 60_000, () => obs({ peer: peer({ role: 'passive', serving: false, activeEpoch: 1 }) })).effects).toEqual([]);
      expect(run(demoted, T0, T0 + 60_000, () => obs({ peer: peer({ role: 'passive', serving: false }) })).effects).toEqual([]);
      // Not while its own public checks fail.
      const failing = run(demoted, T0, T0 + 10_000, () => obs({ peer: peer({ role: 'passive', activeEpoch: 0 }), ownPublic: { state: 'failing', since: T0, checked: true } }));
      expect(failing.effects).toEqual([]);
      expect(failing.state.alarms.TANDEM_ERR_FAILOVER_REFUSED).toBeDefined();
    });

    it('holds a switchover asked by application monitoring when damped, with an alarm the public rules leave alone', () => {
      const a = { ...steadyActive(), roleChanges: [T0 - 3_000, T0 - 2_000, T0 - 1_000] };
      const held = step(a, { kind: 'app-failed', now: T0, reason: 'check failed after 3 restarts' }, cfg);
      expect(held.effects).toEqual([]);
      const later = run(held.state, T0 + 100, T0 + 5_000, () => obs({ peer: peer({ role: 'passive' }) }));
      expect(later.state.alarms.TANDEM_ERR_SCRIPT_FAILED?.message).toContain('not switching over');
    });

    it('ignores ticks while an action runs: one action at a time', () => {
      const r = run({ ...steadyPassive(), phase: 'busy', pending: 'promote' }, T0, T0 + 60_000, () => obs({ channel: { up: false, since: T0 }, peer: undefined, presence: { state: 'dead', since: T0 } }));
      expect(r.effects).toEqual([]);
    });
  });

  describe('requests that arrive mid-action', () => {
    it('carries out a takeover that arrives while the passive still finishes its own step', () => {
      const mid: DecisionState = { ...steadyPassive(), phase: 'busy', pending: 'release' };
      const r = step(mid, { kind: 'takeover', now: T0 + 1000, epoch: 5 }, cfg);
      expect(r.effects).toEqual([]);
      const after = step(r.state, { kind: 'done', now: T0 + 1200, action: 'release', ok: true }, cfg);
      expect(after.effects).toEqual([{ kind: 'promote', reason: 'planned switchover: the active handed over', epoch: 5 }]);
      expect(after.state.queued).toBeUndefined();
    });

    it('hands over for a split brain resolved for the peer once the running action ends, undrained', () => {
      const mid: DecisionState = { ...steadyActive(), phase: 'busy', pending: 'serve' };
      const r = step(mid, { kind: 'keep-peer', now: T0 + 1000, reason: 'split brain resolved by policy zero-changes: keeping beta', operator: false }, cfg);
      expect(r.effects).toEqual([]);
      const after = step(r.state, { kind: 'done', now: T0 + 1200, action: 'serve', ok: true }, cfg);
      expect(after.effects).toEqual([{ kind: 'switchover', reason: 'split brain resolved by policy zero-changes: keeping beta', discardOwn: true }]);
    });

    it('leaves a policy\'s handover to the operator when failover.auto is off, but carries out the operator\'s', () => {
      const manual = { ...cfg, auto: false };
      const byPolicy = step(steadyActive(), { kind: 'keep-peer', now: T0 + 1000, reason: 'split brain resolved by policy zero-changes: keeping beta', operator: false }, manual);
      expect(byPolicy.effects).toEqual([]);
      expect(byPolicy.state.alarms.TANDEM_ERR_FAILOVER_REFUSED?.message).toContain('failover.auto is off');
      const byOperator = step(steadyActive(), { kind: 'keep-peer', now: T0 + 1000, reason: 'keeping beta', operator: true }, manual);
      expect(byOperator.effects).toEqual([{ kind: 'switchover', reason: 'operator resolved a split brain: keeping beta', discardOwn: true }]);
    });
  });

  describe('triggers: what set a change in motion, apart from the words', () => {
    it('marks a failover automatic, an operator\'s switchover operator, and the takeover of a handover planned', () => {
      const gone = (t: number) => obs({ channel: { up: false, since: T0 }, peer: undefined, presence: { state: t >= T0 ? 'dead' : 'alive', since: T0 } });
      const failover = run(steadyPassive(), T0, T0 + 10_000, gone);
      expect(failover.state.trigger).toBe('automatic');
      expect(step(steadyActive(), { kind: 'operator-switchover', now: T0 + 100 }, cfg).state.trigger).toBe('operator');
      expect(step(steadyPassive(), { kind: 'takeover', now: T0 + 100, epoch: 2 }, cfg).state.trigger).toBe('planned');
      expect(step(steadyActive(), { kind: 'app-failed', now: T0 + 100, reason: 'check failed' }, cfg).state.trigger).toBe('automatic');
    });

    it('counts role changes for damping by trigger, whatever the reason says', () => {
      // A reason that happens to begin with "operator" does not make an automatic change an operator's.
      const s: DecisionState = { ...steadyActive(), phase: 'busy', pending: 'switchover', reason: 'operator-like words', trigger: 'automatic' };
      expect(done(s, { now: T0 + 500, action: 'switchover', ok: true }).roleChanges).toHaveLength(1);
      const o: DecisionState = { ...s, trigger: 'operator', reason: 'own public link down' };
      expect(done(o, { now: T0 + 500, action: 'switchover', ok: true }).roleChanges).toHaveLength(0);
    });
  });

  describe('maintenance: no automatic role change while an operator holds the pair', () => {
    const held = (s: DecisionState) => step(s, { kind: 'maintenance', now: T0, on: true }, cfg).state;

    it('does not fail over from a gone active, and says maintenance is why; takes over again once it ends', () => {
      const gone = (t: number) => obs({ channel: { up: false, since: T0 }, peer: undefined, presence: { state: t >= T0 ? 'dead' : 'alive', since: T0 } });
      const r = run(held(steadyPassive()), T0, T0 + 20_000, gone);
      expect(r.effects).toEqual([]);
      expect(r.state.alarms.TANDEM_ERR_FAILOVER_REFUSED?.message).toContain('maintenance mode is on');
      const released = step(r.state, { kind: 'maintenance', now: T0 + 20_000, on: false }, cfg).state;
      const after = run(released, T0 + 20_100, T0 + 20_200, gone);
      expect(after.effects.map((x) => x.e.kind)).toEqual(['promote']);
    });

    it('does not switch over by itself for a lost public link, a failed application or a split-brain policy', () => {
      const s = held(steadyActive());
      const lost = run(s, T0, T0 + 10_000, () => obs({ peer: peer({ role: 'passive' }), ownPublic: { state: 'failing', since: T0, checked: true } }));
      expect(lost.effects).toEqual([]);
      expect(lost.state.alarms.TANDEM_ERR_FAILOVER_REFUSED?.message).toContain('maintenance');
      const app = step(s, { kind: 'app-failed', now: T0 + 100, reason: 'check failed 3 times' }, cfg);
      expect(app.effects).toEqual([]);
      expect(app.state.alarms.TANDEM_ERR_SCRIPT_FAILED?.message).toContain('maintenance');
      const policy = step(s, { kind: 'keep-peer', now: T0 + 100, reason: 'split brain resolved by policy zero-changes: keeping beta', operator: false }, cfg);
      expect(policy.effects).toEqual([]);
    });

    it('still does what an operator asks, and still steps down when isolated (never two active nodes)', () => {
      const s = held(steadyActive());
      expect(step(s, { kind: 'operator-switchover', now: T0 + 100 }, cfg).effects.map((e) => e.kind)).toEqual(['switchover']);
      const isolated = run(s, T0, T0 + 5_000, () => obs({ channel: { up: false, since: T0 }, peer: undefined, ownPublic: { state: 'failing', since: T0, checked: true } }));
      expect(isolated.effects.map((x) => x.e.kind)).toEqual(['demote']);
      expect(isolated.effects[0]!.t).toBe(T0 + 3_000);
    });
  });

  describe('failover --force: the operator vouches that the active is gone', () => {
    const down = (p: Observations['presence']['state'], o: Partial<Observations> = {}) => obs({ channel: { up: false, since: T0 }, peer: undefined, presence: { state: p, since: T0 }, ...o });

    it('promotes at once, beyond the peer\'s epoch, where the automatic rules refuse (auto off, no presence address, damping, lag)', () => {
      const manual = { ...cfg, auto: false };
      const waited = run(steadyPassive(), T0, T0 + 20_000, () => down('unconfigured', { replication: { lagMs: 60_000, syncing: false } }), manual);
      expect(waited.effects).toEqual([]);
      const r = step(waited.state, { kind: 'operator-failover', now: T0 + 20_000, obs: down('unconfigured', { replication: { lagMs: 60_000, syncing: false } }) }, manual);
      expect(r.refused).toBeUndefined();
      expect(r.effects).toEqual([{ kind: 'promote', fence: true, reason: expect.stringContaining('failover forced by an operator'), epoch: 2 }]);
      expect(r.effects[0]!.reason).toContain('60000 ms behind');
      expect(r.state.trigger).toBe('operator');
      // Not counted for damping: an operator's word is not an automatic change.
      expect(done(r.state, { now: T0 + 21_000, action: 'promote', ok: true, epoch: 2 }).roleChanges).toEqual([]);
    });

    it('refuses, changing nothing, while the peer answers: on the channel, or its agent on the public network', () => {
      const p = steadyPassive();
      const onChannel = step(p, { kind: 'operator-failover', now: T0 + 100, obs: obs() }, cfg);
      expect(onChannel.refused).toContain('answers on the channel');
      expect(onChannel.state).toBe(p);
      for (const state of ['alive', 'stalled'] as const) {
        const r = step(p, { kind: 'operator-failover', now: T0 + 100, obs: down(state) }, cfg);
        expect(r.refused).toContain(`presence ${state}`);
        expect(r.effects).toEqual([]);
      }
    });

    it('refuses on an active node, during an action, and in the middle of a synchronisation', () => {
      expect(step(steadyActive(), { kind: 'operator-failover', now: T0 + 100, obs: down('dead') }, cfg).refused).toContain('active already');
      const busyPassive: DecisionState = { ...steadyPassive(), phase: 'busy', pending: 'release' };
      expect(step(busyPassive, { kind: 'operator-failover', now: T0 + 100, obs: down('dead') }, cfg).refused).toContain('role change is running');
      expect(step(steadyPassive(), { kind: 'operator-failover', now: T0 + 100, obs: down('dead', { replication: { lagMs: 0, syncing: true } }) }, cfg).refused).toContain('synchronisation');
    });

    it('is taken in maintenance too: the hold is on automatic changes only', () => {
      const s = step(steadyPassive(), { kind: 'maintenance', now: T0, on: true }, cfg).state;
      expect(step(s, { kind: 'operator-failover', now: T0 + 100, obs: down('dead') }, cfg).effects.map((e) => e.kind)).toEqual(['promote']);
    });
  });

  describe('fencing (scripts.fence)', () => {
    const gone = () => obs({ channel: { up: false, since: T0 }, peer: undefined, presence: { state: 'dead', since: T0 } });

    it('asks for the fence before a failover, never before a planned takeover', () => {
      const failover = run(steadyPassive(), T0, T0 + 10_000, gone).effects[0]!.e;
      expect(failover).toMatchObject({ kind: 'promote', fence: true });
      const planned = step(steadyPassive(), { kind: 'takeover', now: T0, epoch: 2 }, cfg).effects[0]!;
      expect(planned.kind === 'promote' && planned.fence).toBeUndefined();
    });

    it('stays passive with an alarm when the fence fails, fences again only after the retry delay, and takes over once it succeeds', () => {
      const first = run(steadyPassive(), T0, T0 + 5_000, gone);
      expect(first.effects.map((x) => [x.t, x.e.kind])).toEqual([[T0 + 5_000, 'promote']]);
      const fenceFailed = done(first.state, { now: T0 + 5_100, action: 'promote', ok: false, fenceFailed: true, error: 'exit code 1' });
      expect([fenceFailed.role, fenceFailed.epoch, fenceFailed.serving, fenceFailed.phase]).toEqual(['passive', 1, false, 'steady']);
      expect(fenceFailed.alarms.TANDEM_ERR_FENCE_FAILED?.message).toContain('exit code 1');
      // No role change was made, so none is counted for damping.
      expect(fenceFailed.roleChanges).toEqual([]);
      // Not on every tick: after max(5 s, interval × threshold).
      const again = run(fenceFailed, T0 + 5_200, T0 + 20_000, gone);
      expect(again.effects.map((x) => [x.t, x.e.kind])).toEqual([[T0 + 10_100, 'promote']]);
      expect(again.effects[0]!.e).toMatchObject({ fence: true });
      const promoted = done(again.state, { now: T0 + 10_300, action: 'promote', ok: true, epoch: 2 });
      expect([promoted.role, promoted.serving]).toEqual(['active', true]);
      expect(promoted.alarms.TANDEM_ERR_FENCE_FAILED).toBeUndefined();
    });

    it('drops the fence alarm when the active is heard again', () => {
      const first = run(steadyPassive(), T0, T0 + 5_000, gone);
      const fenceFailed = done(first.state, { now: T0 + 5_100, action: 'promote', ok: false, fenceFailed: true, error: 'exit code 1' });
      const back = run(fenceFailed, T0 + 5_200, T0 + 6_000, () => obs({ channel: { up: true, since: T0 + 5_200 } }));
      expect(back.effects).toEqual([]);
      expect(back.state.alarms.TANDEM_ERR_FENCE_FAILED).toBeUndefined();
    });
  });
});
