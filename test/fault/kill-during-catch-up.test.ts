// Either agent killed with SIGKILL at random points of a catch-up, 20 times: afterwards the pair
// is in sync, the trees are byte-identical and `tandem verify` finds no difference (DESIGN.md
// invariant 2: what the passive acknowledged survives a crash of either side; goal 4: the
// catch-up resumes rather than starts over).
//
// Rounds: the channel is cut, a chunk of block writes spread over many files is made on the
// active (sometimes more than the journal holds, so capture is held back too), the channel comes
// back, and the catch-up runs under a bandwidth limit so it lasts a few seconds. Each kill falls
// after a random delay into the running catch-up; after the restart the next kill either falls
// into the same catch-up or waits for it to finish and a new round. In some rounds half the
// chunk is written during the catch-up, so kills also land while the active is being written.
//
// The kill points come from a seeded PRNG and the seed is printed: replay a failure with
// TANDEM_TEST_SEED=<seed> (timing on a loaded machine still varies, the choices do not).
//
// Its first run found an active that, killed while its journal was nearly full and restarted,
// never came up: capture's start-up waited for journal room that only the passive's
// acknowledgements over the not yet opened channel could make.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentStatus } from '../../agent/control/index.ts';
import { planWrites, runWrites, writeBaseTree, type ChangePlanSpec, type ChangeReport } from '../helpers/change-workload.ts';
import { tandem } from '../helpers/cli.ts';
import { DEFAULTS, FailoverPair } from '../helpers/failover-pair.ts';
import { sleep, type NodeName } from '../helpers/pair.ts';
import { killAll } from '../helpers/processes.ts';
import { digestTree, treeDiff } from '../helpers/tree-hash.ts';
import { rng } from '../helpers/workload.ts';
import { describeDecision, startDecisions } from '../helpers/start-decisions.ts';

let current: FailoverPair | undefined;
afterEach(async () => {
  await killAll();
  await current?.cleanup();
  current = undefined;
});

const KILLS = 20;
const BLOCK = 4096;
/** Slows every catch-up down to a few seconds, the same on any machine. */
const BANDWIDTH_BYTES_PER_SEC = 1 << 20;
/** Writes per round: 400 to 1,400 blocks of 4 KiB (1.6 to 5.5 MiB, against a 4 MiB journal). */
const ROUND_MIN_WRITES = 400;
const ROUND_SPREAD_WRITES = 1_000;
/** Longest random delay before a kill; it is also kept within what is left of the catch-up. */
const KILL_DELAY_MAX_MS = 4_000;
/** What a path capture holds back is taken to cost, to guess how long a catch-up has left (one block: a round writes about one per file). */
const HELD_PATH_BYTES = BLOCK;
/** Longest random time an agent stays dead. */
const DOWN_MAX_MS = 400;
/** How long writes made during a catch-up go on. */
const LIVE_WRITE_MS = 3_000;

// 2,000 files of 8 KiB (16 MiB); 1,000 of them get one block overwritten and 9 appended, 1,000
// new files get 18 blocks each: 28,000 writes of 4 KiB, what 20 rounds of the largest size use.
const SPEC: ChangePlanSpec = {
  base: { files: 2_000, blocks: 2, blockSize: BLOCK },
  existing: { files: 1_000, overwrites: 1, appends: 9 },
  created: { files: 1_000, blocks: 18 },
};

interface Kill {
  node: NodeName;
  /** The catch-up was running just before the kill (the passive connected and not in sync). */
  inCatchUp: boolean;
  /** The workload was writing on the active at that moment. */
  whileWriting: boolean;
  /** Another kill already fell into this catch-up. */
  again: boolean;
  delayMs: number;
  /** What the catch-up was guessed to have left when the delay was drawn. */
  leftMs: number;
}

const behind = (s: AgentStatus | undefined) => s !== undefined && s.peer.connected && !s.replication.inSync;

