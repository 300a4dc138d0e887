// The benchmark's results as a human reads them: the same sections rendered as aligned text
// for the terminal and as markdown for bench/results/latest.md. Every number comes from the
// results object; the anchors are the only constants, and say so.
import type { OverwriteResult, NewFileResult, RsyncOutcome } from './big-file.ts';
import type { CatchUpResult } from './catch-up.ts';
import type { InitialSyncResult } from './initial-sync.ts';
import type { FailoverResult, FailoverSeries } from './failover-gap.ts';
import type { LagResult } from './lag.ts';
import type { DiskLagResult } from './lag-disk.ts';
import type { MachineInfo } from './machine.ts';
import type { ProcessReport } from './process-sampler.ts';
import type { RsyncAvailability } from './rsync-daemon.ts';
import type { SwitchoverResult } from './switchover.ts';

/** Published defaults of other tools (not measured here): how long they wait before shipping a change. */
export const LAG_ANCHORS = [
  { tool: 'lsyncd', delaySeconds: 15, what: 'default delay' },
  { tool: 'Syncthing', delaySeconds: 10, what: 'default fsWatcherDelayS' },
  { tool: 'Litestream', delaySeconds: 1, what: 'default sync-interval' },
] as const;

/** How long a client waits when the active dies, as published or reported for other tools (not
 *  measured here; DESIGN.md "Goals"). `highMs` for a range. */
export const FAILOVER_ANCHORS = [
  { tool: 'Neverfail', text: '60 s', lowMs: 60_000 },
  { tool: 'Windows failover clustering', text: '10 s', lowMs: 10_000 },
  { tool: 'Convoy/NLB', text: '10–15 s seen', lowMs: 10_000, highMs: 15_000 },
  { tool: 'Pacemaker', text: '3–6.6 s + fencing', lowMs: 3_000, highMs: 6_600 },
  { tool: 'keepalived', text: '~3.5 s', lowMs: 3_500 },
] as const;

/** A planned switchover, command to serving, as documented for another tool (not measured). */
export const SWITCHOVER_ANCHORS = [{ tool: 'Patroni', text: '"< 10 s"', lowMs: 10_000 }] as const;

export interface BenchResults {
  startedAt: string;
  finishedAt: string;
  options: { quick: boolean; only: string[]; encryption: string; tmpfs: boolean; onePair: boolean; fileBytes: number; lagSeconds: number; lagRate: number; trials?: number };
  machine: MachineInfo;
  rsync: RsyncAvailability;
  tandem: { blockSize: number; encryption: string; settleMs: number; batchDelayMs: number; journalMaxBytes: number; windowBytes: number };
  lag: LagResult | null;
  /** (a)'s reference: the same load mirrored by a plain process with write + fsync (bench/lag-disk.ts). */
  lagDisk?: DiskLagResult[];
  newFile: NewFileResult | null;
  overwrite: OverwriteResult | null;
  failover?: FailoverResult | null;
  switchover?: SwitchoverResult | null;
  /** (o): rendered on its own into results/catchup.md (bench/catch-up.ts). */
  catchUp?: CatchUpResult | null;
  /** (e): rendered on its own into results/initial-sync.md (bench/initial-sync.ts). */
  initialSync?: InitialSyncResult | null;
  memory: Record<string, ProcessReport>;
  agentWarnings: Record<string, { count: number; first: string[] }>;
  /** Parts that failed, with why: they have no numbers. */
  failures: Partial<Record<'a' | 'b' | 'c' | 'e' | 'o' | 'f' | 's' | 'v' | 'z' | 'u' | 'i', string>>;
  notes: string[];
}

interface Table {
  headers: string[];
  rows: string[][];
  /** Columns aligned right (numbers). */
  right?: number[];
}

interface Section {
  title: string;
  lines: string[];
  table?: Table;
  after?: string[];
}

