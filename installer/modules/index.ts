// Application modules: small documented templates (docs/install.md, "Application modules") whose
// start, stop and check parts compose a node's scripts. A module never decides when it runs (the
// agent does) and never reaches beyond this node: the peer is fenced by the `fence` script alone.
import { z } from 'zod';
import { commandModule, renderCommandModule } from './custom-command.ts';
import { dnsModule, renderDnsModule } from './dns-update.ts';
import type { ModuleContext, ModuleScript } from './module-script.ts';
import { postgresqlModule, renderPostgresqlModule } from './postgresql.ts';
import { renderSystemdModule, systemdModule } from './systemd-service.ts';
import { renderVipModule, vipModule } from './virtual-ip.ts';
import { renderWebModule, webModule } from './web-server.ts';

export { shq, httpCheck, shellCommand } from './module-script.ts';
export type { ModuleContext, ModuleScript } from './module-script.ts';

export const MODULE_SCHEMA = z.discriminatedUnion('module', [systemdModule, vipModule, dnsModule, postgresqlModule, webModule, commandModule]);

export type ModuleSpec = z.output<typeof MODULE_SCHEMA>;

export const MODULE_KINDS = ['systemd', 'vip', 'dns', 'postgresql', 'web', 'command'] as const;

export function renderModule(m: ModuleSpec, ctx: ModuleContext): ModuleScript {
  switch (m.module) {
    case 'systemd':
      return renderSystemdModule(m);
    case 'vip':
      return renderVipModule(m, ctx);
    case 'dns':
      return renderDnsModule(m, ctx);
    case 'postgresql':
      return renderPostgresqlModule(m, ctx);
    case 'web':
      return renderWebModule(m, ctx);
    case 'command':
      return renderCommandModule(m);
  }
}
