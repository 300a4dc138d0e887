// Hosts for real on one machine: network namespaces joined by veth pairs, and a bridge for a
// shared segment. Names carry this process's pid and a counter, so parallel runs never meet;
// cleanup kills every process left in the namespaces and deletes them, also after a failure.
import { spawnSync } from 'node:child_process';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { spawnTracked } from './processes.ts';

let counter = 0;

/** `ip ARGS`; throws with ip's message when it fails. */
export function ip(args: string[]): string {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim() || r.error?.message}`);
  return r.stdout;
}

export class NetworkLab {
  private readonly names: string[] = [];
  readonly tag: string;

  constructor() {
    this.tag = `tnd-${process.pid}-${++counter}`;
  }

  /** Creates a namespace (loopback up) and returns its full name. */
  host(short: string): string {
    const ns = `${this.tag}-${short}`;
    this.run(['netns', 'add', ns]);
    this.names.push(ns);
    this.run(['-n', ns, 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /** `ip ARGS`; throws with ip's message when it fails. */
  run(args: string[]): string {
    return ip(args);
  }

  /** A veth pair from (nsA, ifA) to (nsB, ifB), both ends up. */
  link(nsA: string, ifA: string, nsB: string, ifB: string): void {
    this.run(['-n', nsA, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB]);
    this.run(['-n', nsA, 'link', 'set', ifA, 'up']);
    this.run(['-n', nsB, 'link', 'set', ifB, 'up']);
  }

  bridge(ns: string, br: string, ports: string[]): void {
    this.run(['-n', ns, 'link', 'add', br, 'type', 'bridge']);
    for (const p of ports) this.run(['-n', ns, 'link', 'set', p, 'master', br]);
    this.run(['-n', ns, 'link', 'set', br, 'up']);
  }

  addr(ns: string, dev: string, cidr: string): void {
    this.run(['-n', ns, 'addr', 'add', cidr, 'dev', dev]);
  }

  setLink(ns: string, dev: string, state: 'up' | 'down'): void {
    this.run(['-n', ns, 'link', 'set', dev, state]);
  }

  /** The IPv4 addresses (with prefix) on a namespace's interfaces. */
  addresses(ns: string): string[] {
    return this.run(['-n', ns, '-o', '-4', 'addr', 'show'])
      .split('\n')
      .map((l) => /inet (\S+)/.exec(l)?.[1])
      .filter((a): a is string => a !== undefined);
  }

  /** A tracked child process inside the namespace. */
  spawn(ns: string, command: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    return spawnTracked('ip', ['netns', 'exec', ns, command, ...args], opts);
  }

  exec(ns: string, command: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}) {
    return spawnSync('ip', ['netns', 'exec', ns, command, ...args], { encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000, env: opts.env ?? process.env });
  }

  /** Kills what still runs in the namespaces (daemons the scripts started too) and deletes them. */
  cleanup(): void {
    for (const ns of this.names.splice(0).reverse()) {
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split('\n').filter((p) => /^\d+$/.test(p));
      for (const p of pids) {
        try {
          process.kill(Number(p), 'SIGKILL');
        } catch {
          // gone already
        }
      }
      spawnSync('ip', ['netns', 'del', ns]);
    }
  }
}
