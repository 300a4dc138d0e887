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
  { name: 'events', summary: 'show what happened to a node and why (role changes, states, links, alarms…)', load: async () => (await import('./commands/events.ts')).eventsCommand },
  { name: 'pause', summary: 'pause replication on the active node (the journal keeps what is written)', load: async () => (await import('./commands/pause.ts')).pauseCommand },
  { name: 'resume', summary: 'resume paused replication (the passive catches up from the journal)', load: async () => (await import('./commands/pause.ts')).resumeCommand },
  { name: 'maintenance', summary: 'hold (on) or release (off) automatic role changes on both nodes', load: async () => (await import('./commands/maintenance.ts')).maintenanceCommand },
  { name: 'failover', summary: 'promote this passive by hand when the active is known to be gone (--force)', load: async () => (await import('./commands/failover.ts')).failoverCommand },
  { name: 'token', summary: 'rotate the control token on both nodes, or show it (for Prometheus and scripts)', load: async () => (await import('./commands/token.ts')).tokenCommand },
  { name: 'check', summary: 'check this server for Tandem: versions, directories, disk, inotify, ports, peer, clock', load: async () => (await import('./commands/check.ts')).checkCommand },
  { name: 'install', summary: 'install the primary, or the secondary from the primary\'s clone pack', load: async () => (await import('./commands/install.ts')).installCommand },
  { name: 'uninstall', summary: 'stop the agent and remove everything tandem install created (protected data stays)', load: async () => (await import('./commands/uninstall.ts')).uninstallCommand },
  { name: 'console', summary: 'print (or open) a link that logs a browser into the pair\'s web dashboard', load: async () => (await import('./commands/console.ts')).consoleCommand },
];
