// The shape of tandem.yaml, with every default in one place. docs/configuration.md documents
// each key; test/unit/shared/config.test.ts fails when a key is missing there.
import { z } from 'zod';
import { parseDuration, parseSize } from '../sizes.ts';

/** A quantity written as a number or a string with a unit ("64KiB", "5s"), with its default. */
const quantity = (parse: (v: string | number) => number | undefined, expected: string) => (def: string) =>
  z
    .unknown()
    .optional()
    .transform((v, ctx) => {
      const n = v === undefined ? parse(def) : typeof v === 'string' || typeof v === 'number' ? parse(v) : undefined;
      if (n === undefined) {
        ctx.addIssue({ code: 'custom', message: `expected ${expected}, got ${JSON.stringify(v)}` });
        return z.NEVER;
      }
      return n;
    });

const size = quantity(parseSize, 'a size such as 64KiB or 1GiB');
const duration = quantity(parseDuration, 'a duration such as 500ms or 5s');

export const hostPort = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port, e.g. 10.0.0.1:7700');
export const name = z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'expected a lower-case name: letters, digits, dashes, at most 32');

export const nodeSchema = z.strictObject({
  /** Where this node's replication channel listens (the dedicated link). */
  channel: hostPort,
  /** Where this node's control API listens (CLI, console). Keep it on loopback or a management network. */
  control: hostPort,
  /**
   * Where this node's agent answers presence probes on the public network: the peer asks it
   * whether this node is still there, through the network the clients use.
   */
  public: hostPort.optional(),
});

/** A public check target: "tcp://host:port", "http://…" / "https://…", or "ping://host". */
export const target = z.union([
  z.string().regex(/^(tcp:\/\/.+:\d{1,5}|https?:\/\/.+|ping:\/\/.+)$/, 'expected tcp://host:port, http(s)://url or ping://host'),
  z.strictObject({
    url: z.string().regex(/^(tcp:\/\/.+:\d{1,5}|https?:\/\/.+|ping:\/\/.+)$/, 'expected tcp://host:port, http(s)://url or ping://host'),
    timeout: z.unknown().optional(),
  }),
]);

export const rootSchema = z.strictObject({
  name,
  path: z.string().min(1),
  exclude: z.array(z.string().min(1)).default([]),
  /**
   * `auto`: consistency points where the root allows them (the root of a btrfs subvolume), else
   * file-level; `snapshot`: points, or the agent does not start; `file`: file-level only.
   */
  consistency: z.enum(['auto', 'snapshot', 'file']).default('auto'),
});

