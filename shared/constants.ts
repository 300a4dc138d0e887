// Constants that are not configuration (configuration defaults live in shared/config/schema.ts).

/** Name of the HTTP header carrying a control API token. */
export const CONTROL_TOKEN_HEADER = 'x-tandem-token';

/** Minimum length of the pair key, in bytes. */
export const PAIR_KEY_MIN_BYTES = 32;

/** How often a running agent writes its status snapshot for `tandem status` fallbacks. */
export const STATUS_REFRESH_MS = 1000;

/**
 * A file whose mtime is this close to the moment it was read may change again within the same
 * timestamp tick, so its stat cannot prove it unchanged (git's "racily clean" problem). Linux
 * stamps files from its coarse clock, which moves once per scheduler tick: 1 to 10 ms (HZ 1000
 * down to 100; 4 ms at the usual 250), so a write after a read is stamped at most one tick
 * before it. The window is the longest tick and 2 ms for Date.now()'s whole milliseconds. Every
 * new file waits for it before its first read (at 1,000 files a second, reading at once read
 * each file twice), so it is most of the lag of small files: 30 ms here gave a lag p50 / p99 of
 * 85-102 / 154-211 ms, 8 ms 35-47 / 78-104 ms (bench/results/phase1.md, Phase 12).
 */
export const RACY_WINDOW_MS = 12;

/**
 * The agent's file mode creation mask: everything it creates (state, journal, logs) is readable
 * by its own user alone. Its scripts get the mask the agent was started with instead.
 */
export const PRIVATE_UMASK = 0o077;

/** Mode of every file Tandem creates in its state directory, and of its log file. */
export const PRIVATE_FILE_MODE = 0o600;

/** Mode of the state directory and of every directory Tandem creates in it. */
export const PRIVATE_DIR_MODE = 0o700;
