// What the install flows need from the command that runs them: where to print, and how to read
// an agent's status (the console's control client; the installer does not talk HTTP itself).
import type { AgentStatus } from '../agent/control/index.ts';
import type { CheckResult } from './preflight-checks.ts';

export interface InstallIo {
  /** Lines for the operator (standard output). */
  out(text: string): void;
  /** A line that replaces the previous progress line (standard error; one line per update when not a terminal). */
  progress(line: string): void;
  /** The status document of the agent at `controlUrl`; throws when it does not answer. */
  status(controlUrl: string, timeoutMs: number): Promise<AgentStatus>;
  /** The checks as they came out (for --json); the human form is printed through `out`. */
  checks?(results: CheckResult[]): void;
}

export function controlUrl(c: { host: string; port: number }): string {
  return `http://${c.host.includes(':') ? `[${c.host}]` : c.host}:${c.port}`;
}
