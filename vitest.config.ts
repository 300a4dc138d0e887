import { defineConfig } from 'vitest/config';

// Integration and fault tests start real agent processes that watch files: keep parallelism
// low (2 cores, 128 inotify instances per user) and use forks so a crashed test cannot take
// its neighbours down. Every test kills the processes it started (test/helpers/processes.ts).
//
// The failover fault tests check what the issue asks in time (the passive serves within
// interval × threshold + 2 s; heartbeats keep their rhythm), so they run last and alone, once
// the rest of the suite no longer competes for the two cores: their bounds are about Tandem,
// not about a neighbour's load.
const ALONE = ['test/fault/failover.test.ts'];

export default defineConfig({
  test: {
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    // Cleanup kills agents and runs stop scripts: under a loaded CI machine that took 36 s once.
    hookTimeout: 180_000,
    teardownTimeout: 30_000,
    globalSetup: ['test/helpers/global-setup.ts'],
    projects: [
      { extends: true, test: { name: 'shared', include: ['test/**/*.test.ts'], exclude: ALONE, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'alone', include: ALONE, fileParallelism: false, sequence: { groupOrder: 1 } } },
    ],
  },
});
