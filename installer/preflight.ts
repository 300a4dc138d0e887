// tandem check: observe this node (preflight-facts.ts), judge (preflight-checks.ts). Used by the
// check command on an installed node and by install before it writes anything.
import type { TandemConfig } from '../shared/config/index.ts';
import type { ModuleScript, ModuleSpec } from './modules/index.ts';
import { evaluatePreflight, type CheckResult, type PreflightContext } from './preflight-checks.ts';
import { gatherFacts } from './preflight-facts.ts';

export interface PreflightInput {
  config: TandemConfig;
  mode: PreflightContext['mode'];
  modules: ModuleSpec[];
  rendered: ModuleScript[];
  protectedSystemPaths: string[];
  key: Buffer | undefined;
  agentRunning: boolean;
  peerInstallHint?: string;
  inotifyFile?: string;
}

export async function runPreflight(i: PreflightInput): Promise<CheckResult[]> {
  const programs = i.rendered.flatMap((m) => m.needs.map((name) => ({ name, neededBy: m.title })));
  // A ping target the node cannot run is left out of the public verdict: without any usable
  // target a node cannot tell that it is isolated (agent/links), so a missing ping is a failure.
  for (const t of i.config.links.public.targets) if (t.kind === 'ping') programs.push({ name: 'ping', neededBy: `public check ${t.url}` });
  const facts = await gatherFacts({ config: i.config, key: i.key, agentRunning: i.agentRunning, programs, ...(i.inotifyFile === undefined ? {} : { inotifyFile: i.inotifyFile }) });
  return evaluatePreflight(facts, {
    mode: i.mode,
    node: i.config.self.name,
    journalMaxBytes: i.config.journal.maxBytes,
    protectedSystemPaths: i.protectedSystemPaths,
    modules: i.modules,
    ...(i.peerInstallHint === undefined ? {} : { peerInstallHint: i.peerInstallHint }),
  });
}

export { formatChecks } from './preflight-checks.ts';
export type { CheckResult, CheckLevel } from './preflight-checks.ts';
