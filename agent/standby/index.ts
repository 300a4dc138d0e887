// Standby protection: the passive watches its own copy and reports every change it did not
// apply (TANDEM_ERR_PASSIVE_MODIFIED) until it is put back; optionally it makes the protected
// trees read-only to everyone else while passive. It must never write to the protected trees,
// never hold up the applier, and never leave a tree read-only on a node that serves.
export { StandbyWatch } from './standby-watch.ts';
export type { StandbyWatchOptions } from './standby-watch.ts';
export { RootProtection, standbyDir } from './root-protection.ts';
export { statDrift, blocksMatch } from './stat-drift.ts';
export type { Drift } from './stat-drift.ts';
export { ModifiedPaths, MAX_TRACKED_PATHS } from './modified-paths.ts';
