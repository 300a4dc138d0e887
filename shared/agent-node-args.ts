// How the agent's process starts, wherever Tandem starts it: the systemd unit, the installer's
// start without systemd, `tandem demo`; the tests and benchmarks start it the same way. Both are
// read as the process starts (set later, they change nothing): V8's options, which NODE_OPTIONS
// refuses, go on node's command line; the C library's, in the environment.

/**
 * A floor of 96 MiB under the old generation's limit. The agent keeps its heap within 50 % of
 * its live data (agent/heap-tuning.ts: the memory of a large synchronisation), which leaves a
 * small heap little room: a passive holding ~35 MiB while a catch-up streams 1.2 GiB through it
 * had 17 MiB, ran ~7 full collections a second, and spent about a third of its CPU on them and
 * what they cost around them (README, issue 13 phase 17). A heap that holds more than 64 MiB
 * has more room than the floor already: there it changes nothing.
 */
export const AGENT_NODE_ARGS: readonly string[] = ['--initial-old-space-size=96'];

/**
 * glibc's allocator, told to keep the memory of large buffers for the next ones. A batch arrives
 * in a buffer of its own (the WebSocket receiver joins the socket's chunks into a new one of up to
 * 16 MiB), and the sender frames blocks into new ones: by default glibc maps each such buffer
 * afresh (or gives the top of its heap back to the system as soon as the collector frees it), so
 * every page of the next one is a page fault on first write. A 1 GiB file through the pair cost the
 * passive 2.0 s in that join alone, ~500 MB/s; with these 0.6 s (README, issue 13 phase 23).
 * Buffers up to 32 MiB (glibc's most) come from the heap, and up to 64 MiB of free memory stays
 * at its top. At most two malloc arenas: each thread that allocates (the worker threads, the
 * thread pool) otherwise gets one of its own, whose heap now keeps what it freed: bench (e) peaked
 * at 284-293 / 254-272 MiB RSS (active / passive) with a heap per thread, 273-275 / 239-250 MiB with
 * two (the same as without any of these). Other C libraries ignore the variable.
 */
export const AGENT_MALLOC_TUNABLES: Readonly<Record<string, string>> = {
  'glibc.malloc.mmap_threshold': String(32 * 1024 * 1024),
  'glibc.malloc.trim_threshold': String(64 * 1024 * 1024),
  'glibc.malloc.arena_max': '2',
};

/** The systemd unit's form of the agent's environment: `NAME=value` lines for `Environment=`. */
export function agentEnvironmentLines(): string[] {
  return [`GLIBC_TUNABLES=${tunablesWith(undefined)}`];
}

/**
 * `env` with the agent's allocator settings added to GLIBC_TUNABLES. A tunable the operator
 * already set there stands, as do their others.
 */
export function agentEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...env, GLIBC_TUNABLES: tunablesWith(env.GLIBC_TUNABLES) };
}

function tunablesWith(given: string | undefined): string {
  const theirs = given === undefined || given === '' ? [] : given.split(':');
  const named = new Set(theirs.map((t) => t.split('=')[0]));
  const ours = Object.entries(AGENT_MALLOC_TUNABLES)
    .filter(([k]) => !named.has(k))
    .map(([k, v]) => `${k}=${v}`);
  return [...theirs, ...ours].join(':');
}
