// Incremental catch-up after a channel outage (DESIGN.md goal 4): the channel is cut for 30 s
// while 10,000 changes of known size are made on the active; once it is back, the passive must
// be byte-identical having received at most 1.2 × the bytes changed, with no full-tree hash on
// either side, and say while it catches up that it is not in sync and how much is left. Once
// with a journal that holds the whole outage, once with one that overflows during it.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentStatus } from '../../agent/control/index.ts';
import { planWrites, runWrites, writeBaseTree, type ChangePlanSpec } from '../helpers/change-workload.ts';
import { DEFAULTS, FailoverPair } from '../helpers/failover-pair.ts';
import { sleep, type NodeName } from '../helpers/pair.ts';

let current: FailoverPair | undefined;
afterEach(async () => {
  await current?.cleanup();
  current = undefined;
});

const BLOCK = 4096;
const CUT_MS = 30_000;
/** The changes are made during the first part of the cut, so capture has finished with them before it ends. */
const WRITE_MS = 20_000;

// 6,000 files of 8 KiB; 500 of them get one block overwritten and 11 appended, 500 new files get
// 8 blocks each: 10,000 writes of 4 KiB (39 MiB) touching 1,000 of the 6,500 files.
const SPEC: ChangePlanSpec = {
  base: { files: 6_000, blocks: 2, blockSize: BLOCK },
  existing: { files: 500, overwrites: 1, appends: 11 },
  created: { files: 500, blocks: 8 },
};

interface Figures {
  changes: number;
  bytesChanged: number;
  filesTouched: number;
  treeFiles: number;
  bytesSent: number;
  catchUpMs: number;
  activeFilesHashed: number;
  passiveFilesHashed: number;
  syncs: number;
  behind: AgentStatus['replication'][];
}

/** Files the passive hashed to build its manifest for a synchronisation, from its log, since `since`. */
function passiveRehashed(fp: FailoverPair, since: number): number {
  return fp.pair
    .logLines('beta')
    .filter((l) => l.time >= since && l.msg === 'sync: manifest sent to the active')
    .reduce((n, l) => n + Number(l.rehashed ?? 0), 0);
}

async function outage(journal: Record<string, string> | undefined): Promise<Figures> {
  current = await FailoverPair.create(DEFAULTS, (doc) => {
    doc.blockSize = '4KiB';
    if (journal !== undefined) doc.journal = { ...(doc.journal ?? {}), ...journal };
    // Between the writes and the reconnect nothing may slip in through the periodic scan's timing.
    doc.capture = { ...(doc.capture ?? {}), scanInterval: '10m' };
  });
  const fp = current;
  for (const n of ['alpha', 'beta'] as NodeName[]) for (const e of fs.readdirSync(fp.pair.data(n))) fs.rmSync(path.join(fp.pair.data(n), e), { recursive: true });
  writeBaseTree([fp.pair.data('alpha'), fp.pair.data('beta')], SPEC.base);
  const writes = planWrites(SPEC);
  await fp.pair.startBoth();
  await fp.pair.waitIdentical(120_000);

  const atCut = await fp.pair.status('alpha');
  await fp.cutChannel(true);
  const cutAt = Date.now();
  const changed = await runWrites(fp.pair.data('alpha'), writes, WRITE_MS);
  await sleep(cutAt + CUT_MS - Date.now());
  const a0 = await fp.pair.status('alpha');
  const reconnectAt = Date.now();
  await fp.cutChannel(false);

  // The passive's own account while it catches up.
  const behind: AgentStatus['replication'][] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const b = await fp.pair.status('beta').catch(() => undefined);
      if (b !== undefined && b.peer.connected && !b.replication.inSync) behind.push(b.replication);
      await sleep(100);
    }
  })();
  await fp.pair.waitIdentical(180_000);
  const catchUpMs = Date.now() - reconnectAt;
  sampling = false;
  await sampler;
  const a1 = await fp.pair.status('alpha');
  const syncs = fp.pair.logLines('alpha').filter((l) => l.time >= reconnectAt && /^replication: passive connected, synchronising/.test(String(l.msg))).length;
  return {
    changes: changed.changes,
    bytesChanged: changed.bytesChanged,
    filesTouched: changed.filesTouched,
    treeFiles: SPEC.base.files + SPEC.created.files,
    bytesSent: a1.channel.bytesOut - atCut.channel.bytesOut,
    catchUpMs,
    activeFilesHashed: a1.capture!.filesHashed - a0.capture!.filesHashed,
    passiveFilesHashed: passiveRehashed(fp, reconnectAt),
    syncs,
    behind,
  };
}

function check(what: string, f: Figures): void {
  const last = f.behind.at(-1);
  process.stdout.write(
    `[catch-up] ${what}: ${f.changes} changes, ${f.bytesChanged} bytes changed in ${f.filesTouched} of ${f.treeFiles} files; ` +
      `sent ${f.bytesSent} bytes (${(f.bytesSent / f.bytesChanged).toFixed(3)} ×) in ${(f.catchUpMs / 1000).toFixed(1)} s; ` +
      `files hashed after reconnect: active ${f.activeFilesHashed}, passive ${f.passiveFilesHashed}; synchronisations ${f.syncs}; ` +
      `passive behind in ${f.behind.length} samples, first ${JSON.stringify(f.behind[0])}, last ${JSON.stringify(last)}\n`,
  );
  expect(f.changes).toBe(10_000);
  expect(f.bytesSent).toBeLessThanOrEqual(1.2 * f.bytesChanged);
  // No full-tree hash: at most the files that changed are read again, on either side.
  expect(f.syncs).toBe(0);
  expect(f.activeFilesHashed).toBeLessThanOrEqual(f.filesTouched);
  expect(f.passiveFilesHashed).toBe(0);
  expect(f.activeFilesHashed + f.passiveFilesHashed).toBeLessThan(f.treeFiles / 4);
  // While it caught up, the passive said it was not in sync, and how many bytes were left.
  expect(f.behind.length).toBeGreaterThan(0);
  expect(f.behind.some((r) => (r.catchUp?.bytesLeft ?? 0) > 0)).toBe(true);
}

describe('catch-up after a 30 s channel outage with 10,000 changes', () => {
  it('sends at most 1.2 × the bytes changed and hashes no full tree, the journal holding the whole outage', async () => {
    check('journal holds the outage', await outage(undefined));
  }, 300_000);

  it('does the same when the journal overflows during the outage', async () => {
    const f = await outage({ maxBytes: '8MiB', segmentBytes: '2MiB', batchBytes: '1MiB' });
    check('journal overflowed', f);
    expect(f.bytesChanged).toBeGreaterThan(4 * 8 * 1024 * 1024);
  }, 300_000);
});