export function fmtBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export function fmtSeconds(s: number): string {
  if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 2 : s < 0.1 ? 1 : 0)} ms`;
  return `${s.toFixed(s < 10 ? 2 : 1)} s`;
}

function fmtMs(ms: number): string {
  return fmtSeconds(ms / 1000);
}

function ratio(a: number, b: number): string {
  return b > 0 ? `${(a / b).toFixed(2)}×` : '-';
}

/** "0.52×" against one anchor value, "0.35–0.52×" against a range (the ratio to each end). */
function ratioTo(ms: number, a: { lowMs: number; highMs?: number }): string {
  if (a.highMs === undefined) return ratio(ms, a.lowMs);
  return `${(ms / a.highMs).toFixed(2)}–${(ms / a.lowMs).toFixed(2)}×`;
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const msOrDash = (x: number | null | undefined) => (x === null || x === undefined ? '-' : fmtMs(x));
const atOrDash = (x: number | null | undefined) => (x === null || x === undefined ? '-' : `${(x / 1000).toFixed(2)}`);

function seriesLabel(s: FailoverSeries): string {
  return `${s.name} (${s.interval} × ${s.threshold})`;
}

function failoverSections(f: FailoverResult): Section[] {
  const rows: string[][] = [];
  for (const s of f.series) {
    for (const t of s.trials) {
      const tl = t.timeline;
      rows.push([
        seriesLabel(s),
        String(t.trial),
        fmtMs(t.longestGapMs),
        `${t.failed} / ${t.requests}`,
        atOrDash(t.killToNewMs),
        atOrDash(tl.channelLostMs),
        atOrDash(tl.presenceGoneMs),
        String(t.presenceRestarts),
        atOrDash(tl.promoteMs),
        atOrDash(tl.startBeginMs),
        atOrDash(tl.startOkMs),
        msOrDash(t.startScriptMs),
      ]);
    }
  }
  const perTrial: Section = {
    title: '(f) Failover: the active server dies (agent and application SIGKILLed together)',
    lines: [],
    table: {
      headers: ['timing', 'trial', 'longest gap', 'failed / sent', 'beta answers', 'channel lost', 'presence: gone', 'presence restarts', 'promote', 'start begin', 'start ok', 'start script'],
      rows,
      right: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
    },
    after: [
      `Client: ${f.clientRate} GET/s on a fixed grid, a new connection each, ${f.clientTimeoutMs} ms timeout (test/helpers/client-loop.ts). Longest gap = longest time between two successful answers: from alpha's last answer before the kill to beta's first. Failed = requests without a 2xx answer (connection refused while nothing listens, timeouts).`,
      'Columns "beta answers" to "start ok": seconds after the kill. "beta answers": the first successful answer served by beta, seen by the client. The next four come from beta\'s agent log: the channel to alpha lost, the presence probe first saying alpha\'s agent is gone (dead/unreachable), and the decision to promote; "start begin"/"start ok" and "start script" (begin → ok) from the pair\'s scripts log.',
      'Presence restarts: times beta\'s presence verdict left "gone" between its first "gone" and the promotion. A passive promotes only once the channel is down AND the presence has said "gone" for interval × threshold without a break, so each restart begins the wait again.',
    ],
  };

  const sum: string[][] = [];
  const ser = f.series;
  sum.push(['median / max longest gap', ...ser.map((s) => (s.medianGapMs === null ? '-' : `${fmtMs(s.medianGapMs)} / ${fmtMs(s.maxGapMs!)}`))]);
  sum.push([
    'goal',
    ...ser.map((s) => (s.medianGapMs === null ? `< ${fmtMs(s.goalMs)}` : `< ${fmtMs(s.goalMs)}: median ${ratio(s.medianGapMs, s.goalMs)}, max ${ratio(s.maxGapMs!, s.goalMs)} (${s.maxGapMs! < s.goalMs ? 'met in every trial' : s.medianGapMs < s.goalMs ? 'median met, not every trial' : 'missed'})`)),
  ]);
  for (const a of FAILOVER_ANCHORS) sum.push([`${a.tool} ${a.text}`, ...ser.map((s) => (s.medianGapMs === null ? '-' : `median ${ratioTo(s.medianGapMs, a)}`))]);
  const parts = ser.map((s) => {
    const ok = s.trials.filter((t) => t.killToNewMs !== null);
    const promote = median(ok.flatMap((t) => (t.timeline.promoteMs === null ? [] : [t.timeline.promoteMs])));
    const gone = median(ok.flatMap((t) => (t.timeline.presenceGoneMs === null ? [] : [t.timeline.presenceGoneMs])));
    const script = median(ok.flatMap((t) => (t.startScriptMs === null ? [] : [t.startScriptMs])));
    const toBegin = median(ok.flatMap((t) => (t.timeline.promoteMs === null || t.timeline.startBeginMs === null ? [] : [t.timeline.startBeginMs - t.timeline.promoteMs])));
    const restarts = ok.reduce((n, t) => n + t.presenceRestarts, 0);
    const clean = ok.filter((t) => t.presenceRestarts === 0 && t.timeline.promoteMs !== null).map((t) => t.timeline.promoteMs!);
    return (
      `${seriesLabel(s)}: detection = interval × threshold = ${fmtMs(s.thresholdMs)}; the presence probe said "gone" ${gone === null ? '?' : fmtMs(gone)} after the kill (median), the promotion came at ${promote === null ? '?' : fmtMs(promote)} (median; ${clean.length > 0 ? `${fmtMs(Math.min(...clean))}–${fmtMs(Math.max(...clean))} in the trials without a presence restart` : 'no trial without a presence restart'}); ${restarts} presence restart(s) over ${ok.length} trial(s); promotion → start begin ${toBegin === null ? '?' : fmtMs(toBegin)}; start script ${script === null ? '?' : fmtMs(script)} (median).`
    );
  });
  const flaps = ser.flatMap((s) => s.trials.filter((t) => t.presenceFlaps.length > 0).map((t) => `${s.name} trial ${t.trial}: ${t.presenceFlaps.slice(0, 3).join('; ')}${t.presenceFlaps.length > 3 ? ` (+${t.presenceFlaps.length - 3})` : ''}`));
  const summary: Section = {
    title: '(f) Failover: longest client-visible gap against the goal and the anchors',
    lines: [],
    table: { headers: ['', ...ser.map(seriesLabel)], rows: sum },
    after: [
      'Ratios: Tandem\'s gap divided by the goal or the anchor (below 1× = shorter). The anchors are other tools\' published or reported figures, not measured here.',
      'What the gap is made of:',
      ...parts,
      ...(flaps.length > 0 ? [`Presence restarts seen (ms after the kill: new verdict (reason)): ${flaps.join(' | ')}`] : []),
    ],
  };
  return [perTrial, summary];
}

function switchoverSection(s: SwitchoverResult): Section {
  const rows = s.trials.map((t) => [
    String(t.trial),
    `${t.from} → ${t.to}`,
    t.httpStatus === null ? 'no answer' : `HTTP ${t.httpStatus}`,
    msOrDash(t.answerMs),
    msOrDash(t.newNodeMs),
    fmtMs(t.longestGapMs),
    `${t.failed} / ${t.requests}`,
    `${atOrDash(t.timeline.stopBeginMs)} → ${atOrDash(t.timeline.stopOkMs)}`,
    `${atOrDash(t.timeline.startBeginMs)} → ${atOrDash(t.timeline.startOkMs)}`,
  ]);
  const after: string[] = [
    `Pair: heartbeat ${s.interval} × ${s.threshold} (the defaults); the client loop as in (f). "command → 200": POST /v1/switchover sent to the active's control API (x-tandem-token: the control token of the pair key) until its answer is read. "command → new node": until the first successful answer served by the other node. Stop and start: seconds after the command, from the scripts log (the old active's stop, the new active's start).`,
  ];
  if (s.medianNewNodeMs !== null) {
    after.push(
      `Command → serving from the new node: median ${fmtMs(s.medianNewNodeMs)}, max ${fmtMs(s.maxNewNodeMs!)}; goal < ${fmtMs(s.goalMs)}: median ${ratio(s.medianNewNodeMs, s.goalMs)}, max ${ratio(s.maxNewNodeMs!, s.goalMs)} (${s.maxNewNodeMs! < s.goalMs ? 'met in every trial' : 'missed'}); ${SWITCHOVER_ANCHORS.map((a) => `${a.tool} ${a.text}: ${ratioTo(s.medianNewNodeMs!, a)}`).join(', ')} (not measured).`,
    );
  }
  if (s.medianAnswerMs !== null) after.push(`The 200 answer came after ${fmtMs(s.medianAnswerMs)} (median): "${s.trials.find((t) => t.httpStatus === 200)?.message ?? ''}". It says the role moved, not that the new node serves yet: compare with the start columns.`);
  const scripts = s.trials.filter((t) => t.startScriptMs !== null && t.stopScriptMs !== null);
  if (scripts.length > 0) after.push(`Stop script ${fmtMs(median(scripts.map((t) => t.stopScriptMs!))!)}, start script ${fmtMs(median(scripts.map((t) => t.startScriptMs!))!)} (medians): the gap is mostly the demo application starting on the new node.`);
  const warned = s.trials.filter((t) => t.warnings.count > 0);
  if (warned.length > 0) after.push(`Agents' warn/error lines during the switchovers: ${warned.map((t) => `trial ${t.trial}: ${t.warnings.count} (${t.warnings.first.join(' | ')})`).join('; ')}`);
  return {
    title: '(s) Switchover: command to serving',
    lines: [],
    table: { headers: ['trial', 'direction', 'answer', 'command → 200', 'command → new node', 'longest gap', 'failed / sent', 'stop (s)', 'start (s)'], rows, right: [3, 4, 5, 6] },
    after,
  };
}

