// A webhook receiver for alert tests: keeps every JSON body posted to it, and answers with a
// status, or never ('hang').
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface WebhookReceiver {
  url: string;
  bodies: Record<string, any>[];
  hits(): number;
  close(): Promise<void>;
}

export async function webhookReceiver(answer: number | 'hang' = 200): Promise<WebhookReceiver> {
  const bodies: Record<string, any>[] = [];
  let hits = 0;
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (d: Buffer) => (text += d.toString()));
    req.on('end', () => {
      hits += 1;
      bodies.push(JSON.parse(text) as Record<string, any>);
      if (answer === 'hang') return;
      res.writeHead(answer);
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/alert`,
    bodies,
    hits: () => hits,
    close() {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}
