// Module `systemd`: a service the init system runs (nginx.service, postgresql@15-main…). start
// and stop ask systemd; check asks whether the unit is active. Tandem's own unit must not list it
// as a dependency: the agent, not the boot, decides where the service runs, so disable the
// service's own start at boot (`systemctl disable UNIT`) on both nodes.
import { z } from 'zod';
import { shq, type ModuleScript } from './module-script.ts';

/** A unit name as systemd spells it (no spaces, no quotes, no slashes). */
export const unitName = z.string().regex(/^[A-Za-z0-9:_.@\\-]{1,200}\.(service|target|socket|mount)$|^[A-Za-z0-9:_.@\\-]{1,200}$/, 'expected a systemd unit name such as nginx.service');

export const systemdModule = z.strictObject({
  module: z.literal('systemd'),
  unit: unitName,
});

export type SystemdModule = z.output<typeof systemdModule>;

export function renderSystemdModule(m: SystemdModule): ModuleScript {
  const unit = shq(m.unit);
  return {
    title: `systemd service ${m.unit}`,
    start: `systemctl start ${unit}`,
    stop: `systemctl stop ${unit}`,
    check: `systemctl is-active --quiet ${unit}`,
    needs: ['systemctl'],
  };
}
