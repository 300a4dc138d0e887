// The synchronisation's shadow of the passive, with converged paths read from the active
// manifest (agent/sync/shadow-tree.ts), against the plain shadow it replaces: a full manifest
// that every record is applied to. Random trees and records, from a seeded generator: capture's
// records change both sides (the shadow hears of each before the active manifest changes, as
// capture journals before it sets its entry), the synchronisation's records only the passive's,
// and after each of those the path converges when it can (now and then after a record of
// capture's in between). After every step, every path must read the same through both.
import { beforeAll, describe, expect, it } from 'vitest';
import { applyRecordToManifest, Manifest, type Entry } from '../../../agent/manifest/index.ts';
import { diffEntry } from '../../../agent/sync/entry-diff.ts';
import { ShadowTree } from '../../../agent/sync/shadow-tree.ts';
import { hash64, initHash } from '../../../shared/hash.ts';
import type { DataRecord } from '../../../shared/protocol/index.ts';
import { rng } from '../../helpers/workload.ts';

beforeAll(async () => {
  await initHash();
});

const BS = 4096;
const R = 'data';
const NAMES = ['a', 'b', 'c', 'd/a', 'd/b', 'd/e/a', 'e', 'e/a', 'e/d'];

type NoSeq<T> = T extends unknown ? Omit<T, 'seq'> : never;
type PathRecord = NoSeq<Exclude<DataRecord, { op: 'sync-begin' | 'sync-end' }>>;

function harness(seed: number) {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const active = new Manifest([R]);
  const passive = new Manifest([R]); // the shadow's explicit part, changed in place
  const reference = new Manifest([R]); // the plain shadow
  const shadow = new ShadowTree(passive, active, BS);
  let seq = 0;
  const block = (n: number) => {
    const data = Buffer.alloc(BS, n & 0xff);
    return { data, hash: hash64(data) };
  };
  const randomRecord = (): PathRecord => {
    const path = pick(NAMES);
    switch (Math.floor(rand() * 10)) {
      case 9:
        return { op: 'hole', root: R, path, offset: pick([0, BS]), length: BS };
      case 0:
        return { op: 'mkdir', root: R, path, mode: pick([0o755, 0o700]) };
      case 1:
        return { op: 'file', root: R, path, size: pick([0, BS, 2 * BS, 3 * BS - 7]) };
      case 2:
        return { op: 'write', root: R, path, offset: pick([0, BS]), ...block(Math.floor(rand() * 4)) };
      case 3:
        return { op: 'meta', root: R, path, mode: pick([0o644, 0o600]), mtimeMs: pick([1000, 2000, 3000]) };
      case 4:
        return { op: 'unlink', root: R, path };
      case 5:
        return { op: 'rmdir', root: R, path: pick(['d', 'e', 'd/e']) };
      case 6:
        return { op: 'rename', root: R, path: pick([...NAMES, 'd', 'e', 'd/e']), to: pick([...NAMES, 'd', 'e', 'd/e']) };
      case 7:
        return { op: 'symlink', root: R, path, target: pick(['x', 'y']) };
      default:
        return { op: 'hardlink', root: R, path, target: pick(NAMES) };
    }
  };
  /** A record journaled: the shadow hears of it first, then whoever it changes. */
  const log: string[] = [];
  const journal = (r: PathRecord, alsoActive: boolean) => {
    const full = { ...r, seq: ++seq } as DataRecord;
    log.push(`${alsoActive ? 'capture' : 'sync'} ${r.op} ${r.path}${'to' in r ? ` -> ${r.to}` : ''}${'target' in r ? ` => ${r.target}` : ''}${r.op === 'file' ? ` size ${r.size}` : ''}`);
    shadow.apply(full);
    applyRecordToManifest(reference, full, BS);
    if (alsoActive) applyRecordToManifest(active, full, BS);
  };
  /** The synchronisation's records for `path`: the passive ends as the active has it. */
  const syncPath = (path: string) => {
    const a = active.get(R, path);
    const s = shadow.get(R, path);
    if (diffEntry(a, s, BS) === undefined) return;
    if (a === undefined) return journal({ op: s!.kind === 'dir' ? 'rmdir' : 'unlink', root: R, path }, false);
    if (a.kind === 'dir') return journal({ op: 'mkdir', root: R, path, mode: a.mode }, false);
    if (a.kind === 'symlink') return journal({ op: 'symlink', root: R, path, target: a.target }, false);
    if (s !== undefined && s.kind !== 'file') journal({ op: s.kind === 'dir' ? 'rmdir' : 'unlink', root: R, path }, false);
    journal({ op: 'file', root: R, path, size: a.size }, false);
    for (let i = 0; i * BS < a.size; i++) {
      // The block's own hash: the model's blocks are whole blocks of one byte value.
      const len = Math.min(BS, a.size - i * BS);
      const data = Buffer.alloc(len);
      journal({ op: 'write', root: R, path, offset: i * BS, data, hash: a.blocks.subarray(i * 8, i * 8 + 8) }, false);
    }
    journal({ op: 'meta', root: R, path, mode: a.mode, mtimeMs: a.mtimeMs }, false);
  };
  const same = (x: Entry | undefined, y: Entry | undefined) => (x === undefined) === (y === undefined) && (x === undefined || (x.kind === y!.kind && diffEntry(x, y, BS) === undefined));
  const check = (step: string) => {
    const paths = new Set<string>([...NAMES, 'd', 'e', 'd/e']);
    for (const [p] of reference.entries(R)) paths.add(p);
    for (const [p] of active.entries(R)) paths.add(p);
    for (const p of paths) {
      const got = shadow.get(R, p);
      const want = reference.get(R, p);
      if (!same(got, want)) throw new Error(`${log.slice(-25).join('\n')}\nseed ${seed}, ${step}: ${p} reads ${JSON.stringify(got?.kind)} ${got?.kind === 'file' ? got.blocks.toString('hex') : ''} through the converged shadow, ${JSON.stringify(want?.kind)} ${want?.kind === 'file' ? want.blocks.toString('hex') : ''} through the plain one`);
    }
  };
  return { rand, pick, active, passive, reference, shadow, randomRecord, journal, syncPath, check, log };
}

