// A demo pair wired for failover tests: each node's view of the other goes through TCP proxies,
// so a test can cut one link and leave the others up, like separate cables would:
//
//   channel:   alpha ──chToBeta──▶ beta's channel    beta ──chToAlpha──▶ alpha's channel
//   presence:  beta ──presAlpha──▶ alpha's presence  alpha ──presBeta──▶ beta's presence
//   public:    alpha ──gwAlpha──▶ gateway            beta ──gwBeta──▶ gateway
//
// "Cutting alpha's public side" refuses gwAlpha (its own checks fail) and presAlpha (the peer
// no longer sees it on the public network). The demo application itself is reached directly.
// With `directChannel` (only inside a private network namespace) the channel has no proxy: each
// node listens on an address of its own that cutting removes (direct-channel.ts).
import net from 'node:net';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { parseDuration } from '../../shared/sizes.ts';
import fs from 'node:fs';
import { readScriptsLog, overlappingStarts, type ScriptsLogEntry } from '../../agent/scripts/index.ts';
import { TestPair, servedBy, sleep, type NodeName, type PairOptions } from './pair.ts';
import { DirectChannel } from './direct-channel.ts';
import { TcpProxy } from './tcp-proxy.ts';

export interface FailoverTiming {
  /** heartbeat.interval, e.g. '250ms'. */
  interval: string;
  threshold: number;
}

export const TUNED: FailoverTiming = { interval: '250ms', threshold: 4 };
export const DEFAULTS: FailoverTiming = { interval: '1s', threshold: 5 };

const hostPort = (s: string) => {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
};

export class FailoverPair {
  private constructor(
    readonly pair: TestPair,
    readonly gateway: net.Server,
    private readonly gatewaySockets: Set<net.Socket>,
    readonly proxies: Record<'presAlpha' | 'presBeta' | 'gwAlpha' | 'gwBeta', TcpProxy> & Partial<Record<'chToAlpha' | 'chToBeta', TcpProxy>>,
    private readonly direct: DirectChannel | undefined,
  ) {}

  /** The two channel proxies (toward alpha, toward beta); a pair with a direct channel has none. */
  channelProxies(): [TcpProxy, TcpProxy] {
    const { chToAlpha, chToBeta } = this.proxies;
    if (chToAlpha === undefined || chToBeta === undefined) throw new Error('this pair has a direct channel: no proxies on it');
    return [chToAlpha, chToBeta];
  }

  static async create(timing: FailoverTiming, extra?: PairOptions['config'], opts: { directChannel?: boolean } = {}): Promise<FailoverPair> {
    // The gateway ends each connection at once; its sockets are kept so that cleanup can destroy
    // them: server.close() waits for every connection, and a half-closed one could hold it.
    const gatewaySockets = new Set<net.Socket>();
    const gateway = net.createServer((s) => {
      gatewaySockets.add(s);
      s.on('close', () => gatewaySockets.delete(s));
      s.on('error', () => undefined);
      s.end();
    });
    gateway.on('error', () => undefined);
    await new Promise<void>((r) => gateway.listen(0, '127.0.0.1', r));
    const gwPort = (gateway.address() as net.AddressInfo).port;
    const proxies: Partial<FailoverPair['proxies']> = {};
    let pair: TestPair | undefined;
    try {
      const fast = (parseDuration(timing.interval) ?? 1000) < 1000;
      pair = await TestPair.create({
        config: (doc, node) => {
          doc.heartbeat = { interval: timing.interval, threshold: timing.threshold };
          doc.links = {
            public: { targets: [], interval: fast ? '250ms' : '1s', timeout: fast ? '200ms' : '1s', threshold: 3 },
            presence: { interval: fast ? '100ms' : '500ms', timeout: fast ? '250ms' : '1s' },
          };
          extra?.(doc, node);
        },
      });
      // Both configs list both nodes' real addresses: put a proxy in front of each, then point
      // each node's view of its peer (and of the gateway) at the proxies.
      const first = parseYaml(fs.readFileSync(pair.node('alpha').config, 'utf8')) as Record<string, any>;
      const real = first.nodes as Record<NodeName, { channel: string; public: string }>;
      const direct = opts.directChannel === true ? DirectChannel.open() : undefined;
      if (direct === undefined) {
        proxies.chToAlpha = await TcpProxy.start({ targetPort: hostPort(real.alpha.channel).port });
        proxies.chToBeta = await TcpProxy.start({ targetPort: hostPort(real.beta.channel).port });
      }
      proxies.presAlpha = await TcpProxy.start({ targetPort: hostPort(real.alpha.public).port });
      proxies.presBeta = await TcpProxy.start({ targetPort: hostPort(real.beta.public).port });
      proxies.gwAlpha = await TcpProxy.start({ targetPort: gwPort });
      proxies.gwBeta = await TcpProxy.start({ targetPort: gwPort });
      const p = proxies as FailoverPair['proxies'];
      for (const n of ['alpha', 'beta'] as const) {
        const file = pair.node(n).config;
        const doc = parseYaml(fs.readFileSync(file, 'utf8')) as Record<string, any>;
        const peer: NodeName = n === 'alpha' ? 'beta' : 'alpha';
        if (direct !== undefined) {
          for (const x of ['alpha', 'beta'] as const) doc.nodes[x].channel = `${direct.addresses[x]}:${hostPort(real[x].channel).port}`;
        } else {
          doc.nodes[peer].channel = `127.0.0.1:${(peer === 'alpha' ? p.chToAlpha : p.chToBeta)!.port}`;
        }
        doc.nodes[peer].public = `127.0.0.1:${(peer === 'alpha' ? p.presAlpha : p.presBeta).port}`;
        doc.links.public.targets = [`tcp://127.0.0.1:${(n === 'alpha' ? p.gwAlpha : p.gwBeta).port}`];
        fs.writeFileSync(file, stringifyYaml(doc));
      }
      return new FailoverPair(pair, gateway, gatewaySockets, p, direct);
    } catch (err) {
      await pair?.cleanup();
      for (const x of Object.values(proxies)) await x.close();
      gateway.close();
      throw err;
    }
  }

