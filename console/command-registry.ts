// Every `tandem` command by name, with the one line `tandem help` shows, and how to load it.
// Commands load lazily: `tandem status` must not pay for the agent, and `tandem --help` for
// nothing at all. To add a command: write console/commands/NAME.ts exporting a Command (as the
// others do) and add one entry here; test/unit/console/command-registry.test.ts checks that the
// entry and the module agree.
import type { Command } from './command.ts';

export interface CommandEntry {
  name: string;
  summary: string;
  load(): Promise<Command>;
}

export const COMMANDS: CommandEntry[] = [
  { name: 'demo', summary: 'run a complete local pair on loopback (or only write it)', load: async () => (await import('./commands/demo.ts')).demoCommand },
  { name: 'agent', summary: 'run one node\'s agent in the foreground', load: async () => (await import('./commands/agent.ts')).agentCommand },
  { name: 'status', summary: 'show both nodes of the pair: roles, states, lag, links, alarms', load: async () => (await import('./commands/status.ts')).statusCommand },
  { name: 'switchover', summary: 'move the active role to the peer (planned, nothing lost)', load: async () => (await import('./commands/switchover.ts')).switchoverCommand },
  { name: 'resolve', summary: 'end a split brain: keep one node\'s data, overwrite the other\'s changes', load: async () => (await import('./commands/resolve.ts')).resolveCommand },
  { name: 'verify', summary: 'compare both sides block by block; --repair resends what differs', load: async () => (await import('./commands/verify.ts')).verifyCommand },
  { name: 'config', summary: 'check a tandem.yaml: every error, with its line and column', load: async () => (await import('./commands/config.ts')).configCommand },
];
