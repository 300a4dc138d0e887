// Constants that are not configuration (configuration defaults live in shared/config/schema.ts).

/** Name of the HTTP header carrying a control API token. */
export const CONTROL_TOKEN_HEADER = 'x-tandem-token';

/** Minimum length of the pair key, in bytes. */
export const PAIR_KEY_MIN_BYTES = 32;

/** How often a running agent writes its status snapshot for `tandem status` fallbacks. */
export const STATUS_REFRESH_MS = 1000;

/** A file whose mtime is this close to the moment it was read may change again within the same
 * timestamp tick, so its stat cannot prove it unchanged (git's "racily clean" problem). */
export const RACY_WINDOW_MS = 30;

/**
 * The agent's file mode creation mask: everything it creates (state, journal, logs) is readable
 * by its own user alone. Its scripts get the mask the agent was started with instead.
 */
export const PRIVATE_UMASK = 0o077;

/** Mode of every file Tandem creates in its state directory, and of its log file. */
export const PRIVATE_FILE_MODE = 0o600;

/** Mode of the state directory and of every directory Tandem creates in it. */
export const PRIVATE_DIR_MODE = 0o700;