function blocksTouched(offset: number, length: number, blockSize: number): number {
  return Math.floor((offset + length - 1) / blockSize) - Math.floor(offset / blockSize) + 1;
}

function sections(r: BenchResults): Section[] {
  const out: Section[] = [];
  const m = r.machine;
  out.push({
    title: 'Setup',
    lines: [
      `machine   ${m.cpus} CPUs (${m.cpuModel}), ${fmtBytes(m.memoryBytes)} RAM, ${m.kernel}, Node ${m.node}, rsync ${r.rsync.available ? `${r.rsync.version} (${r.rsync.note})` : r.rsync.note}`,
      `temp dir  ${m.tempDir}: ${m.disk}`,
      `tandem    blockSize ${fmtBytes(r.tandem.blockSize)}, channel.encryption ${r.tandem.encryption}, capture.settle ${r.tandem.settleMs} ms, journal.batchDelay ${r.tandem.batchDelayMs} ms, journal.maxBytes ${fmtBytes(r.tandem.journalMaxBytes)}, channel.windowBytes ${fmtBytes(r.tandem.windowBytes)}; all else product defaults`,
      `run       ${[
        r.options.quick ? 'quick' : 'full',
        `parts ${r.options.only.join(', ')}`,
        ...(r.options.only.includes('b') || r.options.only.includes('c') ? [`big file ${fmtBytes(r.options.fileBytes)}`] : []),
        ...(r.options.only.includes('a') ? [`lag load ${r.options.lagRate} files/s for ${r.options.lagSeconds} s`] : []),
        ...(r.options.trials !== undefined && (r.options.only.includes('f') || r.options.only.includes('s')) ? [`${r.options.trials} trial(s) per timing in (f), ${r.options.trials} in (s)`] : []),
        `started ${r.startedAt}`,
      ].join('; ')}`,
      ...(r.failover || r.switchover
        ? [
            `(f)(s)    fresh pairs of test/helpers/failover-pair.ts: TCP proxies on the channel, presence and public links, a local gateway as the public check target; heartbeat.interval × threshold as shown, links.public / links.presence as that helper sets them for the interval (1 s: 1 s / 500 ms, faster: 250 ms / 100 ms); all else product defaults; the demo application on 127.0.0.100`,
          ]
        : []),
    ],
  });

  const l = r.lag;
  if (l !== null) {
    const lagRow = (label: string, v: string) => [label, v];
    const rows: string[][] = [
      lagRow('load', `${fmtInt(l.written)} files of 1-4 KiB (${fmtBytes(l.bytesWritten)}) in ${l.dirCount} directories, ${l.achievedRate.toFixed(1)} files/s over ${l.writeSeconds.toFixed(2)} s`),
      lagRow('writer pacing', `late against its schedule by p50 ${fmtMs(l.writerLatenessMs.p50)}, p99 ${fmtMs(l.writerLatenessMs.p99)}, max ${fmtMs(l.writerLatenessMs.max)}`),
      lagRow('arrived on passive', `${fmtInt(l.arrived)} of ${fmtInt(l.written)} ${l.allArrived ? '(all, content checked)' : '(NOT ALL)'}`),
    ];
    if (l.lagMs !== null) {
      rows.push(lagRow('lag p50 / p99 / max', `${fmtMs(l.lagMs.p50)} / ${fmtMs(l.lagMs.p99)} / ${fmtMs(l.lagMs.max)}   (p90 ${fmtMs(l.lagMs.p90)}, mean ${fmtMs(l.lagMs.mean)}, over 100 ms: ${fmtInt(l.over100ms)})`));
    }
    const c = l.cold ?? null;
    if (c !== null) {
      rows.push(
        lagRow(
          `cold pass before it (${c.seconds} s)`,
          c.lagMs === null
            ? `nothing arrived (${fmtInt(c.arrived)} of ${fmtInt(c.written)})`
            : `lag p50 / p99 / max ${fmtMs(c.lagMs.p50)} / ${fmtMs(c.lagMs.p99)} / ${fmtMs(c.lagMs.max)}, over 100 ms: ${fmtInt(c.over100ms)}; ${fmtInt(c.arrived)} of ${fmtInt(c.written)} arrived (the agents' first burst after they started; the measured pass follows it)`,
        ),
      );
    }
    const st = l.stages;
    const sec = (x: number | null) => (x === null ? 'not seen' : `${x.toFixed(2)} s`);
    rows.push(
      lagRow(
        'agents\' own view',
        `capture journaled the last file ${sec(st.journaledAllAfterS)} after the first write, the passive acknowledged it at ${sec(st.acknowledgedAllAfterS)}; capture read ${fmtInt(st.filesHashed)} files (${(st.filesHashed / l.written).toFixed(2)} per file written); peak ${fmtInt(st.peakPendingPaths)} paths pending in capture, ${fmtBytes(st.peakQueueBytes)} journaled but unacknowledged (status sampled every ${st.intervalMs} ms)`,
      ),
    );
    rows.push(lagRow('anchors (not measured)', LAG_ANCHORS.map((a) => `${a.tool} ${a.delaySeconds} s (${a.what})`).join(', ')));
    rows.push(lagRow('wire bytes', `${fmtBytes(l.wireBytes)} (alpha channel in + out, incl. framing${r.tandem.encryption === 'tls-psk' ? ' and TLS' : ''})`));
    rows.push(lagRow('poller CPU', `${(l.pollerCpuMs / 1000).toFixed(2)} s = ${l.pollerCpuPercent.toFixed(1)} % of one core; ${fmtInt(l.foundByScan)} files seen first by its 50 ms scan, the rest through inotify`));
    for (const d of r.lagDisk ?? []) {
      const how = d.mode === 'each' ? 'one file at a time' : 'group commit';
      rows.push(
        lagRow(
          `disk alone (${how})`,
          d.lagMs === null
            ? `nothing arrived (${fmtInt(d.arrived)} of ${fmtInt(d.written)})`
            : `lag p50 / p99 / max ${fmtMs(d.lagMs.p50)} / ${fmtMs(d.lagMs.p99)} / ${fmtMs(d.lagMs.max)}, over 100 ms: ${fmtInt(d.over100ms)}; ${fmtInt(d.arrived)} of ${fmtInt(d.written)} arrived; ${fmtInt(d.fsyncs)} fsyncs in ${fmtInt(d.rounds)} rounds; writer late p99 ${fmtMs(d.writerLatenessMs.p99)}`,
        ),
      );
    }
    out.push({ title: '(a) Replication lag: written on the active -> complete on the passive', lines: [], table: { headers: ['', ''], rows } });
  }

  const b = r.newFile;
  const c = r.overwrite;
  if (b !== null || c !== null) {
    const rsyncNA = r.rsync.available ? 'skipped' : 'not installed';
    const rows: string[][] = [];
    const rsyncCells = (o: RsyncOutcome | null, tandem: number): string[] =>
      o === null
        ? [rsyncNA, rsyncNA, '-', '-']
        : [fmtSeconds(o.run.seconds), fmtSeconds(o.run.seconds + o.run.syncSeconds), ratio(tandem, o.run.seconds), ratio(tandem, o.run.seconds + o.run.syncSeconds)];
    if (b !== null) {
      rows.push([`(b) new ${fmtBytes(b.size)} file: time`, fmtSeconds(b.tandem.seconds), ...rsyncCells(b.rsync, b.tandem.seconds)]);
      rows.push([`(b) new ${fmtBytes(b.size)} file: wire bytes`, fmtBytes(b.tandem.wireBytes), b.rsync === null ? rsyncNA : fmtBytes(b.rsync.run.wireBytes), '', b.rsync === null ? '-' : ratio(b.tandem.wireBytes, b.rsync.run.wireBytes), '']);
      rows.push([`(b) throughput`, `${(b.size / 2 ** 20 / b.tandem.seconds).toFixed(0)} MiB/s`, b.rsync === null ? rsyncNA : `${(b.size / 2 ** 20 / b.rsync.run.seconds).toFixed(0)} MiB/s`, b.rsync === null ? '-' : `${(b.size / 2 ** 20 / (b.rsync.run.seconds + b.rsync.run.syncSeconds)).toFixed(0)} MiB/s`, '', '']);
    }
    if (c !== null) {
      rows.push([`(c) ${fmtBytes(c.patchBytes)} overwritten: time`, fmtSeconds(c.tandem.seconds), ...rsyncCells(c.rsync, c.tandem.seconds)]);
      rows.push([`(c) ${fmtBytes(c.patchBytes)} overwritten: wire bytes`, fmtBytes(c.tandem.wireBytes), c.rsync === null ? rsyncNA : fmtBytes(c.rsync.run.wireBytes), '', c.rsync === null ? '-' : ratio(c.tandem.wireBytes, c.rsync.run.wireBytes), '']);
    }
    const after: string[] = [
      'Tandem time: from the start of the write on the active until the active holds the passive\'s acknowledgement, which Tandem gives only for data fsynced on the passive.',
      'rsync time: `rsync -a --stats` to an rsync daemon on 127.0.0.1; "rsync + sync" adds the `sync` that makes its copy durable (rsync itself does not fsync). Ratios above 1× mean Tandem took longer (or sent more).',
      `Wire bytes: Tandem = alpha's channel bytesOut + bytesIn delta (payload plus framing${r.tandem.encryption === 'tls-psk' ? ' and TLS' : ''}, acknowledgements and heartbeats in the window; no TCP/IP headers); rsync = "Total bytes sent" + "Total bytes received" of --stats.`,
    ];
    if (b !== null) {
      after.push(`(b) the \`cp\` alone took ${fmtSeconds(b.tandem.cpSeconds)}; capture had journaled the whole file at ${b.tandem.journaledSeconds === null ? '?' : fmtSeconds(b.tandem.journaledSeconds)}; the acknowledgement came ${fmtSeconds(b.tandem.seconds - b.tandem.cpSeconds)} after the cp ended. Heartbeat: ${b.tandem.heartbeat === null ? 'not read' : `the longest silence either agent saw was ${b.tandem.heartbeat.longestGapMs} ms (heartbeat every ${b.tandem.heartbeat.intervalMs} ms, channel down after ${b.tandem.heartbeat.intervalMs * b.tandem.heartbeat.threshold} ms)`}. Passive copy ${b.tandem.verified ? 'verified (sha256)' : 'NOT verified'}${b.rsync === null ? '' : `; rsync copy ${b.rsync.verified ? 'verified (sha256)' : 'NOT verified'}, its sync took ${fmtSeconds(b.rsync.run.syncSeconds)}`}.${b.tandem.sawJournalFull ? ' Capture waited for journal space (journal.maxBytes) during the copy.' : ''}`);
    }
    if (c !== null) {
      const target = 2 * r.tandem.blockSize;
      after.push(
        `(c) ${c.patchBytes} bytes written at offset ${fmtInt(c.tandem.offset)} (${blocksTouched(c.tandem.offset, c.patchBytes, r.tandem.blockSize)} block(s) of ${fmtBytes(r.tandem.blockSize)}); capture had journaled the change at ${c.tandem.journaledSeconds === null ? '?' : fmtSeconds(c.tandem.journaledSeconds)}; the new bytes could be read in the passive's file after ${c.tandem.visibleSeconds === null ? '(not seen before the acknowledgement)' : fmtSeconds(c.tandem.visibleSeconds)}. Target: at most 2 × blockSize = ${fmtBytes(target)} of payload; measured ${fmtBytes(c.tandem.wireBytes)} on the wire, ${c.tandem.wireBytes <= target ? 'within' : 'above'} it even counting the overhead. Passive ${c.tandem.verified ? 'identical to the active (compared byte for byte)' : 'NOT identical'}.`,
      );
      if (c.rsync !== null) {
        after.push(`(c) rsync: literal data ${c.rsync.run.literalBytes === null ? '?' : fmtBytes(c.rsync.run.literalBytes)}, matched ${c.rsync.run.matchedBytes === null ? '?' : fmtBytes(c.rsync.run.matchedBytes)}; it reads the whole file on both sides and writes a new copy on the receiver (its sync took ${fmtSeconds(c.rsync.run.syncSeconds)}). Destination ${c.rsync.verified ? 'identical' : 'NOT identical'}.`);
      }
    }
    out.push({
      title: '(b)(c) Big file: Tandem against rsync',
      lines: [],
      table: { headers: ['measure', 'Tandem', 'rsync', 'rsync + sync', 'Tandem/rsync', 'Tandem/(rsync+sync)'], rows, right: [1, 2, 3, 4, 5] },
      after,
    });
  }

  const mem = Object.entries(r.memory);
  if (mem.length > 0) {
    const phases = [...new Set(mem.flatMap(([, x]) => Object.keys(x.byPhase)))];
    const label: Record<string, string> = { start: 'initial sync', a: '(a) lag load', prepare: 'writing the source file', b: '(b) new big file + rsync', c: '(c) overwrite + rsync' };
    const rows = phases.map((p) => {
      const wall = Math.max(...mem.map(([, x]) => x.byPhase[p]?.wallSeconds ?? 0));
      return [
        label[p] ?? p,
        fmtSeconds(wall),
        ...mem.flatMap(([, x]) => {
          const u = x.byPhase[p];
          return u === undefined ? ['-', '-'] : [fmtBytes(u.peakRss), `${u.cpuSeconds.toFixed(2)} s (${u.wallSeconds > 0 ? ((100 * u.cpuSeconds) / u.wallSeconds).toFixed(0) : '-'} %)`];
        }),
      ];
    });
    rows.push(['whole run: peak RSS (VmHWM)', '', ...mem.flatMap(([, x]) => [x.hwm === null ? '?' : fmtBytes(x.hwm), ''])]);
    out.push({
      title: '(d) Agent memory and CPU',
      lines: [],
      table: {
        headers: ['phase', 'wall', ...mem.flatMap(([name]) => [`${name} max RSS`, `${name} CPU (% of one core)`])],
        rows,
        right: [1, ...mem.flatMap((_, i) => [2 + 2 * i, 3 + 2 * i])],
      },
      after: [
        `Max RSS: VmRSS sampled every 200 ms (${mem.map(([n, x]) => `${n} ${x.samples} samples`).join(', ')}); VmHWM is the kernel's high-water mark, read at the end of the run. CPU: utime + stime from /proc/PID/stat. The phases of (b) and (c) include the rsync runs, where the agents idle.`,
      ],
    });
  }

  if (r.failover) out.push(...failoverSections(r.failover));
  if (r.switchover) out.push(switchoverSection(r.switchover));

  const warn = Object.entries(r.agentWarnings).filter(([, w]) => w.count > 0);
  const failed = Object.entries(r.failures);
  if (warn.length > 0 || r.notes.length > 0 || failed.length > 0) {
    out.push({
      title: 'Notes',
      lines: [...failed.map(([part, why]) => `(${part}) FAILED, no numbers: ${why}`), ...r.notes, ...warn.map(([name, w]) => `${name} logged ${w.count} warning/error line(s), e.g.: ${w.first.join(' | ')}`)],
    });
  }
  return out;
}

