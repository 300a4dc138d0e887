// The benchmark's results as a human reads them: the same sections rendered as aligned text
// for the terminal and as markdown for bench/results/latest.md. Every number comes from the
// results object; the anchors are the only constants, and say so.
import type { OverwriteResult, NewFileResult, RsyncOutcome } from './big-file.ts';
import type { LagResult } from './lag.ts';
import type { MachineInfo } from './machine.ts';
import type { ProcessReport } from './process-sampler.ts';
import type { RsyncAvailability } from './rsync-daemon.ts';

/** Published defaults of other tools (not measured here): how long they wait before shipping a change. */
export const LAG_ANCHORS = [
  { tool: 'lsyncd', delaySeconds: 15, what: 'default delay' },
  { tool: 'Syncthing', delaySeconds: 10, what: 'default fsWatcherDelayS' },
  { tool: 'Litestream', delaySeconds: 1, what: 'default sync-interval' },
] as const;

export interface BenchResults {
  startedAt: string;
  finishedAt: string;
  options: { quick: boolean; only: string[]; encryption: string; tmpfs: boolean; onePair: boolean; fileBytes: number; lagSeconds: number; lagRate: number };
  machine: MachineInfo;
  rsync: RsyncAvailability;
  tandem: { blockSize: number; encryption: string; settleMs: number; batchDelayMs: number; journalMaxBytes: number; windowBytes: number };
  lag: LagResult | null;
  newFile: NewFileResult | null;
  overwrite: OverwriteResult | null;
  memory: Record<string, ProcessReport>;
  agentWarnings: Record<string, { count: number; first: string[] }>;
  /** Parts that failed, with why: they have no numbers. */
  failures: Partial<Record<'a' | 'b' | 'c', string>>;
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
      `run       ${r.options.quick ? 'quick' : 'full'}; parts ${r.options.only.join(', ')}; big file ${fmtBytes(r.options.fileBytes)}; lag load ${r.options.lagRate} files/s for ${r.options.lagSeconds} s; started ${r.startedAt}`,
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
      after.push(`(b) the \`cp\` alone took ${fmtSeconds(b.tandem.cpSeconds)}; capture had journaled the whole file at ${b.tandem.journaledSeconds === null ? '?' : fmtSeconds(b.tandem.journaledSeconds)}; the acknowledgement came ${fmtSeconds(b.tandem.seconds - b.tandem.cpSeconds)} after the cp ended. Passive copy ${b.tandem.verified ? 'verified (sha256)' : 'NOT verified'}${b.rsync === null ? '' : `; rsync copy ${b.rsync.verified ? 'verified (sha256)' : 'NOT verified'}, its sync took ${fmtSeconds(b.rsync.run.syncSeconds)}`}.${b.tandem.sawJournalFull ? ' Capture waited for journal space (journal.maxBytes) during the copy.' : ''}`);
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
  const out: string[] = [`# Tandem benchmark (${r.options.quick ? 'quick' : 'full'} run, ${r.startedAt})`, '', 'Written by `npm run bench`; every number below was measured in that run except the anchors, which are the other tools\' documented defaults.', ''];
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
