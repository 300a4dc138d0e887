// A presence server alone in a process, so a test can SIGSTOP, SIGCONT and SIGKILL it.
// argv: PAIR SELF [BACKLOG]; the pair key comes hex-encoded in TANDEM_TEST_PAIR_KEY. Prints the
// bound port on one line once listening.
import fs from 'node:fs';
import { silentLogger } from '../../../shared/log.ts';
import { PresenceServer } from '../../../agent/links/index.ts';

const [pair, self, backlog] = process.argv.slice(2);
const server = new PresenceServer({
  host: '127.0.0.1',
  port: 0,
  pair: pair!,
  self: self!,
  key: Buffer.from(process.env.TANDEM_TEST_PAIR_KEY ?? '', 'hex'),
  describe: () => ({ node: self!, role: 'active', epoch: 1, serving: true, publicState: 'ok', at: Date.now(), pid: process.pid }),
  log: silentLogger(),
  ...(backlog === undefined ? {} : { backlog: Number(backlog) }),
});
const { port } = await server.listen();
fs.writeSync(1, `${port}\n`);
process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
