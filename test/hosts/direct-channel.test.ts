// The benchmark's direct channel (test/helpers/direct-channel.ts): inside a namespace that has
// only its loopback, cutting makes a connect to the peer's channel address fail at once and
// restoring makes it work again; in a namespace with any other interface it refuses to touch
// addresses at all (a removed address could route the agents' traffic off the machine).
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NetworkLab } from '../helpers/network-lab.ts';
import { PROJECT } from '../helpers/pair.ts';

let lab: NetworkLab | undefined;

afterEach(() => {
  lab?.cleanup();
  lab = undefined;
});

function probe(L: NetworkLab, ns: string): Record<string, string> {
  const r = L.exec(ns, process.execPath, [path.join(PROJECT, 'bin/run-ts.mjs'), path.join(PROJECT, 'test/hosts/direct-channel-probe.ts')]);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, string>;
}

describe('direct channel', () => {
  it('is cut and restored by its addresses in a loopback-only namespace', () => {
    lab = new NetworkLab();
    const ns = lab.host('dc');
    expect(probe(lab, ns)).toEqual({ up: 'connected', cut: 'ENETUNREACH', restored: 'connected' });
  });

  it('refuses to change addresses where another interface exists', () => {
    lab = new NetworkLab();
    const a = lab.host('dca');
    const b = lab.host('dcb');
    lab.link(a, 'v0', b, 'v0');
    const out = probe(lab, a);
    expect(out.refused).toMatch(/no interface but lo/);
    expect(lab.addresses(a)).toEqual(['127.0.0.1/8']);
  });
});
