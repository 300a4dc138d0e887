import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { agentEnv, agentEnvironmentLines } from '../../../shared/agent-node-args.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const runTs = path.resolve(here, '../../../bin/run-ts.mjs');

/** The minor page faults of the fixture, run in a fresh node with `env`: the median of three runs. */
function faults(env: NodeJS.ProcessEnv): number {
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = spawnSync(process.execPath, ['--expose-gc', runTs, path.join(here, 'fixtures', 'large-buffers.ts')], { encoding: 'utf8', timeout: 120_000, env });
    expect(r.status, r.stderr).toBe(0);
    runs.push(Number(r.stdout.split(' ')[0]));
  }
  return runs.sort((a, b) => a - b)[1]!;
}

describe("the agent's allocator settings", () => {
  it('keep the memory of large buffers for the next ones instead of faulting it in again', () => {
    // 1 GiB through 4 MiB buffers, freed as they are let go: measured 10,000-14,300 faults per
    // process with the agent's environment against 25,700-48,200 without (74,400 beside a CPU hog;
    // a 1 GiB file through the pair: the passive's join of its batches 2.0 s → 0.6 s). One run of
    // each, with the buffers freed whenever the collector ran, once came out even on a loaded
    // machine: hence the forced collections and the median of three.
    const plain = { ...process.env };
    delete plain.GLIBC_TUNABLES;
    const tuned = faults(agentEnv(plain));
    const untuned = faults(plain);
    expect(tuned).toBeGreaterThan(0);
    expect(tuned / untuned).toBeLessThan(0.7);
  });

  it("adds to the operator's GLIBC_TUNABLES without overriding what they set", () => {
    expect(agentEnv({}).GLIBC_TUNABLES).toBe('glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864:glibc.malloc.arena_max=2');
    expect(agentEnv({ GLIBC_TUNABLES: '' }).GLIBC_TUNABLES).toBe('glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864:glibc.malloc.arena_max=2');
    const theirs = agentEnv({ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=1048576:glibc.malloc.arena_max=4', PATH: '/bin' });
    expect(theirs).toEqual({ PATH: '/bin', GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=1048576:glibc.malloc.arena_max=4:glibc.malloc.mmap_threshold=33554432' });
    expect(agentEnvironmentLines()).toEqual(['GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864:glibc.malloc.arena_max=2']);
  });
});
