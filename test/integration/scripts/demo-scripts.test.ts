// The demo's generated scripts, run through the ScriptRunner as the agent runs them: a start
// fences the other node's application when its agent died without stopping it, start and stop
// are idempotent, and the scripts' own log never shows two nodes serving at once.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { initDemoPair, type DemoNode, type DemoPair } from '../../../console/demo/init-pair.ts';
import { ScriptRunner, overlappingStarts, processAlive, readScriptsLog, type ScriptContext } from '../../../agent/scripts/index.ts';
import { silentLogger } from '../../../shared/log.ts';
import { tempDir } from './fixtures.ts';
import { testPortRange } from '../../helpers/ports.ts';

const APP_HOST = '127.0.0.100';
const pairs: { dir: string; pair: DemoPair }[] = [];

afterEach(() => {
  for (const { dir, pair } of pairs.splice(0)) {
    for (const n of pair.nodes) {
      try {
        execFileSync(path.join(n.scriptsDir, 'stop.sh'), { env: { ...process.env, TANDEM_REASON: 'test cleanup' }, stdio: 'ignore', timeout: 15_000 });
      } catch {
        // the pid file fallback below
      }
      const pid = readPid(n);
      if (pid !== undefined && processAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function readPid(n: DemoNode): number | undefined {
  try {
    return Number(fs.readFileSync(n.pidFile, 'utf8').trim());
  } catch {
    return undefined;
  }
}

/** A port free on the demo's application address now (bound to 0, read back, released). */
async function freeAppPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, APP_HOST, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function demo() {
  const dir = tempDir('tandem-demo-scripts-');
  const pair = await initDemoPair(dir, { appPort: await freeAppPort(), portRange: testPortRange() });
  pairs.push({ dir, pair });
  const runners = Object.fromEntries(
    pair.nodes.map((n) => {
      const peer = pair.nodes.find((p) => p !== n)!;
      const runner = new ScriptRunner({
        paths: { start: path.join(n.scriptsDir, 'start.sh'), stop: path.join(n.scriptsDir, 'stop.sh'), check: path.join(n.scriptsDir, 'check.sh') },
        timeoutMs: 30_000,
        checkTimeoutMs: 10_000,
        env: { node: n.name, peer: peer.name, pair: pair.pair },
        log: silentLogger(),
      });
      return [n.name, runner];
    }),
  ) as Record<'alpha' | 'beta', ScriptRunner>;
  const node = (name: string) => pair.nodes.find((n) => n.name === name)!;
  return { pair, runners, node };
}

const active = (reason: string): ScriptContext => ({ role: 'active', reason, generation: 'g1' });
const passive = (reason: string): ScriptContext => ({ role: 'passive', reason, generation: 'g1' });

async function servedBy(appUrl: string): Promise<string> {
  const res = await fetch(new URL('/healthz', appUrl), { signal: AbortSignal.timeout(5000) });
  return ((await res.json()) as { node: string }).node;
}

describe('the demo scripts', () => {
  it('fence the other node: beta\'s start stops alpha\'s orphaned application first, and the log shows no overlap', async () => {
    const { pair, runners, node } = await demo();
    expect(await runners.alpha.run('start', active('start-up'))).toMatchObject({ ok: true });
    expect(await servedBy(pair.appUrl)).toBe('alpha');
    expect(await runners.alpha.run('check', active('monitor'))).toMatchObject({ ok: true });
    const alphaPid = readPid(node('alpha'))!;

    // alpha's agent is killed with -9: nobody runs alpha's stop. beta takes over.
    const started = await runners.beta.run('start', active('failover: the active is gone'));
    expect(started).toMatchObject({ ok: true, exitCode: 0 });
    expect(await servedBy(pair.appUrl)).toBe('beta');
    expect(processAlive(alphaPid)).toBe(false);
    expect(fs.existsSync(node('alpha').pidFile)).toBe(false);
    expect(await runners.alpha.run('check', passive('monitor'))).toMatchObject({ ok: false });
    expect(await runners.beta.run('check', active('monitor'))).toMatchObject({ ok: true });

    const entries = readScriptsLog(pair.scriptsLog);
    expect(entries.map((e) => `${e.node} ${e.script} ${e.event}`)).toEqual([
      'alpha start begin',
      'alpha start ok',
      'beta start fence',
      'alpha stop begin',
      'alpha stop ok',
      'beta start begin',
      'beta start ok',
    ]);
    expect(entries[0]!.reason).toBe('start-up');
    expect(entries[3]!.reason).toBe('fenced by beta: failover: the active is gone');
    expect(entries[6]!.reason).toBe('failover: the active is gone');
    expect(overlappingStarts(entries)).toEqual([]);
  });

  it('start twice keeps the one application it started', async () => {
    const { pair, runners, node } = await demo();
    expect(await runners.alpha.run('start', active('first'))).toMatchObject({ ok: true });
    const pid = readPid(node('alpha'));
    expect(await runners.alpha.run('start', active('second'))).toMatchObject({ ok: true });
    expect(readPid(node('alpha'))).toBe(pid);
    expect(await servedBy(pair.appUrl)).toBe('alpha');
    const entries = readScriptsLog(pair.scriptsLog);
    expect(entries.map((e) => `${e.node} ${e.script} ${e.event} ${e.reason}`)).toEqual(['alpha start begin first', 'alpha start ok first', 'alpha start already-running second']);
    expect(overlappingStarts(entries)).toEqual([]);
  });

  it('never signal a process that merely reuses a number from a stale pid file', async () => {
    const { pair, runners, node } = await demo();
    const stranger = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      fs.mkdirSync(path.dirname(node('alpha').pidFile), { recursive: true });
      fs.writeFileSync(node('alpha').pidFile, `${stranger.pid}\n`);
      expect(await runners.beta.run('start', active('failover'))).toMatchObject({ ok: true });
      expect(await runners.alpha.run('stop', passive('demote'))).toMatchObject({ ok: true });
      expect(processAlive(stranger.pid!)).toBe(true);
      expect(readScriptsLog(pair.scriptsLog).map((e) => `${e.node} ${e.script} ${e.event}`)).toEqual(['beta start begin', 'beta start ok', 'alpha stop begin', 'alpha stop ok']);
    } finally {
      stranger.kill('SIGKILL');
    }
  });

  it('a start that cannot serve leaves nothing behind and says "start failed"', async () => {
    const { pair, runners, node } = await demo();
    // Someone else holds the address and resets every connection: the demo application cannot
    // listen and exits, and a reset must not read as healthy.
    const squatter = net.createServer((socket) => socket.destroy());
    const port = Number(new URL(pair.appUrl).port);
    await new Promise<void>((resolve) => squatter.listen(port, APP_HOST, resolve));
    try {
      const result = await runners.alpha.run('start', active('start-up'));
      expect(result).toMatchObject({ ok: false, exitCode: 1, timedOut: false });
      expect(fs.existsSync(node('alpha').pidFile)).toBe(false);
      const entries = readScriptsLog(pair.scriptsLog);
      expect(entries.map((e) => `${e.node} ${e.script} ${e.event}`)).toEqual(['alpha start begin', 'alpha start failed']);
    } finally {
      await new Promise((r) => squatter.close(r));
    }
  });

  it('stop succeeds when nothing runs, and again after a stop', async () => {
    const { pair, runners } = await demo();
    expect(await runners.beta.run('stop', passive('start-up: the peer is active'))).toMatchObject({ ok: true, exitCode: 0 });
    expect(await runners.alpha.run('start', active('start-up'))).toMatchObject({ ok: true });
    expect(await runners.alpha.run('stop', passive('switchover'))).toMatchObject({ ok: true });
    expect(await runners.alpha.run('stop', passive('switchover'))).toMatchObject({ ok: true });
    expect(readScriptsLog(pair.scriptsLog).map((e) => `${e.node} ${e.script} ${e.event} ${e.reason}`)).toEqual([
      'beta stop begin start-up: the peer is active',
      'beta stop ok start-up: the peer is active',
      'alpha start begin start-up',
      'alpha start ok start-up',
      'alpha stop begin switchover',
      'alpha stop ok switchover',
      'alpha stop begin switchover',
      'alpha stop ok switchover',
    ]);
    await expect(servedBy(pair.appUrl)).rejects.toThrow();
  });
});
