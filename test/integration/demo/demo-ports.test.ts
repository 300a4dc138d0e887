// `tandem demo --ports LO-HI`: every port of a new pair (both agents' three, the demo
// application's) comes from the range; a bad range, or one given for a pair already written,
// is a usage error that writes nothing. Run as the command line, with --init-only: nothing
// listens, so these are the ports written into each tandem.yaml and pair.json.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePortRange } from '../../../console/demo/init-pair.ts';
import { TANDEM_BIN } from '../../helpers/pair.ts';
import { testPortRange } from '../../helpers/ports.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tandemDemo(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [TANDEM_BIN, 'demo', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Every port the written pair listens on: from each tandem.yaml (host:port values) and the application's URL. */
function portsOf(dir: string): number[] {
  const ports: number[] = [];
  for (const node of ['alpha', 'beta']) {
    const yaml = fs.readFileSync(path.join(dir, node, 'tandem.yaml'), 'utf8');
    for (const m of yaml.matchAll(/127\.0\.0\.1:(\d+)/g)) ports.push(Number(m[1]));
  }
  const pair = JSON.parse(fs.readFileSync(path.join(dir, 'pair.json'), 'utf8')) as { appUrl: string };
  ports.push(Number(new URL(pair.appUrl).port));
  return ports;
}

function freshDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-demo-ports-'));
  dirs.push(d);
  return path.join(d, 'pair');
}

describe('tandem demo --ports', () => {
  it('chooses every port of the new pair from the range, the application\'s too', () => {
    const [lo] = testPortRange();
    // Seven ports: exactly as many as the pair needs, so each is used once.
    const range = [lo + 100, lo + 106] as const;
    const dir = freshDir();
    const r = tandemDemo('--init-only', '--dir', dir, '--ports', `${range[0]}-${range[1]}`);
    expect(r.status, r.out).toBe(0);
    const ports = portsOf(dir);
    // Three per agent, each named twice (its own and the peer's config), and the application.
    expect(new Set(ports.slice(0, -1)).size).toBe(6);
    for (const p of ports) {
      expect(p).toBeGreaterThanOrEqual(range[0]);
      expect(p).toBeLessThanOrEqual(range[1]);
    }
  });

  it('without it, chooses the agents\' ports outside the kernel\'s ephemeral range', () => {
    const dir = freshDir();
    const r = tandemDemo('--init-only', '--dir', dir);
    expect(r.status, r.out).toBe(0);
    const [ephLo, ephHi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number) as [number, number];
    for (const p of portsOf(dir).slice(0, -1)) expect(p < ephLo || p > ephHi, `port ${p}`).toBe(true);
  });

  it('refuses a bad range with a usage error and writes nothing', () => {
    for (const bad of ['80-90', '20000-20005', '30000-20000', '20000', 'a-b', '20000-70000']) {
      const dir = freshDir();
      const r = tandemDemo('--init-only', '--dir', dir, '--ports', bad);
      expect(r.status, `${bad}: ${r.out}`).toBe(2);
      expect(r.out).toMatch(/TANDEM_ERR_USAGE/);
      expect(r.out).toMatch(/give two port numbers/);
      expect(fs.existsSync(dir), bad).toBe(false);
    }
  });

  it('refuses a range for a pair already written: its ports were chosen then', () => {
    const dir = freshDir();
    expect(tandemDemo('--init-only', '--dir', dir).status).toBe(0);
    const before = fs.readFileSync(path.join(dir, 'pair.json'), 'utf8');
    const [lo, hi] = testPortRange();
    const r = tandemDemo('--dir', dir, '--ports', `${lo}-${hi}`);
    expect(r.status, r.out).toBe(2);
    expect(r.out).toMatch(/already holds a pair/);
    expect(fs.readFileSync(path.join(dir, 'pair.json'), 'utf8')).toBe(before);
  });

  it('parses LO-HI, and says why a range is refused', () => {
    expect(parsePortRange(' 20000-20099 ')).toEqual([20000, 20099]);
    expect(parsePortRange('1024-1030')).toEqual([1024, 1030]);
    expect(() => parsePortRange('1023-1030')).toThrow(/leaves 1024-65535/);
    expect(() => parsePortRange('20000-20005')).toThrow(/holds 6 ports, fewer than the 7/);
    expect(() => parsePortRange('20005-20000')).toThrow(/holds 0 ports/);
    expect(() => parsePortRange('20000:20099')).toThrow(/not a range LO-HI/);
  });
});
