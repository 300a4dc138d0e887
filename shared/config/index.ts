// Configuration: one tandem.yaml per node, validated at start-up. It must never let an agent
// start on a config it had to guess about: a wrong type or unknown key fails naming the key.
export { checkConfig, configError, loadConfig, parseConfig } from './load.ts';
export { readPairAddresses, splitHostPort } from './pair-addresses.ts';
export type { PairAddresses, PairNode } from './pair-addresses.ts';
export type { ConfigCheck, TandemConfig, ProtectedRoot, NodeAddresses, PublicTarget } from './load.ts';
export type { ConfigProblem } from './config-problems.ts';
export type { RawConfig } from './schema.ts';
