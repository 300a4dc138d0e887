// How the CLI reaches an agent: the control address from the node's tandem.yaml.
import { loadConfig } from '../shared/config/index.ts';
import { TandemError } from '../shared/errors.ts';
import type { AgentStatus } from '../agent/control/index.ts';

export function controlUrlFor(configPath: string): string {
  const c = loadConfig(configPath);
  const host = c.self.control.host.includes(':') ? `[${c.self.control.host}]` : c.self.control.host;
  return `http://${host}:${c.self.control.port}`;
}

export async function fetchStatus(baseUrl: string, timeoutMs = 5000): Promise<AgentStatus> {
  let res: Response;
  try {
    res = await fetch(`${baseUrl}/v1/status`, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new TandemError({
      code: 'TANDEM_ERR_CONTROL_UNREACHABLE',
      op: `GET ${baseUrl}/v1/status`,
      reason: (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message,
      hint: 'is the agent running? start it with: tandem agent -c CONFIG',
    });
  }
  if (!res.ok) {
    throw new TandemError({ code: 'TANDEM_ERR_CONTROL_REFUSED', op: `GET ${baseUrl}/v1/status`, reason: `HTTP ${res.status}`, hint: 'check the agent log' });
  }
  return (await res.json()) as AgentStatus;
}
