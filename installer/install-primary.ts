// tandem install primary: the first node of a pair. It checks the node, writes the config, the
// pair key (0600; the control API's token is derived from it), the scripts composed from the
// application modules and the systemd unit, enables and starts the agent, and writes the clone
// pack the secondary is installed from. Nothing is written when a check fails; a failure half way
// removes what was written.
import fs from 'node:fs';
import path from 'node:path';
import { TandemError } from '../shared/errors.ts';
import { generatePairKey } from '../shared/pair-key.ts';
import { TANDEM_VERSION } from '../shared/version.ts';
import { daemonReload, startAgentService, systemdRuns, tandemInstallation } from './agent-service.ts';
import { protectedDirs, type PrimaryAnswers } from './answers.ts';
import { generatePackCode, sealPack, type PackPayload } from './clone-pack.ts';
import { controlUrl, type InstallIo } from './install-io.ts';
import type { InstallLayout } from './install-layout.ts';
import { planNode, type NodePlan } from './install-plan.ts';
import { refuseExistingInstall, writeNode } from './install-writer.ts';
import { formatChecks, runPreflight, type CheckResult } from './preflight.ts';

export interface PrimaryOptions {
  layout: InstallLayout;
  answers: PrimaryAnswers;
  packFile: string;
  start: boolean;
  io: InstallIo;
}

export interface PrimaryResult {
  plan: NodePlan;
  checks: CheckResult[];
  packFile: string;
  /** Undefined when the answers gave the code (packCode): it is not printed again. */
  packCode: string | undefined;
  started: { how: 'systemd' | 'process'; pid: number } | undefined;
}

export async function installPrimary(o: PrimaryOptions): Promise<PrimaryResult> {
  const a = o.answers;
  const L = o.layout;
  const protect = protectedDirs(a.protect);
  const peer = Object.keys(a.nodes).find((n) => n !== a.node)!;
  const plan = planNode({
    layout: L,
    pair: a.pair,
    node: a.node,
    role: 'active',
    nodes: a.nodes,
    protect,
    modules: a.modules,
    publicTargets: a.publicTargets,
    fence: a.fence,
    settings: a.settings,
    ...tandemInstallation(),
  });
  refuseExistingInstall(plan);
  const packFile = path.resolve(o.packFile);
  if (fs.existsSync(packFile)) {
    throw new TandemError({ code: 'TANDEM_ERR_INSTALL_FAILED', op: 'tandem install primary', reason: `the clone pack ${packFile} exists already`, hint: 'name a new file with --pack (or remove the old pack); nothing was changed' });
  }

  o.io.out(`Checking node ${a.node} of pair ${a.pair}${L.underRoot ? ` under ${L.root}` : ''}:`);
  const checks = await runPreflight({
    config: plan.config,
    mode: 'primary',
    modules: a.modules,
    rendered: plan.scripts.modules,
    protectedSystemPaths: protect.map((p) => p.path),
    key: undefined,
    agentRunning: false,
    peerInstallHint: `copy ${path.basename(packFile)} there and run: tandem install secondary --from ${path.basename(packFile)}`,
  });
  o.io.checks?.(checks);
  o.io.out(formatChecks(checks));
  if (checks.some((c) => c.level === 'fail')) {
    throw new TandemError({ code: 'TANDEM_ERR_PREFLIGHT_FAILED', op: 'tandem install primary', reason: `${checks.filter((c) => c.level === 'fail').map((c) => c.title).join(', ')} failed; nothing was written`, hint: 'apply the fix printed under each FAIL and run the install again' });
  }

  const key = generatePairKey();
  writeNode(plan, key, 'primary', { modules: a.modules, fence: a.fence });
  const code = a.packCode ?? generatePackCode();
  const payload: PackPayload = {
    pair: a.pair,
    from: a.node,
    to: peer,
    nodes: a.nodes,
    protect,
    modules: a.modules,
    publicTargets: a.publicTargets,
    settings: a.settings,
  };
  fs.mkdirSync(path.dirname(packFile), { recursive: true });
  fs.writeFileSync(packFile, sealPack(payload, key, code, { tandem: TANDEM_VERSION, now: new Date() }), { mode: 0o600, flag: 'wx' });

  o.io.out(describeWritten(plan));
  let started: PrimaryResult['started'];
  if (o.start) {
    started = await startAgentService(L, plan.configPath, a.node, async () => {
      const s = await o.io.status(controlUrl(plan.config.self.control), 1000).catch(() => undefined);
      return s === undefined ? undefined : { node: s.node, pid: s.pid };
    });
    o.io.out(`Agent started (${started.how === 'systemd' ? 'systemd unit tandem.service' : `process ${started.pid}; systemd does not run${L.underRoot ? ' under --root' : ''}, so it will not start again at boot`}).`);
  } else {
    daemonReload(L);
    o.io.out(`Not started (--no-start). Start it with: ${systemdRuns(L) ? 'systemctl start tandem' : `tandem agent -c ${plan.configPath}`}`);
  }
  o.io.out(`
Clone pack for ${peer}: ${packFile}
${a.packCode === undefined ? `Pack code (shown once; the pack opens only with it):  ${code}` : 'Pack code: the packCode of the answers file.'}
On ${peer}: copy the pack there, then run
  tandem install secondary --from ${path.basename(packFile)}
and type the pack code when asked (or put it in its answers file as packCode). The pack holds the
pair key, sealed: delete it once ${peer} is installed.`);
  return { plan, checks, packFile, packCode: a.packCode === undefined ? code : undefined, started };
}

/** What was written, as the operator looks for it. */
export function describeWritten(plan: NodePlan): string {
  const L = plan.input.layout;
  const titles = plan.scripts.modules.map((m, i) => `    ${i + 1}. ${m.title}`);
  return [
    `Installed node ${plan.input.node} (${plan.input.role === 'active' ? 'primary, starts active' : 'secondary, starts passive'}):`,
    `  config           ${plan.configPath}`,
    `  pair key         ${L.path('keyFile')} (0600; the control API token derives from it)`,
    `  scripts          ${L.path('scriptsDir')}/{start,stop,check${plan.scripts.fence === undefined ? '' : ',fence'}}.sh`,
    ...(titles.length === 0 ? ['  modules          none (the scripts only log)'] : ['  modules', ...titles]),
    `  protected        ${plan.protectedDirs.join(', ')}`,
    `  state, logs      ${L.path('stateDir')}, ${L.path('logDir')}`,
    `  systemd unit     ${L.path('unit')} (enabled: ${L.path('wantsLink')})`,
    `  manifest         ${L.path('manifest')} (tandem uninstall removes what it lists)`,
  ].join('\n');
}
