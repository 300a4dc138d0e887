// The receiver answers a manifest request (the start of a synchronisation) once nothing more may
// be applied. That wait must not depend on how many microtasks the apply loop's promise takes
// to settle after the loop ended: it once did, and a request that came in between was never
// answered (found with one more await in the loop). Here the loop's promise settles twenty
// microtasks late.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Receiver } from '../../../agent/replication/index.ts';
import { initHash } from '../../../shared/hash.ts';
import { removeTempDirs, tempDir } from '../journal/helpers.ts';
import { replicationPair } from './helpers.ts';

beforeAll(initHash);
afterEach(removeTempDirs);

describe('receiver: the wait for nothing more to apply', () => {
  it('answers a manifest request on an idle passive whose apply loop settles late', async () => {
    const proto = Receiver.prototype as unknown as { applyLoop: () => Promise<void> };
    const applyLoop = proto.applyLoop;
    proto.applyLoop = async function (this: Receiver) {
      await applyLoop.call(this);
      for (let i = 0; i < 20; i++) await Promise.resolve();
    };
    try {
      const p = await replicationPair(4, 2, { roots: [{ name: 'data', path: await tempDir('tandem-drain-root-'), exclude: [] }] });
      const link = p.connect();
      await p.until(() => p.sender.status().connected, 'connected');
      // The active starts a synchronisation: it asks for the passive's manifest.
      (p.sender as unknown as { startSync(): void }).startSync();
      await p.until(() => link.received.some((m) => m.t === 'manifest-end'), 'the manifest answered', 5_000);
      expect(link.received.find((m) => m.t === 'manifest-end')).toMatchObject({ count: 0, roots: ['data'] });
      await p.close();
    } finally {
      proto.applyLoop = applyLoop;
    }
  });
});
