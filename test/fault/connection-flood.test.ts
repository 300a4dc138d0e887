// A connection flood at a low descriptor limit, as measured in issue 8: the active agent runs
// with 128 descriptors (prlimit), and 200 idle connections at a time hit its presence port and
// 200 its channel port, twice. Before, the peer saw the agent "dead" while it was alive, then
// the agent crashed (spawn EMFILE) and the peer promoted. Now the agent stays alive and serving,
// replicates through it, drops every flood connection within its bound, and the peer never
// promotes: read from both statuses, both logs and the scripts' own log.
import fs from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PRESENCE_CONNECTION_TIMEOUT_MS } from '../../agent/links/presence-server.ts';
import { readScriptsLog } from '../../agent/scripts/index.ts';
import { loadConfig } from '../../shared/config/index.ts';
import { killAll } from '../helpers/processes.ts';
import { sleep, TestPair, until } from '../helpers/pair.ts';

let pair: TestPair | undefined;
const sockets: net.Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await killAll();
  await pair?.cleanup();
  pair = undefined;
});

const NOFILE = 128;

interface Flooded {
  port: number;
  at: number;
  closedAt?: number;
}

/** Opens `n` idle connections to `port` that read and drop whatever comes, and notes when each closes. */
function flood(port: number, n: number): Flooded[] {
  const out: Flooded[] = [];
  for (let i = 0; i < n; i++) {
    const f: Flooded = { port, at: Date.now() };
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('error', () => {});
    s.resume();
    s.on('close', () => (f.closedAt = Date.now()));
    sockets.push(s);
    out.push(f);
  }
  return out;
}

function openFds(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

describe('connection flood', () => {
  it(`keeps an agent at ${NOFILE} descriptors alive and serving under 200 idle connections on its presence and channel ports, and its peer never promotes`, async () => {
    const p = await TestPair.create();
    pair = p;
    const alpha = await p.start('alpha', { wrap: ['prlimit', `--nofile=${NOFILE}:${NOFILE}`] });
    await p.start('beta');
    await p.waitIdentical();
    await p.waitFor('alpha', 'serving', (s) => s.role === 'active' && s.failover.serving && s.failover.phase === 'steady');
    await p.waitFor('beta', 'passive, in sync, seeing alpha alive', (s) => s.role === 'passive' && s.replication.inSync && s.failover.presence === 'alive');
    const limits = fs.readFileSync(`/proc/${alpha.pid}/limits`, 'utf8');
    expect(limits).toMatch(new RegExp(`Max open files\\s+${NOFILE}\\s+${NOFILE}`));
    const self = loadConfig(p.node('alpha').config).self;
    const handshakeMs = loadConfig(p.node('alpha').config).channel.handshakeTimeout;

    let peakFds = 0;
    const sampler = setInterval(() => {
      try {
        peakFds = Math.max(peakFds, openFds(alpha.pid!));
      } catch {
        // gone: asserted below
      }
    }, 20);
    try {
      for (let wave = 1; wave <= 2; wave++) {
        const presence = flood(self.public!.port, 200);
        const channel = flood(self.channel.port, 200);
        // Replication goes on through the flood.
        fs.writeFileSync(p.data('alpha', `during-wave-${wave}.txt`), `written while flooded, wave ${wave}\n`);
        await until(`wave ${wave}'s file on beta`, () => (fs.existsSync(p.data('beta', `during-wave-${wave}.txt`)) ? true : undefined), 20_000);
        await until(`every connection of wave ${wave} dropped`, () => ([...presence, ...channel].every((f) => f.closedAt !== undefined) ? true : undefined), 2 * handshakeMs + 10_000);
        // Within the bounds (5 s on the presence port, twice the handshake timeout on the
        // channel port), with a margin for a busy machine's timers.
        expect(Math.max(...presence.map((f) => f.closedAt! - f.at))).toBeLessThan(PRESENCE_CONNECTION_TIMEOUT_MS + 2_000);
        expect(Math.max(...channel.map((f) => f.closedAt! - f.at))).toBeLessThan(2 * handshakeMs + 2_000);
        const [a, b] = await Promise.all([p.status('alpha'), p.status('beta')]);
        expect(a).toMatchObject({ role: 'active', failover: { serving: true }, peer: { connected: true } });
        expect(b).toMatchObject({ role: 'passive', peer: { connected: true } });
        expect(b.failover.presence).not.toBe('dead');
      }
      // A while after the floods, still the same.
      await sleep(3_000);
    } finally {
      clearInterval(sampler);
    }
    expect(alpha.exitCode).toBeNull();
    expect(alpha.signalCode).toBeNull();
    const [a, b] = await Promise.all([p.status('alpha'), p.status('beta')]);
    expect(a).toMatchObject({ role: 'active', failover: { serving: true } });
    expect(b).toMatchObject({ role: 'passive', failover: { serving: false } });
    expect(p.logLines('beta').filter((l) => String(l.msg).startsWith('failover: promote'))).toEqual([]);
    expect(p.logLines('beta').filter((l) => l.component === 'links' && l.to === 'dead')).toEqual([]);
    // The scripts' own log: beta never started the application.
    expect(readScriptsLog(p.info.scriptsLog).filter((e) => e.node === 'beta' && e.script === 'start')).toEqual([]);
    const emfile = p.logLines('alpha').filter((l) => JSON.stringify(l).includes('EMFILE')).length;
    process.stdout.write(`[flood] alpha at ${NOFILE} descriptors: peak ${peakFds} open, ${emfile} log lines mentioning EMFILE\n`);
    expect(peakFds).toBeLessThan(NOFILE);
    expect(p.logLines('alpha').some((l) => String(l.msg).startsWith('presence: too many open connections'))).toBe(true);
    expect(p.logLines('alpha').some((l) => String(l.msg).startsWith('channel: too many connections not authenticated yet'))).toBe(true);
  }, 180_000);
});