describe('ShadowTree', () => {
  it('reads every path as the plain shadow does, through random records, synchronised paths and convergences (200 seeds)', () => {
    let converged = 0;
    // Of them, new files whose records were held back and never set in the shadow.
    let convergedUnset = 0;
    // TANDEM_TEST_SEEDS=N runs more (a search, not the test line's).
    const seeds = Number(process.env.TANDEM_TEST_SEEDS ?? 200);
    for (let seed = 1; seed <= seeds; seed++) {
      const h = harness(seed);
      // Both sides start with trees of their own: the active's from capture's records (the
      // shadow does not hear of them: they precede the synchronisation), the passive's reported.
      for (let i = 0; i < 25; i++) applyRecordToManifest(h.active, { ...h.randomRecord(), seq: 0 } as DataRecord, BS);
      for (let i = 0; i < 25; i++) {
        const r = { ...h.randomRecord(), seq: 0 } as DataRecord;
        applyRecordToManifest(h.passive, r, BS);
        applyRecordToManifest(h.reference, r, BS);
      }
      h.check('start');
      for (let step = 0; step < 120; step++) {
        if (h.rand() < 0.5) {
          const p = h.pick([...NAMES, 'd', 'e', 'd/e']);
          h.syncPath(p);
          // Now and then capture journals something between the synchronisation's records and
          // its convergence: a new file's records held back must be applied before it.
          if (h.rand() < 0.15) h.journal(h.randomRecord(), true);
          if (h.shadow.converge(R, p, (a, s) => diffEntry(a, s, BS) === undefined)) {
            converged++;
            h.log.push(`converged ${p}`);
          }
        } else {
          h.journal(h.randomRecord(), true);
        }
        h.check(`step ${step}`);
      }
      convergedUnset += h.shadow.convergedUnset;
    }
    expect(converged).toBeGreaterThan(1000);
    expect(convergedUnset).toBeGreaterThan(50);
  });
});