  /** Cuts (or restores) the replication channel in both directions. */
  async cutChannel(cut: boolean): Promise<void> {
    if (this.direct !== undefined) return this.direct.cut(cut);
    for (const p of this.channelProxies()) await (cut ? p.refuse() : p.pass());
  }

  /** Cuts (or restores) a node's public side: its own checks fail and its peer stops seeing it. */
  async cutPublic(node: NodeName, cut: boolean): Promise<void> {
    const ps = node === 'alpha' ? [this.proxies.gwAlpha, this.proxies.presAlpha] : [this.proxies.gwBeta, this.proxies.presBeta];
    for (const p of ps) await (cut ? p.refuse() : p.pass());
  }

  scriptsLog(): ScriptsLogEntry[] {
    return readScriptsLog(this.pair.info.scriptsLog);
  }

  /** Moments where a node began to serve while the other still did: must stay empty. */
  overlaps(): string[] {
    return overlappingStarts(this.scriptsLog());
  }

  /** Starts of a node's start script since entry index `from`. */
  starts(node: NodeName, from = 0): ScriptsLogEntry[] {
    return this.scriptsLog()
      .slice(from)
      .filter((e) => e.node === node && e.script === 'start' && e.event === 'begin');
  }

  /** Which node's demo application answers at the pair's address, or undefined. */
  servedBy(): Promise<string | undefined> {
    return servedBy(this.pair.info.appUrl);
  }

  async waitServedBy(node: NodeName, timeoutMs = 30_000): Promise<number> {
    const t0 = Date.now();
    while ((await this.servedBy()) !== node) {
      if (Date.now() - t0 > timeoutMs) throw new Error(`the application was not served by ${node} within ${timeoutMs} ms; scripts log:\n${this.scriptsLog().map((e) => `${e.at} ${e.node} ${e.script} ${e.event} ${e.reason ?? ''}`).join('\n')}`);
      await sleep(20);
    }
    return Date.now() - t0;
  }

  async cleanup(): Promise<void> {
    // Each step's time is printed when the whole takes long, so that a hook timeout names its cause.
    const t0 = Date.now();
    await this.pair.cleanup();
    const t1 = Date.now();
    let step = '';
    const watchdog = setInterval(() => process.stderr.write(`[failover-pair] cleanup still in "${step}" after ${Math.round((Date.now() - t1) / 1000)} s\n`), 10_000);
    for (const [name, p] of Object.entries(this.proxies)) {
      step = `close proxy ${name}`;
      await p.close();
    }
    const t2 = Date.now();
    step = 'close gateway';
    for (const s of this.gatewaySockets) s.destroy();
    await new Promise<void>((r) => this.gateway.close(() => r()));
    clearInterval(watchdog);
    const t3 = Date.now();
    if (t3 - t0 > 10_000) process.stderr.write(`[failover-pair] slow cleanup: pair ${t1 - t0} ms, proxies ${t2 - t1} ms, gateway ${t3 - t2} ms\n`);
  }
}
