// tandem uninstall: stops the agent, runs the stop script (the node must not keep the public
// identity or the applications once Tandem is gone), then removes what the install manifest
// lists, newest first. Protected data stays, whatever happens: directories marked keep are never
// removed, and nothing outside the manifest is touched.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TandemError } from '../shared/errors.ts';
import { daemonReload, stopAgentService } from './agent-service.ts';
import { controlUrl, type InstallIo } from './install-io.ts';
import type { InstallLayout } from './install-layout.ts';
import { readManifest, removeEntries, type RemovalReport } from './install-manifest.ts';
import { loadConfig } from '../shared/config/index.ts';

export interface UninstallOptions {
  layout: InstallLayout;
  /** Go on when the stop script fails (the identity may stay on this node). */
  force: boolean;
  io: InstallIo;
}

export interface UninstallResult extends RemovalReport {
  node: string;
  agentStopped: boolean;
  stopScript: 'ok' | 'failed' | 'absent';
}

const STOP_SCRIPT_TIMEOUT_MS = 120_000;

export async function uninstall(o: UninstallOptions): Promise<UninstallResult> {
  const L = o.layout;
  const manifest = readManifest(L.path('manifest'));
  if (manifest === undefined) {
    throw new TandemError({ code: 'TANDEM_ERR_INSTALL_FAILED', op: 'tandem uninstall', reason: `no install manifest at ${L.path('manifest')}: nothing was installed here by tandem install`, hint: L.underRoot ? 'name the --root the install used' : 'remove a hand-made installation by hand (docs/install.md, "Uninstall")' });
  }
  const config = L.path('config');
  let url: string | undefined;
  try {
    url = controlUrl(loadConfig(config).self.control);
  } catch {
    // No readable config: the agent cannot be asked; the pid file still can.
  }
  const probe = async () => {
    if (url === undefined) return undefined;
    const s = await o.io.status(url, 1000).catch(() => undefined);
    return s === undefined ? undefined : { node: s.node, pid: s.pid };
  };
  o.io.out(`Uninstalling node ${manifest.node} of pair ${manifest.pair}${L.underRoot ? ` under ${L.root}` : ''}.`);
  const agentStopped = await stopAgentService(L, config, manifest.node, probe);
  o.io.out(agentStopped ? 'Agent stopped.' : 'The agent was not running.');

  const stop = path.join(L.path('scriptsDir'), 'stop.sh');
  let stopScript: UninstallResult['stopScript'] = 'absent';
  if (fs.existsSync(stop)) {
    const r = spawnSync(stop, [], { encoding: 'utf8', timeout: STOP_SCRIPT_TIMEOUT_MS, cwd: path.dirname(stop), env: { ...process.env, TANDEM_NODE: manifest.node, TANDEM_PAIR: manifest.pair, TANDEM_SCRIPT: 'stop', TANDEM_REASON: 'uninstall', TANDEM_ROLE: 'passive' } });
    stopScript = r.status === 0 ? 'ok' : 'failed';
    if (stopScript === 'failed') {
      const why = (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').slice(-3).join('; ');
      if (!o.force) {
        throw new TandemError({ code: 'TANDEM_ERR_INSTALL_FAILED', op: 'tandem uninstall', reason: `the stop script failed (${why}); this node may still hold the public identity or run the applications. The agent is stopped; nothing was removed`, hint: `fix what the stop script reports and run tandem uninstall again, or add --force to remove Tandem anyway (${stop} by hand first)` });
      }
      o.io.out(`The stop script failed (${why}); going on (--force).`);
    } else o.io.out('Stop script ran: the applications and the public identity are released here.');
  }
  const report = removeEntries(manifest.entries, L.root === '/' ? undefined : L.root);
  daemonReload(L);
  for (const k of report.kept) o.io.out(`  kept ${k.path}: ${k.why}`);
  o.io.out(`Removed ${report.removed.length} paths Tandem had created; protected data left untouched.`);
  return { ...report, node: manifest.node, agentStopped, stopScript };
}
