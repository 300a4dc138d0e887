// Run inside a network namespace by direct-channel.test.ts: opens a DirectChannel, then reports
// what a connect to beta's channel address does while it is up, cut and restored (one JSON line).
import net from 'node:net';
import { DirectChannel } from '../helpers/direct-channel.ts';

function connect(host: string, port: number, localAddress: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, localAddress });
    s.setTimeout(5000, () => {
      s.destroy();
      resolve('timeout');
    });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

async function main(): Promise<void> {
  let ch: DirectChannel;
  try {
    ch = DirectChannel.open();
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ refused: (err as Error).message })}\n`);
    return;
  }
  const { alpha, beta } = ch.addresses;
  const server = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(7700, beta, r));
  const up = await connect(beta, 7700, alpha);
  ch.cut(true);
  const cut = await connect(beta, 7700, '0.0.0.0');
  ch.cut(false);
  const restored = await connect(beta, 7700, alpha);
  server.close();
  process.stdout.write(`${JSON.stringify({ up, cut, restored })}\n`);
}

void main();
