// Writes a complete demo pair into a directory: DIR/alpha and DIR/beta, each with its
// tandem.yaml, protected directory data/, scripts and state directory, the shared pair key,
// and DIR/pair.json describing it all. alpha starts active. Nothing is started here.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { TandemError } from '../../shared/errors.ts';
import { projectRoot } from '../../shared/project-root.ts';
import { generatePairKey, writePairKey } from '../../shared/pair-key.ts';
import { renderConfig, renderDemoScripts } from '../../installer/index.ts';
import { isBrowserUnsafePort } from '../../shared/unsafe-ports.ts';

export interface DemoNode {
  name: string;
  role: 'active' | 'passive';
  config: string;
  controlUrl: string;
  dataDir: string;
  stateDir: string;
  scriptsDir: string;
  /** The demo application's pid file, written by start.sh while this node serves. */
  pidFile: string;
  logFile: string;
}

export interface DemoPair {
  pair: string;
  dir: string;
  appUrl: string;
  scriptsLog: string;
  nodes: DemoNode[];
}

const APP_HOST = '127.0.0.100';

/** Ports the kernel says are free now (each bound to port 0, read back, released). */
/**
 * Where listening ports are chosen: outside the kernel's ephemeral range. A port found free
 * there can be taken by an outgoing connection's local end before the agent binds it (seen as
 * EADDRINUSE when many connections are made, as in the test suite).
 */
function listenPortRange(): [number, number] {
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number) as [number, number];
    if (lo > 12_000) return [10_000, lo - 1];
    if (hi < 63_000) return [hi + 1, 65_000];
  } catch {
    // Not Linux: the common defaults leave 10000-32767 outside the ephemeral range.
  }
  return [10_000, 32_000];
}

/** Fewest ports a range given to the demo must hold: six for the agents, one for the application. */
export const DEMO_PORTS = 7;

/**
 * `tandem demo --ports LO-HI`: the range every port of a new demo pair is chosen from (both
 * agents' channel, control and public ports, and the demo application's). For a machine where
 * only some ports may be used, and for running several demos at once without either taking a
 * port the other found free a moment before. Throws TANDEM_ERR_USAGE for anything but two
 * port numbers 1024-65535, in order, at least DEMO_PORTS apart.
 */
export function parsePortRange(text: string): [number, number] {
  const usage = (reason: string) =>
    new TandemError({ code: 'TANDEM_ERR_USAGE', op: 'tandem demo --ports', reason, hint: `give two port numbers from 1024 to 65535, the first the lower, at least ${DEMO_PORTS} ports together: e.g. --ports 20000-20099` });
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(text.trim());
  if (m === null) throw usage(`"${text}" is not a range LO-HI`);
  const lo = Number(m[1]);
  const hi = Number(m[2]);
  if (lo < 1024 || hi > 65_535) throw usage(`${lo}-${hi} leaves 1024-65535 (ports below 1024 need root, and a demo must not take them)`);
  if (hi - lo + 1 < DEMO_PORTS) throw usage(`${lo}-${hi} holds ${Math.max(0, hi - lo + 1)} ports, fewer than the ${DEMO_PORTS} a demo pair listens on`);
  return [lo, hi];
}

async function freePorts(n: number, host = '127.0.0.1', range: [number, number] = listenPortRange()): Promise<number[]> {
  const [lo, hi] = range;
  const ports = new Set<number>();
  for (let tries = 0; ports.size < n && tries < 1000; tries++) {
    const port = lo + crypto.randomInt(hi - lo + 1);
    // A port browsers refuse would leave the demo's console unopenable.
    if (!ports.has(port) && !isBrowserUnsafePort(port) && (await portFree(host, port))) ports.add(port);
  }
  if (ports.size < n) {
    throw new TandemError({ code: 'TANDEM_ERR_USAGE', op: 'choose the demo pair\'s ports', reason: `fewer than ${n} free ports between ${lo} and ${hi} on ${host}`, hint: 'free some ports, or write the addresses into each tandem.yaml by hand' });
  }
  return [...ports];
}

async function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

export function readDemoPair(dir: string): DemoPair | undefined {
  const file = path.join(dir, 'pair.json');
  if (!fs.existsSync(file)) return undefined;
  return JSON.parse(fs.readFileSync(file, 'utf8')) as DemoPair;
}

/**
 * `portRange`: where the listening ports are chosen ([lo, hi]; default: below or above the
 * kernel's ephemeral range, and the application on 8080 when it is free). Given, the
 * application's port comes from it too (`tandem demo --ports`). Tests give each worker its own,
 * so two never pick the same port.
 */
