// tandem install secondary --from PACK: the second node, a clone of the primary's configuration
// with its own name, role and (optionally) its own modules and fence. It opens the pack (code
// or pair key), checks the node (the peer's reachability and clock included: the pair key is
// known now), writes everything through the recorder, starts the agent and shows the initial
// synchronisation until the pair is in sync.
import { TandemError } from '../shared/errors.ts';
import { readPairKey } from '../shared/pair-key.ts';
import { daemonReload, startAgentService, systemdRuns, tandemInstallation } from './agent-service.ts';
import { checkModules, parsePrimaryAnswers, protectedDirs, type PrimaryAnswers, type SecondaryAnswers } from './answers.ts';
import { openPack, readPackHeader, type PackHeader } from './clone-pack.ts';
import { controlUrl, type InstallIo } from './install-io.ts';
import type { InstallLayout } from './install-layout.ts';
import { planNode, type NodePlan } from './install-plan.ts';
import { describeWritten } from './install-primary.ts';
import { refuseExistingInstall, writeNode } from './install-writer.ts';
import { formatChecks, runPreflight, type CheckResult } from './preflight.ts';
import { SyncProgress } from './sync-progress.ts';

export interface SecondaryOptions {
  layout: InstallLayout;
  packFile: string;
  answers: SecondaryAnswers;
  /** Asks the operator for the pack code when neither the answers nor the environment give it. */
  askCode?: (header: PackHeader) => Promise<string>;
  /** The code from the environment (TANDEM_PACK_CODE), if set. */
  envCode?: string | undefined;
  start: boolean;
  /** How long to wait for the pair to be in sync after the start. */
  waitMs: number;
  io: InstallIo;
}

export interface SecondaryResult {
  plan: NodePlan;
  checks: CheckResult[];
  started: { how: 'systemd' | 'process'; pid: number } | undefined;
  /** Milliseconds from the agent's start to in sync (undefined without --start). */
  syncMs: number | undefined;
}

const POLL_MS = 250;

function usage(reason: string, hint: string): TandemError {
  return new TandemError({ code: 'TANDEM_ERR_USAGE', op: 'tandem install secondary', reason, hint });
}

export async function installSecondary(o: SecondaryOptions): Promise<SecondaryResult> {
  const L = o.layout;
  const a = o.answers;
  const header = readPackHeader(o.packFile);
  let opened: ReturnType<typeof openPack>;
  if (a.pairKey !== undefined) opened = openPack(o.packFile, { pairKey: readPairKey(a.pairKey) });
  else {
    const code = a.packCode ?? o.envCode ?? (o.askCode === undefined ? undefined : await o.askCode(header));
    if (code === undefined || code.trim() === '') throw usage('the pack code is needed to open the clone pack', 'give it as packCode in --answers, in TANDEM_PACK_CODE, or type it when asked (in a terminal); or name a copy of the pair key (--key FILE)');
    opened = openPack(o.packFile, { code });
  }
  // The pack is sealed, and still validated like the primary's answers it carries: it names
  // what this node's scripts will run as root.
  let p: PrimaryAnswers;
  try {
    p = parsePrimaryAnswers({ pair: opened.payload.pair, node: opened.payload.from, nodes: opened.payload.nodes, protect: opened.payload.protect, modules: opened.payload.modules, publicTargets: opened.payload.publicTargets, settings: opened.payload.settings }, 'clone pack');
  } catch (err) {
    throw new TandemError({ code: 'TANDEM_ERR_PACK_INVALID', op: `open clone pack ${o.packFile}`, reason: `its contents are not valid: ${(err as Error).message}`, hint: 'make the pack with the same Tandem release as this one', cause: err });
  }
  const from = opened.payload.from;
  const to = opened.payload.to;
  const node = a.node ?? to;
  if (p.nodes[node] === undefined || node === from) throw usage(`node "${node}" is not the pack's second node (${to})`, `leave node: out of the answers, or name ${to}`);
  const modules = a.modules ?? p.modules;
  checkModules(modules, Object.keys(p.nodes), 'answers', 'modules');
  const protect = protectedDirs(p.protect);

  const plan = planNode({
    layout: L,
    pair: p.pair,
    node,
    role: 'passive',
    nodes: p.nodes,
    protect,
    modules,
    publicTargets: a.publicTargets ?? p.publicTargets,
    fence: a.fence,
    settings: p.settings,
    ...tandemInstallation(),
  });
  refuseExistingInstall(plan);

  o.io.out(`Clone pack of pair ${p.pair} from ${from} (Tandem ${header.tandem}, made ${header.createdAt}): installing ${node}${L.underRoot ? ` under ${L.root}` : ''}.`);
  o.io.out(`Checking node ${node}:`);
  const checks = await runPreflight({
    config: plan.config,
    mode: 'secondary',
    modules,
    rendered: plan.scripts.modules,
    protectedSystemPaths: protect.map((d) => d.path),
    key: opened.pairKey,
    agentRunning: false,
  });
  o.io.checks?.(checks);
  o.io.out(formatChecks(checks));
  if (checks.some((c) => c.level === 'fail')) {
    throw new TandemError({ code: 'TANDEM_ERR_PREFLIGHT_FAILED', op: 'tandem install secondary', reason: `${checks.filter((c) => c.level === 'fail').map((c) => c.title).join(', ')} failed; nothing was written`, hint: 'apply the fix printed under each FAIL and run the install again' });
  }
  writeNode(plan, opened.pairKey, 'secondary', { modules, fence: a.fence });
  o.io.out(describeWritten(plan));
  if (!o.start) {
    daemonReload(L);
    o.io.out(`Not started (--no-start). Start it with: ${systemdRuns(L) ? 'systemctl start tandem' : `tandem agent -c ${plan.configPath}`}`);
    return { plan, checks, started: undefined, syncMs: undefined };
  }
  const url = controlUrl(plan.config.self.control);
  const probe = async () => {
    const s = await o.io.status(url, 1000).catch(() => undefined);
    return s === undefined ? undefined : { node: s.node, pid: s.pid };
  };
  const t0 = Date.now();
  const started = await startAgentService(L, plan.configPath, node, probe);
  o.io.out(`Agent started (${started.how === 'systemd' ? 'systemd unit tandem.service' : `process ${started.pid}`}); initial synchronisation from ${from}:`);
  const progress = new SyncProgress(from);
  const deadline = t0 + o.waitMs;
  for (;;) {
    const s = await o.io.status(url, 2000).catch(() => undefined);
    const v = progress.view(s, Date.now());
    o.io.progress(v.line);
    if (v.done) break;
    if (Date.now() > deadline) {
      throw new TandemError({ code: 'TANDEM_ERR_INSTALL_FAILED', op: 'tandem install secondary', reason: `installed and started, but not in sync within ${Math.round(o.waitMs / 1000)} s: ${v.line}`, hint: `the agent goes on by itself: tandem status -c ${plan.configPath}` });
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  const syncMs = Date.now() - t0;
  o.io.out(`In sync with ${from} after ${(syncMs / 1000).toFixed(1)} s. The pair is ready: tandem status -c ${plan.configPath}`);
  return { plan, checks, started, syncMs };
}