function pad(s: string, width: number, right: boolean): string {
  const n = [...s].length;
  return right ? ' '.repeat(Math.max(0, width - n)) + s : s + ' '.repeat(Math.max(0, width - n));
}

function textTable(t: Table): string[] {
  const widths = t.headers.map((h, i) => Math.max([...h].length, ...t.rows.map((r) => [...(r[i] ?? '')].length)));
  const right = new Set(t.right ?? []);
  const line = (cells: string[]) => cells.map((c, i) => pad(c, widths[i]!, right.has(i))).join('   ').trimEnd();
  const out: string[] = [];
  if (t.headers.some((h) => h !== '')) {
    out.push(line(t.headers));
    out.push(widths.map((w) => '-'.repeat(w)).join('   '));
  }
  for (const r of t.rows) out.push(line(r));
  return out;
}

export function renderText(r: BenchResults): string {
  const out: string[] = [`Tandem benchmark (${r.options.quick ? 'quick' : 'full'} run)`, ''];
  for (const s of sections(r)) {
    out.push(s.title, ...s.lines.map((l) => `  ${l}`));
    if (s.table !== undefined) out.push(...textTable(s.table).map((l) => `  ${l}`));
    if (s.after !== undefined) out.push(...s.after.map((l) => `  * ${l}`));
    out.push('');
  }
  return out.join('\n');
}

