// Renders a node's tandem.yaml, with a comment on every key an operator is likely to change.
// The installer and the demo both write configs through this one template.

export interface NodeAddressesSpec {
  channel: string;
  control: string;
  public?: string;
}

export interface ConfigSpec {
  pair: string;
  node: string;
  role: 'active' | 'passive';
  nodes: Record<string, NodeAddressesSpec>;
  roots: { name: string; path: string; exclude?: string[] }[];
  stateDir: string;
  keyFile: string;
  logFile?: string;
  extra?: string;
}

const q = (s: string) => JSON.stringify(s);

export function renderConfig(spec: ConfigSpec): string {
  const nodes = Object.entries(spec.nodes)
    .map(
      ([name, a]) =>
        `  ${name}:\n    channel: ${q(a.channel)}   # replication channel (dedicated link)\n    control: ${q(a.control)}   # control API (CLI, console)${
          a.public === undefined ? '' : `\n    public: ${q(a.public)}   # presence: the peer checks this node through the public network`
        }`,
    )
    .join('\n');
  const roots = spec.roots
    .map((r) => `  - name: ${r.name}\n    path: ${q(r.path)}${r.exclude !== undefined && r.exclude.length > 0 ? `\n    exclude: [${r.exclude.map(q).join(', ')}]` : ''}`)
    .join('\n');
  return `# Tandem configuration of node ${spec.node} in pair ${spec.pair}.
# Every key, its type and its default: docs/configuration.md

pair: ${spec.pair}
node: ${spec.node}
# Role on the very first start only; afterwards the role lives in the state directory.
role: ${spec.role}

nodes:
${nodes}

# Protected directories: replicated from the active node to the passive one.
protect:
${roots}

stateDir: ${q(spec.stateDir)}
keyFile: ${q(spec.keyFile)}
blockSize: 64KiB

journal:
  maxBytes: 1GiB

log:
  level: info${spec.logFile === undefined ? '' : `\n  file: ${q(spec.logFile)}`}
${spec.extra ?? ''}`;
}
