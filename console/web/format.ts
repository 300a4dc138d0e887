// How the console writes figures and times for people. Pure: no DOM, so the tests run it in Node.
import { formatBytes } from '../../shared/sizes.ts';

export { formatBytes };

/** "350 ms", "4.2 s", "3 min 5 s", "2 h 10 min". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  const a = Math.abs(ms);
  if (a < 1000) return `${Math.round(ms)} ms`;
  if (a < 60_000) return `${(ms / 1000).toFixed(a < 10_000 ? 1 : 0)} s`;
  const s = Math.round(a / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 === 0 ? '' : ` ${s % 60} s`}`;
  const m = Math.round(s / 60);
  if (m < 48 * 60) return `${Math.floor(m / 60)} h${m % 60 === 0 ? '' : ` ${m % 60} min`}`;
  return `${Math.round(m / 1440)} days`;
}

/** A round-trip: "0.42 ms", "12 ms"; "-" when unknown. */
export function formatRtt(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';
  return ms < 10 ? `${ms.toFixed(2)} ms` : `${Math.round(ms)} ms`;
}

export function formatRate(bytesPerSecond: number | null | undefined): string {
  if (bytesPerSecond === null || bytesPerSecond === undefined || !Number.isFinite(bytesPerSecond)) return '-';
  return `${formatBytes(Math.max(0, Math.round(bytesPerSecond)))}/s`;
}

export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** "12 s ago", "5 min ago"; "just now" under a second. */
export function ago(at: number, now: number): string {
  const ms = now - at;
  if (ms < 1000) return 'just now';
  return `${formatDuration(ms)} ago`;
}

/** Local wall-clock time of day, "14:03:27". */
export function timeOfDay(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** "2026-01-05 14:03:27" in local time. */
export function dateTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${timeOfDay(ms)}`;
}

export function percent(done: number, total: number): number {
  if (!(total > 0)) return 0;
  return Math.max(0, Math.min(100, (100 * done) / total));
}
