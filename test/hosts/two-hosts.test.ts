// Two hosts for real: network namespaces for alpha, beta and a client, a channel link between
// the nodes (veth) and a public segment (a bridge in the client's namespace). Each node is
// installed by the installer (inside its namespace, under its own root) with the web server and
// virtual IP modules; the client reaches the service on the virtual IP. The active's namespace
// loses both links: the client reaches the service on the same address from the other node
// within the failover bound, and the old node holds no virtual address when its links return.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify as stringifyYaml } from 'yaml';
import type { AgentStatus } from '../../agent/control/index.ts';
import { overlappingStarts, parseScriptsLog } from '../../agent/scripts/index.ts';
import { NetworkLab } from '../helpers/network-lab.ts';
import { PROJECT, sleep, TANDEM_BIN } from '../helpers/pair.ts';
import { killAll, TEST_MARKER } from '../helpers/processes.ts';
import { AGENT_NODE_ARGS, agentEnv } from '../../shared/agent-node-args.ts';

const VIP = '10.202.0.50';
const INTERVAL_MS = 500;
const THRESHOLD = 4;

let lab: NetworkLab | undefined;
const dirs: string[] = [];

afterEach(async () => {
  await killAll();
  lab?.cleanup();
  lab = undefined;
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('two hosts in network namespaces', () => {
  it('moves the service and its virtual IP to the passive when the active loses its links, and the old node comes back without the address', async () => {
    const L = new NetworkLab();
    lab = L;
    const A = L.host('a');
    const B = L.host('b');
    const C = L.host('c');
    L.link(A, 'ch0', B, 'ch0');
    L.addr(A, 'ch0', '10.201.0.1/24');
    L.addr(B, 'ch0', '10.201.0.2/24');
    L.link(A, 'pub0', C, 'pa');
    L.link(B, 'pub0', C, 'pb');
    L.bridge(C, 'br0', ['pa', 'pb']);
    L.addr(C, 'br0', '10.202.0.100/24');
    L.addr(A, 'pub0', '10.202.0.1/24');
    L.addr(B, 'pub0', '10.202.0.2/24');

    L.spawn(C, process.execPath, [path.join(PROJECT, 'test/hosts/web-server.mjs'), '9999'], { stdio: 'ignore', env: { ...process.env, TANDEM_NODE: 'gateway' } });
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-hosts-'));
    fs.chmodSync(work, 0o755);
    dirs.push(work);
    const roots = { alpha: path.join(work, 'alpha'), beta: path.join(work, 'beta') };
    fs.mkdirSync(path.join(roots.alpha, 'srv/www'), { recursive: true });
    fs.writeFileSync(path.join(roots.alpha, 'srv/www/index.html'), '<h1>shop</h1>\n');
    const answers = {
      pair: 'hosts',
      node: 'alpha',
      nodes: {
        alpha: { channel: '10.201.0.1:7700', control: '127.0.0.1:7701', public: '10.202.0.1:7702' },
        beta: { channel: '10.201.0.2:7700', control: '127.0.0.1:7701', public: '10.202.0.2:7702' },
      },
      protect: ['/srv/www'],
      // The applications first, the identity last: clients arrive once the server answers.
      modules: [
        { module: 'web', command: `${process.execPath} ${path.join(PROJECT, 'test/hosts/web-server.mjs')} 8080`, url: 'http://127.0.0.1:8080/' },
        { module: 'vip', address: `${VIP}/24` },
      ],
      // The public check: a server on the client's segment (an HTTP answer from the switch side).
      publicTargets: ['http://10.202.0.100:9999/'],
      packCode: 'two hosts in namespaces',
      settings: {
        heartbeat: { interval: `${INTERVAL_MS}ms`, threshold: THRESHOLD },
        links: { public: { interval: '500ms', timeout: '400ms', threshold: 2 }, presence: { interval: '250ms', timeout: '500ms' } },
      },
    };
    fs.writeFileSync(path.join(work, 'primary.yaml'), stringifyYaml(answers));
    fs.writeFileSync(path.join(work, 'secondary.yaml'), stringifyYaml({ packCode: answers.packCode }));
    const pack = path.join(work, 'hosts.pack');

    // Each node installed inside its own namespace, as on its own server.
    const p = L.exec(A, process.execPath, [TANDEM_BIN, 'install', 'primary', '--root', roots.alpha, '--answers', path.join(work, 'primary.yaml'), '--pack', pack, '--no-start']);
    expect(p.status, p.stdout + p.stderr).toBe(0);
    expect(p.stdout).toMatch(/ok {4}programs the scripts need: setsid, ip, arping/);
    const s = L.exec(B, process.execPath, [TANDEM_BIN, 'install', 'secondary', '--root', roots.beta, '--from', pack, '--answers', path.join(work, 'secondary.yaml'), '--no-start']);
    expect(s.status, s.stdout + s.stderr).toBe(0);
    for (const r of Object.values(roots)) {
      const v = spawnSync('systemd-analyze', ['verify', path.join(r, 'etc/systemd/system/tandem.service')], { encoding: 'utf8' });
      expect(v.status, v.stderr).toBe(0);
    }

    const config = (n: 'alpha' | 'beta') => path.join(roots[n], 'etc/tandem/tandem.yaml');
    const nsOf = { alpha: A, beta: B };
    for (const n of ['alpha', 'beta'] as const) {
      const out = fs.openSync(path.join(work, `${n}.out`), 'a');
      L.spawn(nsOf[n], process.execPath, [`--title=${TEST_MARKER}`, ...AGENT_NODE_ARGS, TANDEM_BIN, 'agent', '-c', config(n)], { stdio: ['ignore', out, out], env: agentEnv() });
      fs.closeSync(out);
    }
    const status = (n: 'alpha' | 'beta'): AgentStatus | undefined => {
      const r = L.exec(nsOf[n], process.execPath, [TANDEM_BIN, 'status', '-c', config(n), '--json'], { timeoutMs: 20_000 });
      try {
        return r.status === 0 ? (JSON.parse(r.stdout) as AgentStatus) : undefined;
      } catch {
        return undefined;
      }
    };
    const waitFor = async (n: 'alpha' | 'beta', what: string, pred: (st: AgentStatus) => boolean, timeoutMs = 90_000): Promise<AgentStatus> => {
      const deadline = Date.now() + timeoutMs;
      let last: AgentStatus | undefined;
      while (Date.now() < deadline) {
        last = status(n);
        if (last !== undefined && pred(last)) return last;
        await sleep(300);
      }
      throw new Error(`${n}: timed out waiting for ${what}: ${JSON.stringify({ role: last?.role, state: last?.state, failover: last?.failover, alarms: last?.alarms })}\n${fs.readFileSync(path.join(work, `${n}.out`), 'utf8').slice(-2000)}`);
    };
    await waitFor('alpha', 'active and serving, beta in sync', (st) => st.role === 'active' && st.failover.serving && st.peer.connected && st.replication.inSync);
    expect(L.addresses(A)).toContain(`${VIP}/24`);
    expect(L.addresses(B)).not.toContain(`${VIP}/24`);
    expect(fs.readFileSync(path.join(roots.beta, 'srv/www/index.html'), 'utf8')).toBe('<h1>shop</h1>\n');

    // The client, on the public segment, asks the virtual IP ten times a second.
    const client = L.spawn(C, process.execPath, [path.join(PROJECT, 'test/hosts/vip-client.mjs'), VIP, '8080'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const seen: { t: number; node: string | null }[] = [];
    let buf = '';
    client.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        seen.push(JSON.parse(buf.slice(0, i)) as { t: number; node: string | null });
        buf = buf.slice(i + 1);
      }
    });
    const waitServed = async (node: string, after: number, timeoutMs: number) => {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const hit = seen.find((x) => x.t >= after && x.node === node);
        if (hit !== undefined) return hit.t;
        await sleep(50);
      }
      throw new Error(`the client never reached ${node} on ${VIP} (last answers: ${JSON.stringify(seen.slice(-5))})`);
    };
    await waitServed('alpha', 0, 30_000);

    // alpha's server loses both its links.
    const cut = Date.now();
    L.setLink(A, 'ch0', 'down');
    L.setLink(A, 'pub0', 'down');
    const servedByBeta = await waitServed('beta', cut, 60_000);
    const gapMs = servedByBeta - cut;
    // The failover bound: the threshold, the presence verdict (one probe timeout), the start
    // script (the web server's start and the address), and room for a loaded 2-core machine.
    const boundMs = INTERVAL_MS * THRESHOLD + 500 + 10_000;
    process.stderr.write(`[hosts] links cut → served by beta on ${VIP}: ${gapMs} ms (bound ${boundMs} ms)\n`);
    expect(gapMs).toBeLessThan(boundMs);
    // The isolated alpha stepped down and released the address by itself.
    const deadline = Date.now() + 30_000;
    while (L.addresses(A).includes(`${VIP}/24`) && Date.now() < deadline) await sleep(200);
    expect(L.addresses(A), `alpha still holds ${VIP}: ${JSON.stringify(status("alpha")?.failover)} ${JSON.stringify(status("alpha")?.links)}\n${fs.readFileSync(path.join(roots.alpha, 'var/log/tandem/scripts.log'), 'utf8')}\n${fs.readFileSync(path.join(roots.alpha, 'var/log/tandem/agent.log'), 'utf8').split('\n').filter((l) => /failover|scripts|stop|public|link/.test(l)).slice(-25).join('\n')}`).not.toContain(`${VIP}/24`);

    // The links come back: alpha rejoins as passive, without the address; beta keeps serving.
    L.setLink(A, 'ch0', 'up');
    L.setLink(A, 'pub0', 'up');
    const back = Date.now();
    await waitFor('alpha', 'passive and in sync again', (st) => st.role === 'passive' && st.peer.connected && st.replication.inSync);
    expect(L.addresses(A)).not.toContain(`${VIP}/24`);
    expect(L.addresses(B)).toContain(`${VIP}/24`);
    await sleep(2000);
    expect([...new Set(seen.filter((x) => x.t >= back).map((x) => x.node))]).toEqual(['beta']);

    // The scripts' own record, both nodes: never two serving at once.
    const log = [...Object.values(roots)].flatMap((r) => parseScriptsLog(fs.readFileSync(path.join(r, 'var/log/tandem/scripts.log'), 'utf8'))).sort((x, y) => x.at.localeCompare(y.at));
    expect(log.some((e) => e.node === 'beta' && e.script === 'start' && e.event === 'ok')).toBe(true);
    expect(overlappingStarts(log)).toEqual([]);
  }, 300_000);
});
