// What both engines are built from: the node's config, logger and clock, and the stores that
// outlive role changes (the manifest and the node state belong to the node, not to a role).
import type { Clock } from '../../shared/clock.ts';
import type { TandemConfig } from '../../shared/config/index.ts';
import type { Logger } from '../../shared/log.ts';
import type { ManifestStore } from '../manifest/index.ts';
import type { NodeStateStore } from '../state/index.ts';

export interface EngineDeps {
  config: TandemConfig;
  log: Logger;
  clock: Clock;
  manifestStore: ManifestStore;
  nodeState: NodeStateStore;
  /** A split-brain policy kept the passive's side: the active must hand its role over undrained. */
  onKeepPeer?: ((reason: string) => void) | undefined;
  /** An operator paused replication (tandem pause): an active engine starts its sender paused. */
  replicationPaused?: (() => boolean) | undefined;
}
