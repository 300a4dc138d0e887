// A large file's blocks journaled as references (docs/journal.md, "Referenced blocks"), then the
// file rewritten before they reached the passive, with the batch no longer in memory: the active
// killed while the passive was stopped. The restarted active cannot send those blocks (the file
// no longer holds them), so it must not send any others in their place: it synchronises, and
// the trees end identical, with the rewrite.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TestPair, until } from '../helpers/pair.ts';
import { killAll } from '../helpers/processes.ts';
import { digestTree, treeDiff } from '../helpers/tree-hash.ts';

let current: TestPair | undefined;
afterEach(async () => {
  await killAll();
  await current?.cleanup();
  current = undefined;
});

const MiB = 2 ** 20;
const FILE_BYTES = 24 * MiB;

function journalBytes(p: TestPair): number {
  const dir = path.join(p.node('alpha').stateDir, 'journal');
  return fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
}

describe('a referenced block whose file changed before it was sent', () => {
  it('is never sent with other bytes: the active synchronises, and both trees end identical', async () => {
    current = await TestPair.create({
      emptyData: true,
      config: (doc) => {
        doc.failover = { ...(doc.failover ?? {}), auto: false };
        doc.verify = { rate: '0' };
        // The passive is stopped (SIGSTOP) while the file is journaled: the active must keep
        // its channel open meanwhile, or it journals the blocks whole (no passive streaming).
        doc.heartbeat = { interval: '2s', threshold: 15 };
      },
    });
    const p = current;
    await p.startBoth();
    await p.waitIdentical(60_000);
    const before = await p.waitFor('alpha', 'streaming', (s) => s.peer.connected && s.replication.inSync);

    p.procs.get('beta')!.kill('SIGSTOP');
    const journalBefore = journalBytes(p);
    const first = crypto.randomBytes(FILE_BYTES);
    fs.writeFileSync(p.data('alpha', 'big.bin'), first);
    // Capture journals the whole file; the stopped passive acknowledges none of it.
    await p.waitFor('alpha', 'the file journaled', (s) => s.capture?.pendingPaths === 0 && s.replication.headSeq > before.replication.headSeq + FILE_BYTES / (64 * 1024), 60_000);
    expect(journalBytes(p) - journalBefore).toBeLessThan(FILE_BYTES / 8); // references, not the bytes

    await p.kill('alpha', 'SIGKILL');
    // Rewritten in place, same size: the references now point at other bytes.
    const second = crypto.randomBytes(FILE_BYTES);
    fs.writeFileSync(p.data('alpha', 'big.bin'), second);
    p.procs.get('beta')!.kill('SIGCONT');
    await p.start('alpha');

    await p.waitIdentical(120_000);
    expect(treeDiff(digestTree(p.data('alpha')), digestTree(p.data('beta')))).toBe('');
    expect(fs.readFileSync(p.data('beta', 'big.bin')).equals(second)).toBe(true);
    const lost = await until('the sender\'s warning', () => p.logLines('alpha').find((l) => l.msg === 'replication: a journaled block is no longer in its file, synchronising'), 10_000);
    expect(lost.err?.code).toBe('TANDEM_ERR_JOURNAL_REF_LOST');
  }, 240_000);
});
