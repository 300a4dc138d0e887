import { defineConfig } from 'vitest/config';

// Integration and fault tests start real agent processes that watch files: keep parallelism
// low (2 cores, 128 inotify instances per user) and use forks so a crashed test cannot take
// its neighbours down. Every test kills the processes it started (test/helpers/processes.ts).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
    globalSetup: ['test/helpers/global-setup.ts'],
  },
});
