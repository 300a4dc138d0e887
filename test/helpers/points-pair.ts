// A demo pair for the consistency-point tests: alpha protects `alphaRoot` (a btrfs subvolume, or
// a plain directory for the file-level comparison), beta its usual directory; heartbeats and
// presence tuned (250 ms × 4) so that a crashed active is taken over in about a second. With
// helpers for the crash: the status beta showed just before it, and the takeover.
import { TestPair, sleep, type NodeName } from './pair.ts';
import type { AgentStatus } from '../../agent/control/index.ts';

export interface PointsPairOptions {
  /** capture.pointInterval (default the product's). */
  pointInterval?: string;
  /** More changes to both nodes' configs. */
  extra?: (doc: Record<string, any>, node: NodeName) => void;
}

export async function pointsPair(alphaRoot: string, opts: PointsPairOptions = {}): Promise<TestPair> {
  return TestPair.create({
    emptyData: true,
    config: (doc, node) => {
      doc.heartbeat = { interval: '250ms', threshold: 4 };
      doc.links = { public: { targets: [], interval: '250ms', timeout: '200ms', threshold: 3 }, presence: { interval: '100ms', timeout: '250ms' } };
      if (node === 'alpha') doc.protect = [{ name: 'data', path: alphaRoot }];
      if (opts.pointInterval !== undefined) doc.capture = { ...(doc.capture ?? {}), pointInterval: opts.pointInterval };
      opts.extra?.(doc, node);
    },
  });
}

/**
 * Samples a node's status every `everyMs` until stopped: `last()` is the newest sample and when
 * it was asked for, so a test can say what status showed just before a crash.
 */
export function statusSampler(p: TestPair, name: NodeName, everyMs = 100, onSample?: (s: AgentStatus) => void): { last(): { at: number; status: AgentStatus } | undefined; samples(): number[]; stop(): Promise<void> } {
  let last: { at: number; status: AgentStatus } | undefined;
  const rpo: number[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        // When it was asked for: the agent computed its figures after this, so an age in it
        // (rpoMs) plus the time since is an upper bound at any later instant. The time the
        // answer arrived would understate it by the answer's own latency (tens of ms under load).
        const asked = Date.now();
        const status = await p.status(name);
        last = { at: asked, status };
        if (typeof status.replication.rpoMs === 'number') rpo.push(status.replication.rpoMs);
        onSample?.(status);
      } catch {
        // not answering (it may be crashing): keep the last sample
      }
      await sleep(everyMs);
    }
  })();
  return {
    last: () => last,
    /** Every replication.rpoMs seen (a number). */
    samples: () => rpo,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}
