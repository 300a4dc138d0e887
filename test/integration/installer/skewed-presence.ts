// A presence server alone in a process that answers for NODE of PAIR with a clock OFFSET ms
// ahead (tandem check must notice). argv: PAIR NODE PORT OFFSET_MS; the pair key comes
// hex-encoded in TANDEM_TEST_PAIR_KEY. Prints the bound port on one line once listening.
import fs from 'node:fs';
import { silentLogger } from '../../../shared/log.ts';
import { PresenceServer } from '../../../agent/links/index.ts';

const [pair, node, port, offset] = process.argv.slice(2);
const server = new PresenceServer({
  host: '127.0.0.1',
  port: Number(port),
  pair: pair!,
  self: node!,
  key: Buffer.from(process.env.TANDEM_TEST_PAIR_KEY ?? '', 'hex'),
  describe: () => ({ node: node!, role: 'active', epoch: 1, serving: true, publicState: 'ok', at: Date.now() + Number(offset) }),
  log: silentLogger(),
});
const bound = await server.listen();
fs.writeSync(1, `${bound.port}\n`);
process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
