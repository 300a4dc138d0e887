// A CLI command: its name, one-line summary, full help text, and what it runs.

export interface Command {
  name: string;
  summary: string;
  /** The full --help text. */
  help: string;
  run(args: string[]): Promise<number>;
}

/** Exit codes shared by every command (docs/commands.md). */
export const EXIT = {
  OK: 0,
  FAILED: 1,
  USAGE: 2,
  UNREACHABLE: 3,
  /** tandem verify: the two sides differ (and were not all repaired). */
  DIFFERENCES: 4,
} as const;
