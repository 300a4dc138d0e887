// Consistency points: instants of a protected tree that capture reproduces exactly, so that the
// passive always holds a state the active's disk really had at once (a crash-consistent copy).
// On btrfs, read-only snapshots give the instants and `btrfs send --no-data` what changed between
// two of them; elsewhere a root has file-level consistency only, and says so. Nothing here may
// write inside a protected root, or trust what a child process printed without checking it.
export { SendStreamParser, SendStreamError, parseSendStream, MAX_COMMAND_BYTES } from './send-stream.ts';
export type { SendCommand } from './send-stream.ts';
export { ChangeList, DEFAULT_MAX_CHANGED_PATHS, DEFAULT_MAX_CHANGED_BLOCKS } from './change-list.ts';
export type { ChangeSet, PathChange } from './change-list.ts';
export { Btrfs, findBtrfs, BTRFS_LOCATIONS } from './btrfs.ts';
export { SnapshotStore, preparePointsDir } from './snapshot-store.ts';
export type { Snapshot } from './snapshot-store.ts';
export { PointMarker, MARKER_TIMEOUT_MS } from './point-marker.ts';
export { PointLedger } from './point-ledger.ts';
export type { PointInfo } from './point-ledger.ts';
export { decideConsistency, gatherRootFacts, defaultPointsDir, hasSysAdmin, fsName, BTRFS_MAGIC, SUBVOLUME_ROOT_INO } from './consistency-mode.ts';
export type { ConsistencyMode, ConsistencySetting, ConsistencyVerdict, RootFacts } from './consistency-mode.ts';
export { crc32cRaw } from './crc32c.ts';
export { planRoots, refuseUnsupported } from './root-plan.ts';
export type { RootPlan } from './root-plan.ts';
