// The one root logger. Components get `log.child({ component })` through their constructor.
// Fixed key names: peer, seq, generation, from, to, lagMs, path, root; errors under `err`.
import pino, { type Logger } from 'pino';
import { PRIVATE_FILE_MODE } from './constants.ts';

export type { Logger } from 'pino';

export interface LogOptions {
  level?: string;
  /** Log file (NDJSON). Without it, logs go to standard output. */
  file?: string | undefined;
  /** Base fields on every line (node name, pair id). */
  base?: Record<string, unknown>;
}

/**
 * Synchronous destination: an agent killed right after a state change must still have logged
 * it (PACKAGES.md: pino's async destination loses lines on SIGTERM). Our log volume is small:
 * state changes and errors, never one line per record.
 */
export function createLogger(opts: LogOptions = {}): Logger {
  // The log names protected paths and peers: its user's alone, like the state (0600; an
  // existing file is tightened at start-up, agent/state/private-state.ts).
  const dest = pino.destination({ dest: opts.file ?? 1, sync: true, mkdir: true, mode: PRIVATE_FILE_MODE });
  return pino(
    {
      level: opts.level ?? 'info',
      base: opts.base ?? {},
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['key', 'psk', 'token', '*.key', '*.psk', '*.token'], censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  );
}

/** A logger that drops everything, for unit tests that do not assert on logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
