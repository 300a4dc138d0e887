// Reads tandem.yaml, validates it, resolves paths against the file's folder and checks the
// rules that span several keys. Problems throw TANDEM_ERR_CONFIG_* naming every key at fault,
// each with its line and column (checkConfig returns them instead, for `tandem config check`).
import fs from 'node:fs';
import path from 'node:path';
import { TandemError } from '../errors.ts';
import { parseDuration } from '../sizes.ts';
import { splitHostPort } from './pair-addresses.ts';
import { ConfigSource, describeProblem, problemsOfIssues, type ConfigProblem } from './config-problems.ts';
import { configSchema, type ParsedConfig } from './schema.ts';

export interface NodeAddresses {
  name: string;
  channel: { host: string; port: number };
  control: { host: string; port: number };
  /** Where the node's agent answers presence probes on the public network. */
  public?: { host: string; port: number } | undefined;
}

export interface PublicTarget {
  /** As written: tcp://host:port, http(s)://url or ping://host. */
  url: string;
  kind: 'tcp' | 'http' | 'ping';
  timeoutMs: number;
}

export interface ProtectedRoot {
  name: string;
  /** Absolute path of the root on this node. */
  path: string;
  exclude: string[];
  /** protect[].consistency: consistency points (snapshots), file-level, or whatever the root allows. */
  consistency?: 'auto' | 'snapshot' | 'file';
}

export interface TandemConfig extends Omit<ParsedConfig, 'nodes' | 'protect' | 'stateDir' | 'keyFile' | 'log' | 'heartbeat' | 'links' | 'scripts' | 'alerts'> {
  /** Absolute path of the file this was read from (undefined when built in memory). */
  file: string | undefined;
  self: NodeAddresses;
  peer: NodeAddresses;
  protect: ProtectedRoot[];
  stateDir: string;
  keyFile: string;
  log: { level: ParsedConfig['log']['level']; file: string | undefined };
  heartbeat: { intervalMs: number; threshold: number; demoteThreshold: number };
  links: {
    public: { targets: PublicTarget[]; intervalMs: number; timeoutMs: number; threshold: number };
    presence: { intervalMs: number; timeoutMs: number };
  };
  scripts: Omit<ParsedConfig['scripts'], 'timeout' | 'checkTimeout' | 'checkInterval' | 'restartWindow'> & {
    timeoutMs: number;
    checkTimeoutMs: number;
    checkIntervalMs: number;
    restartWindowMs: number;
  };
  alerts: {
    /** Absolute path of alerts.command. */
    command: string | undefined;
    webhook: string | undefined;
    events: string[];
    timeoutMs: number;
    retries: number;
    lagOverMs: number;
  };
}

const HINT = 'see docs/configuration.md for every key, its type and its default';

function invalid(file: string, key: string, reason: string): TandemError {
  return new TandemError({
    code: 'TANDEM_ERR_CONFIG_INVALID',
    op: `load config ${file}`,
    reason: `key "${key}": ${reason}`,
    hint: HINT,
    details: { key },
  });
}

/** The outcome of checking a config: every problem found, and the config when there is none. */
export interface ConfigCheck {
  file: string;
  problems: ConfigProblem[];
  config: TandemConfig | undefined;
}

function readConfigText(abs: string): string {
  try {
    return fs.readFileSync(abs, 'utf8');
  } catch (err) {
    throw TandemError.wrap(err, {
      code: 'TANDEM_ERR_CONFIG_READ',
      op: `load config ${abs}`,
      hint: 'pass the path of an existing tandem.yaml with -c',
    });
  }
}

/** Reads and checks a config file, collecting every problem; throws only when it cannot be read. */
export function checkConfig(file: string): ConfigCheck {
  const abs = path.resolve(file);
  const { source, raw, problems } = ConfigSource.parse(readConfigText(abs));
  if (problems.length > 0) return { file: abs, problems, config: undefined };
  return validate(raw, abs, source);
}

export function loadConfig(file: string): TandemConfig {
  const abs = path.resolve(file);
  const { source, raw, problems } = ConfigSource.parse(readConfigText(abs));
  if (problems.length > 0) {
    throw new TandemError({
      code: 'TANDEM_ERR_CONFIG_READ',
      op: `load config ${abs}`,
      reason: problems.map(describeProblem).join('; '),
      hint: HINT,
      details: { problems },
    });
  }
  return configOrThrow(validate(raw, abs, source));
}

/** The error that names every problem: "key "a": … (line 3, column 5); key "b": …". */
export function configError(file: string, problems: ConfigProblem[]): TandemError {
  const first = problems[0]!;
  return new TandemError({
    code: 'TANDEM_ERR_CONFIG_INVALID',
    op: `load config ${file}`,
    reason: problems.length === 1 ? describeProblem(first) : `${problems.length} problems: ${problems.map(describeProblem).join('; ')}`,
    hint: `${HINT}; tandem config check ${file} lists them one per line`,
    details: { key: first.key, problems },
  });
}

function configOrThrow(check: ConfigCheck): TandemConfig {
  if (check.config === undefined) throw configError(check.file, check.problems);
  return check.config;
}

