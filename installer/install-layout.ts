// Where an installed node keeps its files, on the real system or under `--root R`: every absolute
// path an install writes or names (configuration, key, scripts, state, logs, the systemd unit,
// and the protected directories themselves) goes through `under`, so a test or a chroot sees the
// whole flow inside R and nothing outside it.
import path from 'node:path';
import { TandemError } from '../shared/errors.ts';

/** The unit's name: one agent per server. */
export const UNIT_NAME = 'tandem.service';

/** The fixed places of an installed node, as the real system names them (before `--root`). */
export const SYSTEM_PATHS = {
  etcDir: '/etc/tandem',
  config: '/etc/tandem/tandem.yaml',
  keyFile: '/etc/tandem/pair.key',
  scriptsDir: '/etc/tandem/scripts',
  libDir: '/var/lib/tandem',
  stateDir: '/var/lib/tandem/state',
  manifest: '/var/lib/tandem/install-manifest.json',
  logDir: '/var/log/tandem',
  agentLog: '/var/log/tandem/agent.log',
  scriptsLog: '/var/log/tandem/scripts.log',
  runDir: '/run/tandem',
  pidFile: '/run/tandem/agent.pid',
  unitDir: '/etc/systemd/system',
  unit: `/etc/systemd/system/${UNIT_NAME}`,
  wantsDir: '/etc/systemd/system/multi-user.target.wants',
  wantsLink: `/etc/systemd/system/multi-user.target.wants/${UNIT_NAME}`,
} as const;

export type SystemPath = keyof typeof SYSTEM_PATHS;

export class InstallLayout {
  /** Absolute root prefix; '/' on the real system. */
  readonly root: string;

  constructor(root = '/') {
    if (!path.isAbsolute(root)) {
      throw new TandemError({ code: 'TANDEM_ERR_USAGE', op: 'tandem install', reason: `--root ${JSON.stringify(root)} is not an absolute path`, hint: 'give --root as an absolute directory, e.g. --root /tmp/node-a' });
    }
    this.root = path.resolve(root);
  }

  get underRoot(): boolean {
    return this.root !== '/';
  }

  /** A system path (absolute, as the real system names it) as it lies under the root. */
  under(systemPath: string): string {
    if (!path.isAbsolute(systemPath)) {
      throw new TandemError({ code: 'TANDEM_ERR_USAGE', op: 'tandem install', reason: `${JSON.stringify(systemPath)} is not an absolute path`, hint: 'write paths in the answers file as absolute paths (/srv/data)' });
    }
    // normalize first: "/srv/../etc" must not climb out of the root.
    return path.join(this.root, path.posix.normalize(systemPath));
  }

  /** One of the fixed places, under the root. */
  path(name: SystemPath): string {
    return this.under(SYSTEM_PATHS[name]);
  }
}