export async function initDemoPair(dirArg: string, opts: { appPort?: number; portRange?: [number, number] } = {}): Promise<DemoPair> {
  const dir = path.resolve(dirArg);
  if (fs.existsSync(path.join(dir, 'pair.json'))) {
    throw new TandemError({
      code: 'TANDEM_ERR_USAGE',
      op: `tandem demo --init-only --dir ${dir}`,
      reason: 'a pair is already written there',
      hint: `run it with: tandem demo --dir ${dir}   (or choose an empty directory)`,
    });
  }
  const existed = fs.existsSync(dir);
  fs.mkdirSync(dir, { recursive: true });
  if (!existed) fs.chmodSync(dir, 0o755);
  const [aChannel, aControl, bChannel, bControl, aPublic, bPublic] = (await freePorts(6, '127.0.0.1', opts.portRange)) as [number, number, number, number, number, number];
  // 0 asks for any free port (tests run several pairs at once).
  let appPort = opts.appPort ?? (opts.portRange === undefined ? 8080 : 0);
  if (appPort === 0 || !(await portFree(APP_HOST, appPort))) appPort = (await freePorts(1, APP_HOST, opts.portRange))[0]!;
  const key = generatePairKey();
  const scriptsLog = path.join(dir, 'scripts.log');
  const nodesSpec = {
    alpha: { channel: `127.0.0.1:${aChannel}`, control: `127.0.0.1:${aControl}`, public: `127.0.0.1:${aPublic}` },
    beta: { channel: `127.0.0.1:${bChannel}`, control: `127.0.0.1:${bControl}`, public: `127.0.0.1:${bPublic}` },
  };
  const nodes: DemoNode[] = [];
  // Each start script must know the other node's stop script and pid file (demo-only fencing,
  // see DemoScriptSpec.demoFence), so both nodes' script paths are fixed before either is written.
  const scriptsDirOf = (n: string) => path.join(dir, n, 'scripts');
  const runDirOf = (n: string) => path.join(dir, n, 'run');
  for (const [name, role] of [['alpha', 'active'], ['beta', 'passive']] as const) {
    const peerName = name === 'alpha' ? 'beta' : 'alpha';
    const nodeDir = path.join(dir, name);
    const dataDir = path.join(nodeDir, 'data');
    const stateDir = path.join(nodeDir, 'state');
    const scriptsDir = scriptsDirOf(name);
    const logFile = path.join(nodeDir, 'agent.log');
    // Explicit modes, whatever the caller's umask (002 for many users): an agent refuses to
    // start on scripts, a key or a state directory below a directory others can write.
    for (const [d, mode] of [[nodeDir, 0o755], [dataDir, 0o755], [stateDir, 0o700], [scriptsDir, 0o755]] as const) {
      fs.mkdirSync(d, { recursive: true });
      fs.chmodSync(d, mode);
    }
    writePairKey(path.join(nodeDir, 'pair.key'), key);
    const config = path.join(nodeDir, 'tandem.yaml');
    fs.writeFileSync(
      config,
      renderConfig({
        pair: 'demo',
        node: name,
        role,
        nodes: nodesSpec,
        roots: [{ name: 'data', path: './data', exclude: ['*.swp', '*~'] }],
        stateDir: './state',
        keyFile: './pair.key',
        logFile: './agent.log',
      }),
    );
    const scripts = renderDemoScripts({
      node: name,
      nodeBin: process.execPath,
      demoApp: path.join(projectRoot(), 'console/demo/demo-app.mjs'),
      dataDir,
      runDir: runDirOf(name),
      appHost: APP_HOST,
      appPort,
      scriptsLog,
      demoFence: { peerNode: peerName, peerStopScript: path.join(scriptsDirOf(peerName), 'stop.sh'), peerPidFile: path.join(runDirOf(peerName), 'app.pid') },
    });
    for (const [s, text] of Object.entries(scripts)) fs.writeFileSync(path.join(scriptsDir, `${s}.sh`), text, { mode: 0o755 });
    const pidFile = path.join(runDirOf(name), 'app.pid');
    nodes.push({ name, role, config, controlUrl: `http://${nodesSpec[name].control}`, dataDir, stateDir, scriptsDir, pidFile, logFile });
  }
  const alphaData = nodes[0]!.dataDir;
  fs.writeFileSync(path.join(alphaData, 'README.txt'), 'This is the protected directory of the demo pair.\nEdit files here on alpha; they appear in beta/data.\n');
  fs.mkdirSync(path.join(alphaData, 'notes'));
  fs.writeFileSync(path.join(alphaData, 'notes', 'hello.txt'), 'hello from alpha\n');
  const pair: DemoPair = { pair: 'demo', dir, appUrl: `http://${APP_HOST}:${appPort}/`, scriptsLog, nodes };
  fs.writeFileSync(path.join(dir, 'pair.json'), `${JSON.stringify(pair, null, 2)}\n`);
  return pair;
}

/** The lines `--init-only` prints: how to start each agent by hand. */
export function describePair(pair: DemoPair): string {
  const bin = path.join(projectRoot(), 'bin/tandem.mjs');
  return [
    `Demo pair written to ${pair.dir}`,
    ...pair.nodes.map((n) => `  ${n.name} (${n.role}):  node ${bin} agent -c ${n.config}`),
    `  status:           node ${bin} status -c ${pair.nodes[0]!.config}`,
    `  application:      ${pair.appUrl} (started by the active node's scripts/start.sh)`,
    `  description:      ${path.join(pair.dir, 'pair.json')}`,
  ].join('\n');
}
