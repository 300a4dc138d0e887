// The agents as processes: resident memory (VmRSS sampled every SAMPLE_INTERVAL_MS, peak per
// phase and overall, and at the end the kernel's own high-water mark VmHWM) and CPU time per
// phase (utime + stime from /proc/PID/stat).
import fs from 'node:fs';
import { nowMs } from './clock.ts';

const SAMPLE_INTERVAL_MS = 200;
/** USER_HZ: the unit of utime/stime in /proc/PID/stat; 100 on every Linux we run on. */
const CLOCK_TICKS_PER_S = 100;

export interface PhaseUsage {
  peakRss: number;
  cpuSeconds: number;
  wallSeconds: number;
}

export interface ProcessReport {
  /** Highest sampled VmRSS, bytes. */
  peakRss: number;
  /** VmHWM read at the end: the true peak, between samples too. */
  hwm: number | null;
  byPhase: Record<string, PhaseUsage>;
  samples: number;
}

/** A field of /proc/PID/status in bytes (kB there), or null when the process is gone. */
export function procStatusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(text);
  return m ? Number(m[1]) * 1024 : null;
}

/** utime + stime from a /proc stat file (of a process or of one thread), seconds, or null when it is gone. */
function statCpuSeconds(file: string): number | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  // The command name may hold spaces and parentheses: fields count from the last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS_PER_S;
}

/** utime + stime of a process (all its threads), seconds, or null when it is gone. */
export function procCpuSeconds(pid: number): number | null {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

/**
 * CPU seconds of a process's main thread (Node's event loop) and of its other threads
 * together (libuv's pool, V8's workers), or null when it is gone.
 */
export function procThreadCpuSeconds(pid: number): { main: number; other: number } | null {
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  const by = { main: 0, other: 0 };
  // A thread that ended meanwhile counts nothing.
  for (const tid of tids) by[tid === String(pid) ? 'main' : 'other'] += statCpuSeconds(`/proc/${pid}/task/${tid}/stat`) ?? 0;
  return by;
}

interface PhaseMark {
  at: number;
  cpu: number;
}

export class ProcessSampler {
  private readonly reports = new Map<string, ProcessReport>();
  private readonly phaseStart = new Map<string, PhaseMark>();
  private timer: NodeJS.Timeout | undefined;
  private phase = 'start';

  constructor(private readonly pids: () => Record<string, number | undefined>) {}

  start(): void {
    this.timer = setInterval(() => this.sample(), SAMPLE_INTERVAL_MS);
    this.timer.unref();
  }

  /** Closes the current phase (CPU, wall time) and opens `name`. */
  setPhase(name: string): void {
    this.sample();
    this.closePhase();
    this.phase = name;
    this.mark();
  }


  private report(name: string): ProcessReport {
    let r = this.reports.get(name);
    if (r === undefined) {
      r = { peakRss: 0, hwm: null, byPhase: {}, samples: 0 };
      this.reports.set(name, r);
    }
    return r;
  }

  private usage(name: string): PhaseUsage {
    const r = this.report(name);
    return (r.byPhase[this.phase] ??= { peakRss: 0, cpuSeconds: 0, wallSeconds: 0 });
  }

  private mark(): void {
    for (const [name, pid] of Object.entries(this.pids())) {
      const cpu = pid === undefined ? null : procCpuSeconds(pid);
      if (cpu !== null) this.phaseStart.set(name, { at: nowMs(), cpu });
    }
  }

  private closePhase(): void {
    for (const [name, pid] of Object.entries(this.pids())) {
      const start = this.phaseStart.get(name);
      const cpu = pid === undefined ? null : procCpuSeconds(pid);
      if (start === undefined || cpu === null) continue;
      const u = this.usage(name);
      u.cpuSeconds += cpu - start.cpu;
      u.wallSeconds += (nowMs() - start.at) / 1000;
    }
  }

  sample(): void {
    for (const [name, pid] of Object.entries(this.pids())) {
      if (pid === undefined) continue;
      const rss = procStatusBytes(pid, 'VmRSS');
      if (rss === null) continue;
      const r = this.report(name);
      r.samples++;
      r.peakRss = Math.max(r.peakRss, rss);
      const u = this.usage(name);
      u.peakRss = Math.max(u.peakRss, rss);
    }
  }

  /** Before the processes are replaced by new ones: keeps their VmHWM and closes the phase. */
  closePair(): void {
    this.sample();
    this.closePhase();
    this.phaseStart.clear();
    this.readHwm();
  }

  private readHwm(): void {
    for (const [name, pid] of Object.entries(this.pids())) {
      const hwm = pid === undefined ? null : procStatusBytes(pid, 'VmHWM');
      const r = this.report(name);
      if (hwm !== null) r.hwm = Math.max(r.hwm ?? 0, hwm);
    }
  }

  /** Takes the last sample, closes the phase and reads VmHWM; call while the processes live. */
  finish(): Record<string, ProcessReport> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.sample();
    this.closePhase();
    this.readHwm();
    return Object.fromEntries(this.reports);
  }
}
