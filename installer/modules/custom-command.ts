// Module `command`: the operator's own start, stop and check commands, for what no other module
// covers. Each runs with /bin/sh; the same idempotence rules hold as for the scripts themselves
// (docs/scripts.md): start succeeds when already running, stop when nothing runs.
import { z } from 'zod';
import { shellCommand, type ModuleScript } from './module-script.ts';

const line = z.string().min(1).max(4096).regex(/^[^\0\n\r]*$/, 'expected a command on one line');

export const commandModule = z.strictObject({
  module: z.literal('command'),
  start: line,
  stop: line,
  check: line.optional(),
});

export type CommandModule = z.output<typeof commandModule>;

export function renderCommandModule(m: CommandModule): ModuleScript {
  return {
    title: `command ${m.start.length > 40 ? `${m.start.slice(0, 40)}…` : m.start}`,
    start: shellCommand(m.start),
    stop: shellCommand(m.stop),
    check: m.check === undefined ? ':' : shellCommand(m.check),
    needs: [],
  };
}