/** Validates an already parsed document; relative paths are resolved against `file`'s folder. */
export function parseConfig(raw: unknown, file: string): TandemConfig {
  return configOrThrow(validate(raw, file, ConfigSource.none()));
}

/**
 * Every problem of a parsed document: all the schema's at once, then (on a document of the
 * right shape) every rule that spans keys. A rule that throws instead of reporting ends the
 * checks with what it found.
 */
function validate(raw: unknown, file: string, source: ConfigSource): ConfigCheck {
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) return { file, problems: inFileOrder(problemsOfIssues(result.error.issues, source, configSchema)), config: undefined };
  const problems: ConfigProblem[] = [];
  const report = (e: TandemError) => {
    const key = typeof e.details.key === 'string' ? e.details.key : '(top level)';
    problems.push({ key, message: e.reason.replace(/^key "[^"]*": /, ''), ...source.locateKey(key) });
  };
  let config: TandemConfig | undefined;
  try {
    config = crossKeyRules(result.data, file, report);
  } catch (err) {
    if (!(err instanceof TandemError) || err.code !== 'TANDEM_ERR_CONFIG_INVALID') throw err;
    report(err);
  }
  return problems.length > 0 ? { file, problems: inFileOrder(problems), config: undefined } : { file, problems, config };
}

/** Problems as they appear in the file, top to bottom; those not written anywhere last. */
function inFileOrder(problems: ConfigProblem[]): ConfigProblem[] {
  const at = (p: ConfigProblem) => (p.line ?? Number.MAX_SAFE_INTEGER) * 10_000 + (p.column ?? 0);
  return [...problems].sort((a, b) => at(a) - at(b));
}

/** The rules that span several keys; each problem goes to `report`, and checking goes on. */
function crossKeyRules(c: ParsedConfig, file: string, onProblem: (e: TandemError) => void): TandemConfig | undefined {
  let problems = 0;
  const report = (e: TandemError) => {
    problems++;
    onProblem(e);
  };
  const base = path.dirname(file);
  const resolve = (p: string) => path.resolve(base, p);

  const names = Object.keys(c.nodes);
  if (names.length !== 2) report(invalid(file, 'nodes', `a pair has exactly two nodes, found ${names.length}`));
  if (!names.includes(c.node)) report(invalid(file, 'node', `"${c.node}" is not one of nodes (${names.join(', ')})`));
  const peerName = names.find((n) => n !== c.node);
  const toAddr = (n: string): NodeAddresses => {
    const spec = c.nodes[n]!;
    return { name: n, channel: splitHostPort(spec.channel), control: splitHostPort(spec.control), public: spec.public === undefined ? undefined : splitHostPort(spec.public) };
  };
  for (const n of names) {
    for (const k of ['channel', 'control'] as const) {
      const { port } = splitHostPort(c.nodes[n]![k]);
      if (port < 1 || port > 65535) report(invalid(file, `nodes.${n}.${k}`, `port ${port} is out of range 1-65535`));
    }
  }

  const bs = c.blockSize;
  if (bs < 4096 || bs > 16 * 1024 * 1024 || (bs & (bs - 1)) !== 0) {
    report(invalid(file, 'blockSize', `must be a power of two from 4KiB to 16MiB, got ${bs}`));
  }
  if (c.journal.batchBytes < bs) report(invalid(file, 'journal.batchBytes', `must be at least blockSize (${bs})`));
  if (c.journal.maxBytes < 4 * c.journal.batchBytes) {
    report(invalid(file, 'journal.maxBytes', `must hold at least four batches (4 × journal.batchBytes = ${4 * c.journal.batchBytes})`));
  }
  if (c.journal.segmentBytes < c.journal.batchBytes) report(invalid(file, 'journal.segmentBytes', 'must be at least journal.batchBytes'));
  // Trimming frees whole segments and never the current one: the bound must hold two of them.
  if (c.journal.maxBytes < 2 * c.journal.segmentBytes) {
    report(invalid(file, 'journal.segmentBytes', `must be at most half of journal.maxBytes (${Math.floor(c.journal.maxBytes / 2)})`));
  }
  // A batch travels in one frame; leave room for the frame's own fields.
  if (c.channel.maxFrameBytes < c.journal.batchBytes + 64 * 1024) {
    report(invalid(file, 'channel.maxFrameBytes', `must exceed journal.batchBytes by 64KiB (at least ${c.journal.batchBytes + 65536})`));
  }
  if (c.channel.windowBytes < c.journal.batchBytes) report(invalid(file, 'channel.windowBytes', 'must be at least journal.batchBytes'));
  if (c.channel.reconnectMax < c.channel.reconnectMin) report(invalid(file, 'channel.reconnectMax', 'must be at least channel.reconnectMin'));
  if (c.apply.retryMax < c.apply.retryMin) report(invalid(file, 'apply.retryMax', 'must be at least apply.retryMin'));

  const protect = c.protect.map((r) => ({ name: r.name, path: resolve(r.path), exclude: r.exclude, consistency: r.consistency }));
  const seen = new Set<string>();
  protect.forEach((r, i) => {
    if (seen.has(r.name)) report(invalid(file, `protect.${i}.name`, `root name "${r.name}" is used twice`));
    seen.add(r.name);
  });
  for (const [i, a] of protect.entries()) {
    for (const [j, b] of protect.entries()) {
      if (i !== j && isInside(a.path, b.path)) {
        report(invalid(file, `protect.${i}.path`, `root "${a.name}" lies inside root "${b.name}"; roots must not nest`));
      }
    }
  }
  const stateDir = resolve(c.stateDir);
  for (const [i, r] of protect.entries()) {
    if (isInside(stateDir, r.path) || stateDir === r.path) {
      report(invalid(file, 'stateDir', `lies inside protected root "${r.name}" (protect.${i}.path); keep Tandem's own state outside what it replicates`));
    }
  }

  // Tandem's own files must not be what it replicates: the active (or anyone who can write a
  // protected root) would change the passive's key, log or scripts. Resolved through symlinks
  // at start-up too (file-checks.ts).
  const own: [string, string | undefined][] = [
    ['keyFile', resolve(c.keyFile)],
    ['log.file', c.log.file === undefined ? undefined : resolve(c.log.file)],
    ['scripts.start', resolve(c.scripts.start)],
    ['scripts.stop', resolve(c.scripts.stop)],
    ['scripts.check', resolve(c.scripts.check)],
  ];
  for (const [key, p] of own) {
    if (p === undefined) continue;
    for (const [i, r] of protect.entries()) {
      if (isInside(p, r.path) || p === r.path) {
        report(invalid(file, key, `lies inside protected root "${r.name}" (protect.${i}.path); keep Tandem's own files outside what it replicates`));
      }
    }
  }

  const hb = c.heartbeat;
  const demoteThreshold = hb.demoteThreshold ?? Math.max(1, hb.threshold - 2);
  // An isolated active must stop serving before its peer may start (DESIGN: T_demote < T_promote).
  if (demoteThreshold >= hb.threshold) {
    report(invalid(file, 'heartbeat.demoteThreshold', `must be smaller than heartbeat.threshold (${hb.threshold}), so an isolated active stops before its peer starts`));
  }
  const targets: PublicTarget[] = c.links.public.targets.map((t, i) => {
    const url = typeof t === 'string' ? t : t.url;
    const kind = url.startsWith('tcp://') ? 'tcp' : url.startsWith('ping://') ? 'ping' : 'http';
    let timeoutMs = c.links.public.timeout;
    if (typeof t !== 'string' && t.timeout !== undefined) {
      const ms = typeof t.timeout === 'string' || typeof t.timeout === 'number' ? parseDuration(t.timeout) : undefined;
      if (ms === undefined) report(invalid(file, `links.public.targets.${i}.timeout`, `expected a duration such as 500ms, got ${JSON.stringify(t.timeout)}`));
      else timeoutMs = ms;
    }
    return { url, kind, timeoutMs };
  });
  if (c.links.public.timeout >= c.links.public.interval * c.links.public.threshold) {
    report(invalid(file, 'links.public.timeout', 'must be shorter than links.public.interval × links.public.threshold'));
  }
  const s = c.scripts;
  let lagOverMs = c.failover.maxLagOnFailover;
  if (c.alerts.lagOver !== undefined) {
    const ms = typeof c.alerts.lagOver === 'string' || typeof c.alerts.lagOver === 'number' ? parseDuration(c.alerts.lagOver) : undefined;
    if (ms === undefined || ms <= 0) report(invalid(file, 'alerts.lagOver', `expected a duration such as 30s, got ${JSON.stringify(c.alerts.lagOver)}`));
    else lagOverMs = ms;
  }
  if (problems > 0 || peerName === undefined) return undefined;

  return {
    ...c,
    file,
    self: toAddr(c.node),
    peer: toAddr(peerName),
    protect,
    stateDir,
    keyFile: resolve(c.keyFile),
    log: { level: c.log.level, file: c.log.file === undefined ? undefined : resolve(c.log.file) },
    heartbeat: { intervalMs: hb.interval, threshold: hb.threshold, demoteThreshold },
    links: {
      public: { targets, intervalMs: c.links.public.interval, timeoutMs: c.links.public.timeout, threshold: c.links.public.threshold },
      presence: { intervalMs: c.links.presence.interval, timeoutMs: c.links.presence.timeout },
    },
    scripts: {
      start: resolve(s.start),
      stop: resolve(s.stop),
      check: resolve(s.check),
      fence: s.fence === undefined ? undefined : resolve(s.fence),
      maxRestarts: s.maxRestarts,
      timeoutMs: s.timeout,
      checkTimeoutMs: s.checkTimeout,
      checkIntervalMs: s.checkInterval,
      restartWindowMs: s.restartWindow,
    },
    alerts: {
      command: c.alerts.command === undefined ? undefined : resolve(c.alerts.command),
      webhook: c.alerts.webhook,
      events: c.alerts.events,
      timeoutMs: c.alerts.timeout,
      retries: c.alerts.retries,
      lagOverMs,
    },
  };
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}
