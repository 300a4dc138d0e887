// A rolling upgrade as docs/install.md describes it, with the protocol of the "old" node set
// back (TANDEM_PROTOCOL_VERSION=PROTOCOL_MIN: it speaks what the previous release spoke): both
// nodes on the old protocol; the passive upgraded first; a switchover; then the other node
// upgraded. At every step the pair replicates, status says which release and protocol each side
// runs, and at the end verify finds no difference. Below protocol 3 a passive writes every batch
// to its receive log before applying it (a protocol-2 active trims at what the passive says it
// holds); from 3 a batch without a consistency point is applied from memory, its bytes written
// once: the receive log's size shows which.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import { PROTOCOL_MIN, PROTOCOL_VERSION, TANDEM_VERSION } from '../../../shared/version.ts';
import { tandem } from '../../helpers/cli.ts';
import { killAll } from '../../helpers/processes.ts';
import { sleep, TestPair, type NodeName } from '../../helpers/pair.ts';
import { digestTree, treeDiff } from '../../helpers/tree-hash.ts';

const OLD = { TANDEM_PROTOCOL_VERSION: String(PROTOCOL_MIN) };

/** Bytes in a node's receive log (its segments). */
function receiveLogBytes(p: TestPair, node: NodeName): number {
  const dir = path.join(p.node(node).stateDir, 'receive');
  let n = 0;
  for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) n += fs.statSync(path.join(dir, f)).size;
  return n;
}

const LARGE = 2 * 1024 * 1024;

let pair: TestPair | undefined;

afterEach(async () => {
  await killAll();
  await pair?.cleanup();
  pair = undefined;
});

async function write(p: TestPair, on: NodeName, rel: string, text: string): Promise<void> {
  fs.writeFileSync(p.data(on, rel), text);
}

/** Both trees identical while `active` reports its passive in sync with nothing pending. */
async function waitSame(p: TestPair, active: NodeName, timeoutMs = 40_000): Promise<void> {
  const passive: NodeName = active === 'alpha' ? 'beta' : 'alpha';
  const deadline = Date.now() + timeoutMs;
  let diff = 'no status yet';
  while (Date.now() < deadline) {
    const s = await p.status(active).catch(() => undefined);
    if (s?.role === 'active' && s.replication.inSync && s.capture?.pendingPaths === 0) {
      diff = treeDiff(digestTree(p.data(active)), digestTree(p.data(passive)));
      if (diff === '') return;
    }
    await sleep(100);
  }
  throw new Error(`${passive} is not identical to ${active}: ${diff}`);
}

async function connectedAt(p: TestPair, node: NodeName, session: number) {
  return p.waitFor(node, `connected at protocol ${session}`, (s) => s.peer.connected && s.peer.version?.session === session && s.replication.inSync);
}

describe('rolling upgrade', () => {
  it('replicates and switches over with one node a protocol behind, then on the new protocol', async () => {
    const p = await TestPair.create();
    pair = p;
    // 1. Both nodes run the old release.
    await Promise.all([p.start('alpha', { env: OLD }), p.start('beta', { env: OLD })]);
    await write(p, 'alpha', 'before.txt', 'written while both were old\n');
    await p.waitIdentical();
    const oldBeta = await connectedAt(p, 'beta', PROTOCOL_MIN);
    expect(oldBeta.version).toEqual({ tandem: TANDEM_VERSION, protocol: PROTOCOL_MIN });
    expect(oldBeta.peer.version).toEqual({ tandem: TANDEM_VERSION, protocol: PROTOCOL_MIN, session: PROTOCOL_MIN });

    // 2. The passive first: stopped, started on the new release; the active stays old.
    await p.kill('beta', 'SIGTERM');
    await p.start('beta');
    await connectedAt(p, 'beta', PROTOCOL_MIN);
    const betaLogBefore = receiveLogBytes(p, 'beta');
    await write(p, 'alpha', 'mixed-1.txt', 'old active, new passive\n');
    fs.writeFileSync(p.data('alpha', 'mixed-1.bin'), crypto.randomBytes(LARGE));
    await p.waitIdentical();
    const newBeta = await connectedAt(p, 'beta', PROTOCOL_MIN);
    expect(newBeta.version).toEqual({ tandem: TANDEM_VERSION, protocol: PROTOCOL_VERSION });
    expect(newBeta.peer.version).toEqual({ tandem: TANDEM_VERSION, protocol: PROTOCOL_MIN, session: PROTOCOL_MIN });
    const oldAlpha = await connectedAt(p, 'alpha', PROTOCOL_MIN);
    expect(oldAlpha.version.protocol).toBe(PROTOCOL_MIN);
    expect(oldAlpha.peer.version).toEqual({ tandem: TANDEM_VERSION, protocol: PROTOCOL_VERSION, session: PROTOCOL_MIN });
    // At the old protocol the new passive wrote the file's bytes to its receive log first.
    expect(receiveLogBytes(p, 'beta') - betaLogBefore).toBeGreaterThan(LARGE);

    // 3. A switchover hands the role to the upgraded node; the old one follows as passive.
    await p.waitFor('alpha', 'serving', (s) => s.role === 'active' && s.failover.serving && s.failover.phase === 'steady');
    const sw = await tandem(['switchover', '-c', p.node('alpha').config, '--json'], 120_000);
    expect(sw.code, sw.stderr).toBe(0);
    await p.waitFor('beta', 'active and serving', (s) => s.role === 'active' && s.failover.serving && s.failover.phase === 'steady');
    await write(p, 'beta', 'mixed-2.txt', 'new active, old passive\n');
    await waitSame(p, 'beta');
    expect(fs.readFileSync(p.data('alpha', 'mixed-2.txt'), 'utf8')).toBe('new active, old passive\n');

    // 4. The other node upgraded: the session runs at the new protocol.
    await p.kill('alpha', 'SIGTERM');
    await p.start('alpha');
    await connectedAt(p, 'alpha', PROTOCOL_VERSION);
    const alphaLogBefore = receiveLogBytes(p, 'alpha');
    await write(p, 'beta', 'after.txt', 'both new\n');
    fs.writeFileSync(p.data('beta', 'after.bin'), crypto.randomBytes(LARGE));
    await waitSame(p, 'beta');
    // At the new one the passive applied them from memory: its receive log holds marks only.
    expect(receiveLogBytes(p, 'alpha') - alphaLogBefore).toBeLessThan(64 * 1024);
    const a = await connectedAt(p, 'alpha', PROTOCOL_VERSION);
    expect(a.peer.version).toEqual({ tandem: TANDEM_VERSION, protocol: PROTOCOL_VERSION, session: PROTOCOL_VERSION });
    const v = await tandem(['verify', '-c', p.node('beta').config, '--json'], 120_000);
    expect(v.code, v.stderr).toBe(0);
    expect(JSON.parse(v.stdout).differences).toBe(0);
    for (const f of ['before.txt', 'mixed-1.txt', 'mixed-1.bin', 'mixed-2.txt', 'after.txt', 'after.bin']) expect(fs.existsSync(p.data('alpha', f)), f).toBe(true);
  }, 240_000);

  it('refuses to start with a protocol no release spoke', async () => {
    const p = await TestPair.create();
    pair = p;
    await expect(p.start('alpha', { env: { TANDEM_PROTOCOL_VERSION: '9' } })).rejects.toThrow(/TANDEM_PROTOCOL_VERSION|protocol/);
  });
});
