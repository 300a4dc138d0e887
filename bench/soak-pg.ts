// `npm run soak:pg`: PostgreSQL crash trials on a btrfs subvolume (issue 9): pgbench -n with a
// CHECKPOINT every second, the active server (agent and every PostgreSQL process) SIGKILLed after
// a random 6-14 s of load, the passive takes over. Per trial: does the copy start as it is, pass
// pg_amcheck --heapallindexed, do pgbench's balances agree; the committed transactions and
// seconds lost, and the rpoMs the passive's status showed just before the crash (which must bound
// the loss). Exits 1 unless every trial holds. Needs root, btrfs-progs and postgresql.
//
//   npm run soak:pg -- [--trials N] [--scale S] [--keep]
import { parseArgs } from 'node:util';
import { killAll } from '../test/helpers/processes.ts';
import { btrfsUnavailable } from '../test/helpers/btrfs-loop.ts';
import { LOSS_SLACK_MS, PgCrashLab, postgresUnavailable, trialLine, trialOk, type PgTrial } from '../test/helpers/pg-crash.ts';

const { values } = parseArgs({ options: { trials: { type: 'string', default: '20' }, scale: { type: 'string', default: '2' }, keep: { type: 'boolean' } } });
const trials = Number(values.trials);
const scale = Number(values.scale);
if (!Number.isInteger(trials) || trials < 1 || !Number.isInteger(scale) || scale < 1) {
  process.stderr.write('usage: npm run soak:pg -- [--trials N] [--scale S] [--keep]\n');
  process.exit(2);
}
const why = btrfsUnavailable() ?? postgresUnavailable();
if (why !== undefined) {
  process.stderr.write(`soak:pg: cannot run: ${why}\n`);
  process.exit(2);
}
if (values.keep === true) process.env.TANDEM_KEEP_TEST_DIRS = '1';

const t0 = Date.now();
const lab = new PgCrashLab(scale);
const results: PgTrial[] = [];
lab.cleanupOnSignals();
try {
  await lab.init();
  for (let n = 1; n <= trials; n++) {
    const loadMs = 6000 + Math.floor(Math.random() * 8000);
    // A trial that cannot finish (a takeover that does not come) counts as failed, with why.
    const t = await lab.trial(n, { loadMs }).catch((err: unknown): PgTrial => ({ trial: n, loadMs, rpoAtCrashMs: null, starts: false, amcheck: undefined, balances: undefined, committed: 0, txnsLost: undefined, secondsLost: undefined, discardedRecords: 0, detail: `the trial failed: ${(err as Error).message.slice(0, 600)}` }));
    results.push(t);
    process.stdout.write(`${trialLine(t)}${trialOk(t) ? '' : '  <- FAILS'}\n`);
  }
} finally {
  await lab.cleanup();
  await killAll();
}
const ok = results.filter(trialOk).length;
const count = (f: (t: PgTrial) => boolean): number => results.filter(f).length;
const range = (xs: number[]): string => (xs.length === 0 ? '-' : `${Math.min(...xs)}-${Math.max(...xs)}`);
process.stdout.write(
  [
    '',
    `PostgreSQL crash trials (scale ${scale}, pgbench -n -c 4, CHECKPOINT every second): ${results.length}`,
    `copies start: ${count((t) => t.starts)}/${results.length}; pg_amcheck clean: ${count((t) => t.amcheck === true)}/${results.length}; balances agree: ${count((t) => t.balances === true)}/${results.length}`,
    `transactions lost: ${range(results.flatMap((t) => (t.txnsLost === undefined ? [] : [t.txnsLost])))}; seconds lost: ${range(results.flatMap((t) => (t.secondsLost === undefined ? [] : [Number(t.secondsLost.toFixed(2))])))}; rpoMs before the crash: ${range(results.flatMap((t) => (t.rpoAtCrashMs === null ? [] : [t.rpoAtCrashMs])))}`,
    `loss within the rpoMs shown (+${LOSS_SLACK_MS} ms, one transaction): ${count((t) => t.secondsLost !== undefined && t.rpoAtCrashMs !== null && t.secondsLost * 1000 <= t.rpoAtCrashMs + LOSS_SLACK_MS)}/${results.length}; strictly within: ${count((t) => t.secondsLost !== undefined && t.rpoAtCrashMs !== null && t.secondsLost * 1000 <= t.rpoAtCrashMs)}/${results.length}`,
    `wall time: ${Math.round((Date.now() - t0) / 1000)} s`,
    ok === trials ? 'soak:pg: ok' : `soak:pg: FAILED (${trials - ok} of ${trials})`,
    '',
  ].join('\n'),
);
process.exit(ok === trials ? 0 : 1);
