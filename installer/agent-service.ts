// Starts and stops an installed node's agent. On a system that runs systemd (and not under
// --root) that is the unit's job: daemon-reload, start, stop. Elsewhere (a container without
// systemd, a test root) the agent runs as a detached process, its pid in /run/tandem/agent.pid,
// its early output in /var/log/tandem/agent.out. Either way the agent counts as started only
// once its control API answers as the node it should be.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TandemError } from '../shared/errors.ts';
import { PACKAGE_ROOT } from '../shared/version.ts';
import { UNIT_NAME, type InstallLayout } from './install-layout.ts';
import { AGENT_NODE_ARGS, agentEnv } from '../shared/agent-node-args.ts';

/** What the unit and the scripts run: this Node.js and this installation's command. */
export function tandemInstallation(): { nodeBin: string; tandemEntry: string; docsDir: string } {
  const root = PACKAGE_ROOT ?? path.resolve('.');
  return { nodeBin: process.execPath, tandemEntry: path.join(root, 'bin', 'tandem.mjs'), docsDir: path.join(root, 'docs') };
}

/** systemd manages the agent only on the real system, when it is the init system. */
export function systemdRuns(layout: InstallLayout): boolean {
  return !layout.underRoot && fs.existsSync('/run/systemd/system');
}

export interface AgentProbe {
  /** The node name and pid the control API reports, or undefined when it does not answer. */
  (): Promise<{ node: string; pid: number } | undefined>;
}

const START_WAIT_MS = 30_000;
const STOP_WAIT_MS = 60_000;

function systemctl(args: string[]): void {
  const r = spawnSync('systemctl', args, { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) {
    throw new TandemError({ code: 'TANDEM_ERR_INSTALL_FAILED', op: `systemctl ${args.join(' ')}`, reason: (r.stderr || r.error?.message || `exit ${r.status}`).trim(), hint: `journalctl -u ${UNIT_NAME} says why` });
  }
}

export function daemonReload(layout: InstallLayout): void {
  if (systemdRuns(layout)) systemctl(['daemon-reload']);
}

/** Starts the agent and waits until its control API answers as `node`; returns how it runs. */
export async function startAgentService(layout: InstallLayout, config: string, node: string, probe: AgentProbe): Promise<{ how: 'systemd' | 'process'; pid: number }> {
  let child: ReturnType<typeof spawn> | undefined;
  const out = path.join(layout.path('logDir'), 'agent.out');
  if (systemdRuns(layout)) {
    systemctl(['daemon-reload']);
    systemctl(['start', UNIT_NAME]);
  } else {
    const { nodeBin, tandemEntry } = tandemInstallation();
    const fd = fs.openSync(out, 'a', 0o600);
    try {
      child = spawn(nodeBin, [...AGENT_NODE_ARGS, tandemEntry, 'agent', '-c', config], { detached: true, stdio: ['ignore', fd, fd], env: agentEnv() });
    } finally {
      fs.closeSync(fd);
    }
    child.unref();
    fs.writeFileSync(layout.path('pidFile'), `${child.pid}\n`, { mode: 0o644 });
  }
  const deadline = Date.now() + START_WAIT_MS;
  for (;;) {
    const seen = await probe();
    if (seen?.node === node) return { how: child === undefined ? 'systemd' : 'process', pid: seen.pid };
    if (child !== undefined && child.exitCode !== null) break;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const tail = fs.existsSync(out) ? fs.readFileSync(out, 'utf8').trim().split('\n').slice(-5).join('\n') : '';
  throw new TandemError({
    code: 'TANDEM_ERR_INSTALL_FAILED',
    op: `start the agent of ${node}`,
    reason: `its control API did not answer within ${START_WAIT_MS / 1000} s${tail === '' ? '' : `; it said:\n${tail}`}`,
    hint: systemdRuns(layout) ? `journalctl -u ${UNIT_NAME}` : `see ${layout.path('agentLog')} and ${out}`,
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Whether `pid` runs Tandem's agent on `config` (a stale pid file must not get a stranger
 * killed): its arguments hold `agent` and the config, relative ones read from its own cwd.
 */
function isAgentOf(pid: number, config: string): boolean {
  try {
    const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
    return args.includes('agent') && args.some((a) => a !== '' && path.resolve(cwd, a) === config);
  } catch {
    return false;
  }
}

/** Stops the agent (SIGTERM, SIGKILL after a minute); true when one was running. */
export async function stopAgentService(layout: InstallLayout, config: string, node: string, probe: AgentProbe): Promise<boolean> {
  if (systemdRuns(layout)) {
    const active = spawnSync('systemctl', ['is-active', '--quiet', UNIT_NAME]).status === 0;
    if (active) systemctl(['stop', UNIT_NAME]);
    return active;
  }
  const seen = await probe().catch(() => undefined);
  const pids = new Set<number>();
  // The control API at this node's address answered as this node: that process is its agent.
  const trusted = seen?.node === node ? seen.pid : undefined;
  if (trusted !== undefined) pids.add(trusted);
  try {
    const p = Number(fs.readFileSync(layout.path('pidFile'), 'utf8').trim());
    if (Number.isSafeInteger(p) && p > 1) pids.add(p);
  } catch {
    // No pid file: started some other way, or not at all.
  }
  let stopped = false;
  for (const pid of pids) {
    if (!alive(pid) || (pid !== trusted && !isAgentOf(pid, config))) continue;
    process.kill(pid, 'SIGTERM');
    stopped = true;
    const deadline = Date.now() + STOP_WAIT_MS;
    while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
  return stopped;
}
