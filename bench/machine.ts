// What the numbers were measured on.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryBytes: number;
  node: string;
  kernel: string;
  tempDir: string;
  /** File system and device of the temp dir, e.g. "ext4 on /dev/vda (virtio, non-rotational)". */
  disk: string;
}

function tryRun(cmd: string, args: string[]): string | null {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function describeDevice(source: string): string {
  const name = path.basename(source);
  const sys = `/sys/class/block/${name}`;
  if (!fs.existsSync(sys)) return source;
  // A partition's queue lives in its parent device.
  let dev = name;
  if (fs.existsSync(`${sys}/partition`)) dev = path.basename(path.dirname(fs.realpathSync(sys)));
  const read = (f: string) => {
    try {
      return fs.readFileSync(`/sys/block/${dev}/${f}`, 'utf8').trim();
    } catch {
      return null;
    }
  };
  const rotational = read('queue/rotational');
  const kind = dev.startsWith('vd') ? 'virtio' : dev.startsWith('nvme') ? 'NVMe' : dev.startsWith('sd') ? 'SCSI/SATA' : dev;
  const model = read('device/model');
  return `${source} (${[kind, model, rotational === '0' ? 'non-rotational' : rotational === '1' ? 'reports rotational' : null].filter((x) => x !== null && x !== '').join(', ')})`;
}

export function machineInfo(tempDir: string): MachineInfo {
  const fsType = tryRun('findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '-T', tempDir]) ?? tryRun('stat', ['-f', '-c', '%T', tempDir]) ?? 'unknown';
  const [type, source] = fsType.split(/\s+/);
  const disk = type === 'tmpfs' ? 'tmpfs (memory)' : source !== undefined && source.startsWith('/dev/') ? `${type} on ${describeDevice(source)}` : fsType;
  return {
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryBytes: os.totalmem(),
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    tempDir,
    disk,
  };
}
