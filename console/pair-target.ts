// What the operator commands need of a node's tandem.yaml: both nodes' control addresses and the
// credentials derived from the pair key. Commands that act on "the pair" ask both nodes; those
// that act on "the active" ask this node first and its peer when this one is not active.
import { loadConfig, type TandemConfig } from '../shared/config/index.ts';
import { TandemError } from '../shared/errors.ts';
import { callControl, controlTokenFor, controlUrlOf, type ControlAnswer, type ControlCredentials } from './control-client.ts';

export interface NodeTarget {
  name: string;
  url: string;
}

export interface PairTarget {
  config: TandemConfig;
  creds: ControlCredentials;
  self: NodeTarget;
  peer: NodeTarget;
}

/** Reads CONFIG and the pair key (without the key nothing can be asked, and nothing starts). */
export function pairTarget(configPath: string): PairTarget {
  const config = loadConfig(configPath);
  const creds = controlTokenFor(config.keyFile);
  return { config, creds, self: { name: config.self.name, url: controlUrlOf(config.self) }, peer: { name: config.peer.name, url: controlUrlOf(config.peer) } };
}

/** One node's answer to an action, or why there is none. */
export type NodeOutcome = { node: string; answer: ControlAnswer } | { node: string; error: TandemError };

export async function askNode(t: PairTarget, n: NodeTarget, pathAndQuery: string, timeoutMs = 10_000): Promise<NodeOutcome> {
  try {
    return { node: n.name, answer: await callControl(n.url, 'POST', pathAndQuery, t.creds, timeoutMs) };
  } catch (err) {
    return { node: n.name, error: TandemError.wrap(err, { code: 'TANDEM_ERR_CONTROL_UNREACHABLE', op: `POST ${n.url}${pathAndQuery}` }) };
  }
}

/**
 * Asks this node, then its peer when this one answers that it is not active (or does not
 * answer): an action of the active node, wherever the command runs.
 */
export async function askActive(t: PairTarget, pathAndQuery: string, progress: (line: string) => void, timeoutMs = 10_000): Promise<NodeOutcome> {
  const first = await askNode(t, t.self, pathAndQuery, timeoutMs);
  const notActive = 'answer' in first && first.answer.body.code === 'TANDEM_ERR_ACTION_REFUSED' && String(first.answer.body.message).startsWith('this node is not active');
  if (!notActive && 'answer' in first) return first;
  progress('answer' in first ? `${t.self.name} is not active; asking its peer ${t.peer.name} (${t.peer.url})` : `${t.self.name} does not answer (${first.error.reason}); asking its peer ${t.peer.name} (${t.peer.url})`);
  const second = await askNode(t, t.peer, pathAndQuery, timeoutMs);
  if ('error' in second && 'error' in first) {
    return { node: t.peer.name, error: new TandemError({ code: 'TANDEM_ERR_CONTROL_UNREACHABLE', op: pathAndQuery, reason: `neither agent answers: ${first.error.reason}; ${second.error.reason}`, hint: 'start the agents (tandem agent -c CONFIG) and check nodes.<node>.control in CONFIG' }) };
  }
  return second;
}
