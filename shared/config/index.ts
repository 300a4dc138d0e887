// Configuration: one tandem.yaml per node, validated at start-up. It must never let an agent
// start on a config it had to guess about: a wrong type or unknown key fails naming the key.
export { loadConfig, parseConfig, splitHostPort } from './load.ts';
export { checkConfigFiles } from './file-checks.ts';
export type { TandemConfig, ProtectedRoot, NodeAddresses, PublicTarget } from './load.ts';
export type { RawConfig } from './schema.ts';
