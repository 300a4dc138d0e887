// What a test of `tandem demo` leaves behind, removed: the demo's agents run in their own
// process group (they outlive a demo that was killed), so they are stopped by the pids their
// control APIs give, the applications by the stop scripts, and the directory goes.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fetchStatus } from '../../console/control-client.ts';

export interface DemoPairJson {
  appUrl: string;
  scriptsLog: string;
  nodes: { name: string; controlUrl: string; scriptsDir: string; dataDir: string }[];
}

export function readDemoPairJson(dir: string): DemoPairJson {
  return JSON.parse(fs.readFileSync(path.join(dir, 'pair.json'), 'utf8')) as DemoPairJson;
}

export async function removeDemoDir(dir: string): Promise<void> {
  if (fs.existsSync(path.join(dir, 'pair.json'))) {
    for (const n of readDemoPairJson(dir).nodes) {
      const s = await fetchStatus(n.controlUrl, 500).catch(() => undefined);
      if (s !== undefined) process.kill(s.pid, 'SIGKILL');
      spawnSync(path.join(n.scriptsDir, 'stop.sh'), { stdio: 'ignore', env: { ...process.env, TANDEM_REASON: 'test cleanup' } });
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

/** A port free on the loopback now (bound to 0, read back, released). */
export async function freeLoopbackPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
