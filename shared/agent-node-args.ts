// The options of node that the agent's process starts with, wherever Tandem starts it: the
// systemd unit, the installer's start without systemd, `tandem demo`; the tests and benchmarks
// start it the same way. V8 reads them as the process starts (set later, they change nothing)
// and NODE_OPTIONS refuses them, so they go on node's command line.

/**
 * A floor of 96 MiB under the old generation's limit. The agent keeps its heap within 50 % of
 * its live data (agent/heap-tuning.ts: the memory of a large synchronisation), which leaves a
 * small heap little room: a passive holding ~35 MiB while a catch-up streams 1.2 GiB through it
 * had 17 MiB, ran ~7 full collections a second, and spent about a third of its CPU on them and
 * what they cost around them (README, issue 13 phase 17). A heap that holds more than 64 MiB
 * has more room than the floor already: there it changes nothing.
 */
export const AGENT_NODE_ARGS: readonly string[] = ['--initial-old-space-size=96'];
