// A demo pair with a quick heartbeat (250 ms × 4: a failover in about a second) and presence
// probed every 100 ms, started, with alpha active and serving and beta in sync: where the
// event, operator and alert tests begin.
import { TestPair, type NodeName } from './pair.ts';

export async function quickServingPair(extra?: (doc: Record<string, any>, node: NodeName) => void): Promise<TestPair> {
  const p = await TestPair.create({
    config: (doc, node) => {
      doc.heartbeat = { interval: '250ms', threshold: 4 };
      doc.links = { presence: { interval: '100ms', timeout: '250ms' } };
      extra?.(doc, node);
    },
  });
  try {
    await p.startBoth();
    await p.waitFor('alpha', 'active and serving, passive in sync', (s) => s.role === 'active' && s.failover.serving && s.state === 'in-sync' && s.failover.phase === 'steady');
    await p.waitFor('beta', 'in sync', (s) => s.state === 'in-sync');
    return p;
  } catch (err) {
    await p.cleanup();
    throw err;
  }
}
