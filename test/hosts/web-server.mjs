// The protected service of the hosts test: answers every request with the name of the node that
// runs it (TANDEM_NODE, from the start script's environment), on 0.0.0.0:PORT.
import http from 'node:http';

const port = Number(process.argv[2] ?? 8080);
const node = process.env.TANDEM_NODE ?? 'unknown';
http.createServer((req, res) => res.end(node)).listen(port, '0.0.0.0');