const mdCell = (s: string) => s.replace(/\|/g, '\\|');

export function renderMarkdown(r: BenchResults): string {
  const out: string[] = [`# Tandem benchmark (${r.options.quick ? 'quick' : 'full'} run, ${r.startedAt})`, '', 'Written by `npm run bench`; every number below was measured in that run except the anchors, which are other tools\' documented defaults or published figures.', ''];
  for (const s of sections(r)) {
    out.push(`## ${s.title}`, '');
    for (const l of s.lines) out.push(`- ${mdCell(l)}`);
    if (s.lines.length > 0) out.push('');
    if (s.table !== undefined) {
      const t = s.table;
      const headers = t.headers.every((h) => h === '') ? t.headers.map((_, i) => (i === 0 ? 'measure' : 'value')) : t.headers;
      const right = new Set(t.right ?? []);
      out.push(`| ${headers.map(mdCell).join(' | ')} |`);
      out.push(`|${headers.map((_, i) => (right.has(i) ? '---:' : '---')).join('|')}|`);
      for (const row of t.rows) out.push(`| ${row.map(mdCell).join(' | ')} |`);
      out.push('');
    }
    if (s.after !== undefined) {
      for (const l of s.after) out.push(`- ${l}`);
      out.push('');
    }
  }
  return out.join('\n');
}