describe('SIGKILL of either agent at random points of a catch-up', () => {
  it('leaves the pair in sync, the trees byte-identical and verify with 0 differences after 20 kills', async () => {
    const seed = Number(process.env.TANDEM_TEST_SEED ?? Date.now() % 1_000_000);
    process.stdout.write(`[kill-catch-up] seed ${seed} (replay with TANDEM_TEST_SEED=${seed})\n`);
    const rand = rng(seed);
    current = await FailoverPair.create(DEFAULTS, (doc) => {
      doc.blockSize = '4KiB';
      // About replication across kills, not failover: the passive must not promote while the active is dead.
      doc.failover = { ...(doc.failover ?? {}), auto: false };
      doc.channel = { ...(doc.channel ?? {}), bandwidthLimit: `${BANDWIDTH_BYTES_PER_SEC}B` };
      // Small batches against the limit so the pace is even; a journal that the larger rounds overflow.
      doc.journal = { ...(doc.journal ?? {}), maxBytes: '4MiB', segmentBytes: '1MiB', batchBytes: '128KiB' };
      doc.verify = { rate: '0' };
    });
    const fp = current;
    const p = fp.pair;
    for (const n of ['alpha', 'beta'] as NodeName[]) for (const e of fs.readdirSync(p.data(n))) fs.rmSync(path.join(p.data(n), e), { recursive: true });
    writeBaseTree([p.data('alpha'), p.data('beta')], SPEC.base);
    const writes = planWrites(SPEC);
    await p.startBoth();
    await p.waitIdentical(120_000);

    // Half the kills for each node, in an order the seed decides.
    const victims: NodeName[] = Array.from({ length: KILLS }, (_, i) => (i % 2 === 0 ? 'alpha' : 'beta'));
    for (let i = victims.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [victims[i], victims[j]] = [victims[j]!, victims[i]!];
    }

    const t0 = Date.now();
    const kills: Kill[] = [];
    const rounds: { writes: number; live: boolean; bytesLeft: number; pathsLeft: number }[] = [];
    let next = 0;
    let bytesChanged = 0;
    let writer: Promise<ChangeReport> | undefined;
    let writing = false;
    let catchingUp = false;
    let killsThisRound = 0;

    /** What the passive says is left of the catch-up once connected; null when it is in sync. */
    const catchUpLeft = async () => {
      const b = await p.waitFor('beta', 'catching up or in sync', (s) => s.peer.connected && (s.replication.inSync || s.replication.catchUp !== null), 60_000);
      return b.replication.inSync ? null : b.replication.catchUp;
    };
    const bothConnected = async () => {
      await p.waitFor('alpha', 'connected to the passive', (s) => s.peer.connected, 60_000);
      await p.waitFor('beta', 'connected to the active', (s) => s.peer.connected, 60_000);
    };

    for (const victim of victims) {
      let left = catchingUp ? await catchUpLeft() : null;
      if (left === null) {
        // A new round: an outage with changes, then the channel back and a catch-up to do.
        if (writer !== undefined) bytesChanged += (await writer).bytesChanged;
        writer = undefined;
        const n = ROUND_MIN_WRITES + Math.floor(rand() * ROUND_SPREAD_WRITES);
        const chunk = writes.slice(next, next + n);
        next += n;
        // Every third round, half the chunk is written while the catch-up runs.
        const live = rounds.length % 3 === 1;
        await fp.cutChannel(true);
        await p.waitFor('beta', 'channel down', (s) => !s.peer.connected);
        const during = live ? chunk.slice(0, Math.floor(n / 2)) : chunk;
        // Paced a little: the proxies live in this process and must keep answering.
        bytesChanged += (await runWrites(p.data('alpha'), during, 500)).bytesChanged;
        await sleep(300);
        await fp.cutChannel(false);
        if (live) {
          writing = true;
          writer = runWrites(p.data('alpha'), chunk.slice(during.length), LIVE_WRITE_MS).finally(() => (writing = false));
        }
        left = await catchUpLeft();
        rounds.push({ writes: n, live, bytesLeft: left?.bytesLeft ?? 0, pathsLeft: left?.pathsLeft ?? 0 });
        killsThisRound = 0;
      }
      // A random point of what is left of the catch-up.
      // The limit lets one second's worth leave at once, hence the second taken off.
      const leftMs = left === null ? 500 : Math.max(300, ((left.bytesLeft + left.pathsLeft * HELD_PATH_BYTES) / BANDWIDTH_BYTES_PER_SEC) * 1000 - 1000);
      const delayMs = Math.floor(rand() * Math.min(KILL_DELAY_MAX_MS, leftMs));
      await sleep(delayMs);
      const inCatchUp = behind(await p.status('beta').catch(() => undefined));
      kills.push({ node: victim, inCatchUp, whileWriting: writing, again: killsThisRound > 0, delayMs, leftMs: Math.round(leftMs) });
      killsThisRound++;
      await p.kill(victim, 'SIGKILL');
      await sleep(Math.floor(rand() * DOWN_MAX_MS));
      await p.start(victim);
      await bothConnected();
      // Half the time the next kill falls into this catch-up again, if it still runs.
      catchingUp = rand() < 0.5;
      if (!catchingUp) {
        if (writer !== undefined) {
          bytesChanged += (await writer).bytesChanged;
          writer = undefined;
        }
        await p.waitFor('beta', 'in sync after the catch-up', (s) => s.peer.connected && s.replication.inSync, 120_000);
      }
    }
    if (writer !== undefined) bytesChanged += (await writer).bytesChanged;

    await p.waitIdentical(180_000);
    const ms = Date.now() - t0;
    expect(treeDiff(digestTree(p.data('alpha')), digestTree(p.data('beta')))).toBe('');
    const v = await tandem(['verify', '-c', p.node('alpha').config, '--json'], 120_000);
    const out = JSON.parse(v.stdout || '{}') as { differences?: number; paths?: string[] };
    const [a, b] = await Promise.all([p.status('alpha'), p.status('beta')]);

    const count = (f: (k: Kill) => boolean) => kills.filter(f).length;
    process.stdout.write(
      `[kill-catch-up] seed ${seed}: ${kills.length} kills (alpha ${count((k) => k.node === 'alpha')}, beta ${count((k) => k.node === 'beta')}), ` +
        `${count((k) => k.inCatchUp)} during a catch-up, ${count((k) => k.again)} into a catch-up already interrupted, ${count((k) => k.whileWriting)} while the active was written; ` +
        `${rounds.length} rounds (${rounds.filter((r) => r.live).length} with writes during the catch-up), ${next} writes, ${bytesChanged} bytes changed; ` +
        `catch-up seen at reconnect: ${rounds.map((r) => `${(r.bytesLeft / 2 ** 20).toFixed(1)} MiB/${r.pathsLeft} paths`).join(', ')}; ` +
        `kills + catch-ups ${(ms / 1000).toFixed(1)} s; verify ${(v.ms / 1000).toFixed(1)} s exit ${v.code}: ${v.stdout.trim()}\n`,
    );
    process.stdout.write(`[kill-catch-up] kills (node, delay/guessed left ms, where): ${kills.map((k) => `${k.node[0]} ${k.delayMs}/${k.leftMs} ${k.inCatchUp ? 'in' : 'after'}${k.again ? ' again' : ''}${k.whileWriting ? ' writing' : ''}`).join('; ')}\n`);
    if (v.code !== 0) process.stdout.write(`[kill-catch-up] verify stderr: ${v.stderr}\n`);

    expect(v.code, v.stderr).toBe(0);
    expect(out.differences).toBe(0);
    expect(a.replication.inSync && b.replication.inSync).toBe(true);
    expect(a.alarms).toEqual([]);
    // Every reconnection after the first synchronisation resumed from the passive's last
    // acknowledgement: no kill led to a new synchronisation. (Before it completed, both nodes
    // dialling at once may decide it twice: seen once in a full run.) A failure says why: the
    // decision with what each side held.
    const d = startDecisions(p);
    expect(d.untilSynced.length).toBeGreaterThan(0);
    expect(d.untilSynced.filter((l) => l.decision.kind !== 'sync').map(describeDecision)).toEqual([]);
    expect(d.afterSynced.filter((l) => l.decision.kind !== 'resume').map(describeDecision)).toEqual([]);
    // The test did what it says: both nodes killed, most kills inside a running catch-up (12 to
    // 19 of 20 in trial runs; a catch-up can end during the delay), some of them into a catch-up
    // already interrupted and some while the active was being written.
    expect(count((k) => k.node === 'alpha')).toBe(KILLS / 2);
    expect(count((k) => k.node === 'beta')).toBe(KILLS / 2);
    expect(count((k) => k.inCatchUp)).toBeGreaterThanOrEqual(8);
    expect(count((k) => k.again)).toBeGreaterThan(0);
    expect(count((k) => k.whileWriting)).toBeGreaterThan(0);
  }, 600_000);
});
