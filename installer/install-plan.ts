// What installing one node writes, computed before anything is written: the directories with
// their modes, tandem.yaml, the scripts composed from the modules, the systemd unit and its
// enable link. Pure: the same answers give the same plan, and the config is validated here (by
// the agent's own loader), so a bad setting stops the install before a single file exists.
import path from 'node:path';
import { parse as parseYaml, parseDocument } from 'yaml';
import { parseConfig, type TandemConfig } from '../shared/config/index.ts';
import { TandemError } from '../shared/errors.ts';
import type { ProtectedDir } from './answers.ts';
import { composeScripts, type NodeScripts } from './compose-scripts.ts';
import { renderConfig } from './config-template.ts';
import { SYSTEM_PATHS, type InstallLayout } from './install-layout.ts';
import type { ModuleSpec } from './modules/index.ts';
import { renderUnit } from './unit-template.ts';

export interface NodePlanInput {
  layout: InstallLayout;
  pair: string;
  node: string;
  role: 'active' | 'passive';
  nodes: Record<string, { channel: string; control: string; public?: string | undefined }>;
  protect: ProtectedDir[];
  modules: ModuleSpec[];
  publicTargets: unknown[];
  fence: string | undefined;
  settings: Record<string, unknown>;
  /** The Node.js binary and Tandem's command that the unit and the scripts run. */
  nodeBin: string;
  tandemEntry: string;
  /** This installation's docs/ (Documentation= of the unit). */
  docsDir: string;
}

export interface PlannedDir {
  path: string;
  mode: number;
  owned?: boolean;
  keep?: boolean;
}

export interface NodePlan {
  input: NodePlanInput;
  peer: string;
  configPath: string;
  configText: string;
  config: TandemConfig;
  scripts: NodeScripts;
  dirs: PlannedDir[];
  files: { path: string; mode: number; content: string }[];
  links: { path: string; target: string }[];
  /** Protected directories under the root. */
  protectedDirs: string[];
}

/** tandem.yaml keys the installer writes itself: settings must not set them. */
const OWNED_KEYS = ['pair', 'node', 'role', 'nodes', 'protect', 'stateDir', 'keyFile', 'scripts.start', 'scripts.stop', 'scripts.check', 'scripts.fence', 'log.file', 'links.public.targets'];

function settingsError(key: string, reason: string): TandemError {
  return new TandemError({ code: 'TANDEM_ERR_USAGE', op: 'tandem install', reason: `key "settings.${key}": ${reason}`, hint: 'settings takes tandem.yaml keys (docs/configuration.md) except those the installer writes itself (docs/install.md)', details: { key: `settings.${key}` } });
}

/** Every leaf of a settings map as [path, value]; maps nest, anything else is a value. */
function leaves(v: unknown, prefix: string[] = []): [string[], unknown][] {
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) return Object.entries(v).flatMap(([k, x]) => leaves(x, [...prefix, k]));
  return [[prefix, v]];
}

export function planNode(i: NodePlanInput): NodePlan {
  const L = i.layout;
  const peer = Object.keys(i.nodes).find((n) => n !== i.node)!;
  const protectedDirs = i.protect.map((p) => L.under(p.path));
  const scriptPath = (n: string) => path.join(L.path('scriptsDir'), `${n}.sh`);
  const scripts = composeScripts({
    pair: i.pair,
    node: i.node,
    peer,
    modules: i.modules,
    fence: i.fence,
    runDir: L.path('runDir'),
    scriptsLog: L.path('scriptsLog'),
    nodeBin: i.nodeBin,
    under: (p) => L.under(p),
  });

  let text = renderConfig({
    pair: i.pair,
    node: i.node,
    role: i.role,
    nodes: i.nodes,
    roots: i.protect.map((p, k) => ({ name: p.name, path: protectedDirs[k]!, exclude: p.exclude })),
    stateDir: L.path('stateDir'),
    keyFile: L.path('keyFile'),
    logFile: L.path('agentLog'),
  });
  const doc = parseDocument(text);
  doc.setIn(['scripts', 'start'], scriptPath('start'));
  doc.setIn(['scripts', 'stop'], scriptPath('stop'));
  doc.setIn(['scripts', 'check'], scriptPath('check'));
  if (scripts.fence !== undefined) doc.setIn(['scripts', 'fence'], scriptPath('fence'));
  if (i.publicTargets.length > 0) doc.setIn(['links', 'public', 'targets'], doc.createNode(i.publicTargets));
  for (const [keyPath, value] of leaves(i.settings)) {
    const key = keyPath.join('.');
    if (OWNED_KEYS.some((k) => key === k || key.startsWith(`${k}.`) || k.startsWith(`${key}.`))) throw settingsError(key, 'the installer writes this key itself');
    doc.setIn(keyPath, doc.createNode(value));
  }
  text = String(doc);
  const configPath = L.path('config');
  let config: TandemConfig;
  try {
    config = parseConfig(parseYaml(text), configPath);
  } catch (err) {
    const e = err as TandemError;
    const key = typeof e.details?.key === 'string' ? e.details.key : undefined;
    if (key !== undefined && leaves(i.settings).some(([p]) => p.join('.') === key || key.startsWith(`${p.join('.')}.`))) throw settingsError(key, e.reason.replace(/^key "[^"]*": /, ''));
    throw err;
  }

  const dirs: PlannedDir[] = [
    { path: L.path('etcDir'), mode: 0o755 },
    { path: L.path('scriptsDir'), mode: 0o755 },
    { path: L.path('libDir'), mode: 0o700, owned: true },
    { path: L.path('stateDir'), mode: 0o700, owned: true },
    { path: L.path('logDir'), mode: 0o750, owned: true },
    { path: L.path('runDir'), mode: 0o755, owned: true },
    { path: L.path('unitDir'), mode: 0o755 },
    { path: L.path('wantsDir'), mode: 0o755 },
    ...protectedDirs.map((p) => ({ path: p, mode: 0o755, keep: true })),
  ];
  const files = [
    { path: configPath, mode: 0o644, content: text },
    { path: scriptPath('start'), mode: 0o755, content: scripts.start },
    { path: scriptPath('stop'), mode: 0o755, content: scripts.stop },
    { path: scriptPath('check'), mode: 0o755, content: scripts.check },
    ...(scripts.fence === undefined ? [] : [{ path: scriptPath('fence'), mode: 0o755, content: scripts.fence }]),
    {
      path: L.path('unit'),
      mode: 0o644,
      content: renderUnit({ pair: i.pair, node: i.node, nodeBin: i.nodeBin, tandemEntry: i.tandemEntry, config: configPath, docs: path.join(i.docsDir, 'install.md') }),
    },
  ];
  // As `systemctl enable` writes it: the link names the unit as the system sees it, not under the root.
  const links = [{ path: L.path('wantsLink'), target: SYSTEM_PATHS.unit }];
  return { input: i, peer, configPath, configText: text, config, scripts, dirs, files, links, protectedDirs };
}
