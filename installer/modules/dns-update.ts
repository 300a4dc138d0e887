// Module `dns`: points a name at the node that takes the active role, through an update command
// the operator gives (nsupdate, a provider's CLI, an API call with curl). start runs it with
// TANDEM_DNS_NAME, TANDEM_DNS_ADDRESS (this node's address for the name) and TANDEM_DNS_TTL in
// its environment; stop does nothing (the next active's start points the name at itself, and a
// name pointing at a node that does not serve is what clients would find anyway); check does
// nothing (caches make a lookup say little: the update's exit status is the check).
import { z } from 'zod';
import { name } from '../../shared/config/schema.ts';
import { shellCommand, shq, type ModuleContext, type ModuleScript } from './module-script.ts';

export const dnsModule = z.strictObject({
  module: z.literal('dns'),
  /** The name clients use: shop.example.com. */
  name: z.string().regex(/^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?$/, 'expected a DNS name such as shop.example.com'),
  /** The address the name points at while each node is active, by node name. */
  addresses: z.record(name, z.string().regex(/^[0-9A-Fa-f.:]{2,45}$/, 'expected an IP address')),
  ttl: z.number().int().min(1).max(86_400).default(60),
  /** Run by start; its exit status decides whether the start succeeded. */
  command: z.string().min(1).max(4096).regex(/^[^\0\n\r]*$/, 'expected a command on one line'),
});

export type DnsModule = z.output<typeof dnsModule>;

export function renderDnsModule(m: DnsModule, ctx: ModuleContext): ModuleScript {
  const address = m.addresses[ctx.node] ?? '';
  return {
    title: `DNS ${m.name} → ${address} (ttl ${m.ttl})`,
    start: `TANDEM_DNS_NAME=${shq(m.name)} TANDEM_DNS_ADDRESS=${shq(address)} TANDEM_DNS_TTL=${m.ttl} ${shellCommand(m.command)}`,
    stop: ':',
    check: ':',
    needs: [],
  };
}
