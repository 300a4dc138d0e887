// Module `vip`: the service's public identity as an IPv4 address that moves with the active
// role (keepalived's job, without its split-brain exposure: Tandem decides who holds it). start
// adds the address and announces it with gratuitous ARP, so switches and clients send traffic
// here even while the old holder may still have it configured; stop removes it; check says
// whether this node holds it. Without `interface`, the interface is the one whose subnet holds
// the address (`ip route get`), so both nodes may name their interfaces differently.
import { z } from 'zod';
import { shq, type ModuleContext, type ModuleScript } from './module-script.ts';

const ipv4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export const vipModule = z.strictObject({
  module: z.literal('vip'),
  /** The address with its prefix length, as clients reach the service: 192.0.2.10/24. */
  address: z.string().refine((s) => {
    const [ip, prefix, ...rest] = s.split('/');
    return rest.length === 0 && ip !== undefined && ipv4.test(ip) && prefix !== undefined && /^\d{1,2}$/.test(prefix) && Number(prefix) >= 1 && Number(prefix) <= 32;
  }, 'expected an IPv4 address with its prefix length, e.g. 192.0.2.10/24'),
  interface: z.string().regex(/^[A-Za-z0-9_.:@-]{1,15}$/, 'expected an interface name such as eth0').optional(),
  /** Gratuitous ARP announcements sent by start. */
  arpCount: z.number().int().min(1).max(20).default(3),
});

export type VipModule = z.output<typeof vipModule>;

export function renderVipModule(m: VipModule, ctx: ModuleContext): ModuleScript {
  const [ip] = m.address.split('/') as [string];
  const cidr = shq(m.address);
  const addr = shq(ip);
  const held = `ip -o -4 addr show to ${shq(`${ip}/32`)}`;
  const f = `m${ctx.index}`;
  // The interface: where the address already is; else the fixed one; else where the route to
  // the address leaves (before the address is local, that is the interface of its subnet).
  const dev =
    m.interface !== undefined
      ? `${f}_dev() { printf '%s\\n' ${shq(m.interface)}; }`
      : `${f}_dev() {
  d=$(${held} | while read -r _ name _; do printf '%s\\n' "$name"; break; done)
  [ -n "$d" ] || d=$(ip -o -4 route get ${addr} 2>/dev/null | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p')
  [ -n "$d" ] && [ "$d" != lo ] || { echo "virtual IP ${ip}: no interface of this node is on its subnet (set interface: in the vip module)" >&2; return 1; }
  printf '%s\\n' "$d"
}`;
  return {
    title: `virtual IP ${m.address}${m.interface === undefined ? '' : ` on ${m.interface}`}`,
    helpers: dev,
    start: `dev=$(${f}_dev) || return 1
  ip addr replace ${cidr} dev "$dev" || return 1
  # Gratuitous ARP: neighbours update their caches now, not when their entries expire. The
  # first announcement leaves at once; arping then waits a second between the others, so it
  # runs on in the background and start does not wait for it (its output: $RUN_DIR/arping.log).
  mkdir -p "$RUN_DIR"
  ( arping -q -U -c ${m.arpCount} -I "$dev" ${addr} || echo "$(date -u +%FT%TZ) virtual IP ${ip}: gratuitous ARP on $dev failed; clients may reach the old holder until their ARP entries expire" ) </dev/null >>"$RUN_DIR/arping.log" 2>&1 &
  return 0`,
    stop: `${held} | while read -r _ name _; do ip addr del ${cidr} dev "$name" || exit 1; done`,
    check: `[ -n "$(${held})" ] || { echo "virtual IP ${ip} is not on this node" >&2; return 1; }`,
    needs: ['ip', 'arping'],
  };
}