export const configSchema = z.strictObject({
  pair: name,
  node: name,
  role: z.enum(['active', 'passive']).default('passive'),
  nodes: z.record(name, nodeSchema),
  protect: z.array(rootSchema).min(1, 'at least one protected root is needed'),
  stateDir: z.string().min(1).default('./state'),
  keyFile: z.string().min(1).default('./pair.key'),
  blockSize: size('64KiB'),
  journal: z
    .strictObject({
      maxBytes: size('1GiB'),
      segmentBytes: size('64MiB'),
      batchBytes: size('4MiB'),
      batchDelay: duration('2ms'),
    })
    .prefault({}),
  capture: z
    .strictObject({
      settle: duration('50ms'),
      scanInterval: duration('60s'),
      renameWindow: duration('150ms'),
      /**
       * A consistency point (a snapshot of each changed btrfs root) at most this often. 500 ms:
       * the data at risk (rpoMs) is the interval plus a round, and p99 stays under a second
       * (bench:points); every point is a snapshot and three btrfs runs, so not below 100 ms.
       */
      pointInterval: duration('500ms').pipe(z.number().min(100, 'capture.pointInterval must be at least 100ms (each point is a file-system snapshot)')),
    })
    .prefault({}),
  channel: z
    .strictObject({
      encryption: z.enum(['tls-psk', 'none']).default('tls-psk'),
      windowBatches: z.number().int().min(1).max(1024).default(32),
      windowBytes: size('64MiB'),
      /** Bytes per second of replicated and synchronised data, at most; 0: no limit. */
      bandwidthLimit: size('0'),
      /**
       * zlib level (1 fastest … 9 smallest) at which the active compresses each block it
       * journals; `off` (0): blocks stay raw. A passive inflates compressed blocks whatever its own
       * setting. Parsed to a number, 0 for off.
       */
      compression: z
        .union([z.literal('off'), z.literal(false), z.number().int().min(0).max(9)], { error: 'expected off or a zlib level from 1 to 9' })
        .default('off')
        .transform((v) => (v === 'off' || v === false ? 0 : v)),
      maxFrameBytes: size('16MiB'),
      reconnectMin: duration('100ms'),
      reconnectMax: duration('1s'),
      handshakeTimeout: duration('5s'),
    })
    .prefault({}),
  verify: z
    .strictObject({
      /** Bytes per second `tandem verify` reads on the active, at most; 0: no limit. */
      rate: size('64MiB'),
    })
    .prefault({}),
  apply: z
    .strictObject({
      retryMin: duration('500ms'),
      retryMax: duration('10s'),
    })
    .prefault({}),
  replication: z
    .strictObject({
      /** While passive, the protected roots are read-only to everyone but the applier (docs/replication.md). */
      protectPassive: z.boolean().default(false),
      /**
       * How the passive applies the owners the active sends: `numeric` (the same uid and gid),
       * `names` (the same user and group names, mapped through this node's user database) or
       * `off` (files belong to the agent; setuid/setgid and file capabilities are cleared).
       */
      owners: z.enum(['numeric', 'names', 'off']).default('numeric'),
    })
    .prefault({}),
  heartbeat: z
    .strictObject({
      interval: duration('1s'),
      threshold: z.number().int().min(2).max(1000).default(5),
      /** An isolated active stops serving after this many intervals: fewer than `threshold`. */
      demoteThreshold: z.number().int().min(1).max(999).optional(),
    })
    .prefault({}),
  links: z
    .strictObject({
      public: z
        .strictObject({
          targets: z.array(target).default([]),
          interval: duration('1s'),
          timeout: duration('1s'),
          threshold: z.number().int().min(1).max(1000).default(3),
        })
        .prefault({}),
      presence: z
        .strictObject({
          interval: duration('500ms'),
          timeout: duration('1s'),
        })
        .prefault({}),
    })
    .prefault({}),
  failover: z
    .strictObject({
      auto: z.boolean().default(true),
      maxLagOnFailover: duration('10s'),
      allowDataLoss: z.boolean().default(false),
      autoFailback: z.boolean().default(false),
      maxRoleChangesPerHour: z.number().int().min(1).max(100).default(3),
      startRetries: z.number().int().min(0).max(10).default(2),
      afterSplitBrain: z.array(z.enum(['zero-changes', 'younger-active', 'older-active', 'least-changes'])).max(4).default(['zero-changes']),
    })
    .prefault({}),
  scripts: z
    .strictObject({
      start: z.string().min(1).default('./scripts/start.sh'),
      stop: z.string().min(1).default('./scripts/stop.sh'),
      check: z.string().min(1).default('./scripts/check.sh'),
      /** Run before a failover start when set: powers off or isolates the peer; its failure means no start. */
      fence: z.string().min(1).optional(),
      timeout: duration('30s'),
      checkTimeout: duration('10s'),
      checkInterval: duration('5s'),
      maxRestarts: z.number().int().min(0).max(100).default(3),
      restartWindow: duration('10m'),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
      file: z.string().min(1).optional(),
    })
    .prefault({}),
  control: z
    .strictObject({
      /** More names the control API answers to in the Host header (beside its own address). */
      allowHosts: z.array(z.string().regex(/^[A-Za-z0-9.-]{1,253}$/, 'expected a host name')).max(16).default([]),
    })
    .prefault({}),
  events: z
    .strictObject({
      /** Events kept in the history (stateDir/events.ndjson). */
      keep: z.number().int().min(10).max(100_000).default(1000),
    })
    .prefault({}),
  alerts: z
    .strictObject({
      /** Run for each alert: the event as JSON on standard input and in TANDEM_EVENT_* variables. */
      command: z.string().min(1).optional(),
      /** The event posted as JSON to this URL. */
      webhook: z.string().regex(/^https?:\/\/[^\s]+$/, 'expected an http:// or https:// URL').optional(),
      /** Event kinds that alert (docs/events.md). */
      events: z.array(z.enum(['agent', 'role', 'state', 'serving', 'link', 'alarm', 'replication', 'maintenance', 'lag', 'failover', 'switchover', 'script', 'application', 'token', 'consistency', 'discard'])).default(['failover', 'switchover', 'alarm', 'replication', 'link', 'lag', 'script', 'maintenance']),
      timeout: duration('5s'),
      retries: z.number().int().min(0).max(20).default(3),
      /** A replication lag beyond this is an event (and an alert); default failover.maxLagOnFailover. */
      lagOver: z.unknown().optional(),
    })
    .prefault({}),
});

export type RawConfig = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
