// A client on the public segment: asks http://ADDRESS:PORT/ every 100 ms (a new connection
// each, 500 ms timeout) and prints one JSON line per answer: {"t": ms since the epoch, "node":
// who answered, or null}.
const [address, port] = process.argv.slice(2);
const url = `http://${address}:${port}/`;
for (;;) {
  const t = Date.now();
  let node = null;
  try {
    const res = await fetch(url, { signal: globalThis.AbortSignal.timeout(500), headers: { connection: 'close' } });
    node = (await res.text()).trim();
  } catch {
    node = null;
  }
  process.stdout.write(`${JSON.stringify({ t, node })}\n`);
  const wait = 100 - (Date.now() - t);
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
