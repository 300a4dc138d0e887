// Switchovers back and forth while a client stores files through the demo application (issue
// 11: "switchover is refused under any steady write load"). Each switchover is asked without
// --force as soon as the pair is ready again; at the end every write the client was told is
// stored must be on both nodes with its content, `tandem verify` must find no difference, and
// the scripts log must never show a start while the other node serves. The test line runs a
// few; `npm run soak` runs 50 and prints the figures.
import fs from 'node:fs';
import { overlappingStarts, readScriptsLog } from '../../agent/scripts/index.ts';
import { ClientLoop, type ClientLoopReport } from './client-loop.ts';
import { tandem } from './cli.ts';
import { TestPair, type NodeName } from './pair.ts';

export interface SoakOptions {
  switchovers: number;
  /** Files stored per second through the application (default 20). */
  ratePerSecond?: number;
  progress?: (line: string) => void;
}

export interface SwitchoverRun {
  from: NodeName;
  /** The command's own figure (from its start to both nodes confirming), and its wall time. */
  ms: number;
  wallMs: number;
  code: number | null;
  stderr: string;
  /** Records the old active still had to send when it was asked (from its status). */
  lagRecords: number;
  lagMs: number;
  exactInSync: boolean;
}

export interface SoakReport {
  runs: SwitchoverRun[];
  client: ClientLoopReport;
  acknowledged: number;
  /** Acknowledged writes missing (or wrong) on either node. */
  missing: string[];
  verifyDifferences: number | undefined;
  verifyOutput: string;
  overlaps: string[];
}

const other = (n: NodeName): NodeName => (n === 'alpha' ? 'beta' : 'alpha');
const file = (n: number) => `soak/${String(n).padStart(6, '0')}.txt`;

export async function switchoverSoak(p: TestPair, o: SoakOptions): Promise<SoakReport> {
  const say = o.progress ?? (() => {});
  const ready = async (active: NodeName) => {
    await p.waitFor(active, `${active} active, serving, passive connected`, (s) => s.role === 'active' && s.failover.serving && s.failover.phase === 'steady' && s.peer.connected && s.peer.role === 'passive', 60_000);
    await p.waitFor(other(active), `${other(active)} passive and steady`, (s) => s.role === 'passive' && s.failover.phase === 'steady' && !s.failover.serving, 60_000);
  };
  let active: NodeName = 'alpha';
  await ready(active);
  const loop = new ClientLoop({
    url: p.info.appUrl,
    ratePerSecond: o.ratePerSecond ?? 20,
    request: (n) => ({ method: 'PUT', path: `/files/${file(n)}`, body: `write ${n}\n`, tag: String(n) }),
  });
  loop.start();
  const runs: SwitchoverRun[] = [];
  try {
    for (let i = 0; i < o.switchovers; i++) {
      await ready(active);
      const before = await p.status(active);
      // Either node's config: the command finds the active by itself.
      const t0 = performance.now();
      const r = await tandem(['switchover', '-c', p.node(i % 2 === 0 ? 'alpha' : 'beta').config, '--json'], 180_000);
      const wallMs = performance.now() - t0;
      let ms = NaN;
      try {
        ms = (JSON.parse(r.stdout) as { ms: number }).ms;
      } catch {
        // refused or failed: the stderr says why
      }
      runs.push({ from: active, ms, wallMs, code: r.code, stderr: r.stderr.trim().split('\n').slice(-2).join(' | '), lagRecords: before.replication.headSeq - before.replication.appliedSeq, lagMs: before.replication.lagMs, exactInSync: before.replication.inSync });
      say(`switchover ${i + 1}/${o.switchovers} ${active} → ${other(active)}: exit ${r.code}, ${Number.isNaN(ms) ? '-' : `${ms} ms`} (passive was ${before.replication.headSeq - before.replication.appliedSeq} records, ${before.replication.lagMs} ms behind${before.replication.inSync ? '' : ', not exactly in sync'})`);
      if (r.code !== 0) break;
      active = other(active);
    }
  } finally {
    await ready(active).catch(() => undefined);
  }
  const client = await loop.stop();
  await p.waitIdentical(120_000);
  const acked = client.records.filter((r) => r.ok && r.tag !== undefined).map((r) => Number(r.tag));
  const missing: string[] = [];
  for (const n of acked) {
    for (const node of ['alpha', 'beta'] as const) {
      const f = p.data(node, file(n));
      if (!fs.existsSync(f) || fs.readFileSync(f, 'utf8') !== `write ${n}\n`) missing.push(`${node}:${file(n)}`);
    }
  }
  const v = await tandem(['verify', '-c', p.node('alpha').config, '--json'], 300_000);
  let differences: number | undefined;
  try {
    differences = (JSON.parse(v.stdout) as { differences: number }).differences;
  } catch {
    differences = undefined;
  }
  return { runs, client, acknowledged: acked.length, missing, verifyDifferences: differences, verifyOutput: `${v.stdout}${v.stderr}`.slice(0, 2000), overlaps: overlappingStarts(readScriptsLog(p.info.scriptsLog)) };
}

export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

export function summary(r: SoakReport): string {
  const ok = r.runs.filter((x) => x.code === 0);
  const ms = ok.map((x) => x.ms);
  return [
    `switchovers: ${ok.length} of ${r.runs.length} succeeded without --force; command to confirmed: median ${quantile(ms, 0.5)} ms, p90 ${quantile(ms, 0.9)} ms, max ${Math.max(...ms)} ms`,
    `asked while the passive was not exactly in sync: ${r.runs.filter((x) => !x.exactInSync).length} of ${r.runs.length} (up to ${Math.max(0, ...r.runs.map((x) => x.lagRecords))} records, ${Math.max(0, ...r.runs.map((x) => x.lagMs))} ms behind)`,
    `client: ${r.client.requests} writes at ${r.client.ratePerSecond}/s, ${r.acknowledged} acknowledged, ${r.client.failed} failed (the application stopped during each handover); longest gap ${Math.round(r.client.longestGapMs)} ms`,
    `acknowledged writes missing on either node: ${r.missing.length}; verify differences: ${r.verifyDifferences ?? 'unknown'}; overlapping starts in the scripts log: ${r.overlaps.length}`,
  ].join('\n');
}
