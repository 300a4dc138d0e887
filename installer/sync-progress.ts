// The initial synchronisation as install secondary shows it: a bar with bytes, rate and ETA,
// from the secondary's own status (replication.sync). Pure: it reads status documents and
// times, and says what to print and whether the pair is in sync.
import type { AgentStatus } from '../agent/control/index.ts';
import { formatBytes } from '../shared/sizes.ts';

export interface ProgressView {
  /** One line, no newline. */
  line: string;
  /** Connected, nothing left to synchronise, in sync. */
  done: boolean;
}

const BAR = 24;

export class SyncProgress {
  private last: { at: number; bytes: number } | undefined;
  private rate = 0;

  constructor(private readonly peer: string) {}

  /** What to show for the secondary's status at `now` (undefined: its agent does not answer). */
  view(s: AgentStatus | undefined, now: number): ProgressView {
    if (s === undefined) return { line: 'waiting for this node\'s agent to answer…', done: false };
    if (!s.peer.connected) return { line: `waiting for ${this.peer}: not connected yet (its agent must run, and the channel be open both ways)`, done: false };
    const sync = s.replication.sync;
    if (sync === null) {
      if (s.replication.inSync) return { line: `in sync with ${this.peer}`, done: true };
      const c = s.replication.catchUp;
      return { line: c === null ? `connected to ${this.peer}; catching up (applied ${s.replication.appliedSeq} of ${s.replication.headSeq})` : `connected to ${this.peer}; catching up: ${formatBytes(c.bytesLeft)} and ${c.pathsLeft} paths left`, done: false };
    }
    if (this.last !== undefined && now > this.last.at && sync.bytesDone >= this.last.bytes) {
      const r = ((sync.bytesDone - this.last.bytes) * 1000) / (now - this.last.at);
      // Smoothed: one slow poll must not make the ETA jump.
      this.rate = this.rate === 0 ? r : 0.7 * this.rate + 0.3 * r;
    }
    this.last = { at: now, bytes: sync.bytesDone };
    const frac = sync.bytesTotal > 0 ? Math.min(1, sync.bytesDone / sync.bytesTotal) : 0;
    const filled = Math.round(frac * BAR);
    const eta = sync.etaMs !== null ? Math.round(sync.etaMs / 1000) : this.rate > 0 ? Math.round((sync.bytesTotal - sync.bytesDone) / this.rate) : undefined;
    return {
      line: `[${'#'.repeat(filled)}${'-'.repeat(BAR - filled)}] ${(frac * 100).toFixed(1)}%  ${formatBytes(sync.bytesDone)} of ${formatBytes(sync.bytesTotal)}  ${formatBytes(this.rate)}/s  ETA ${eta === undefined ? '?' : `${eta} s`}`,
      done: false,
    };
  }
}
