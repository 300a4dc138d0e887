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
