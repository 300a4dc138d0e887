// Reads one HTTP/1.1 response from bytes as they arrive, pure and bounded. The presence prober
// speaks HTTP over a socket it opened itself, because it must time the connect and the answer
// apart (http.request hides that difference), so it parses the little it needs here.

export type HttpResponseParse =
  | { kind: 'incomplete' }
  | { kind: 'complete'; status: number; body: string }
  | { kind: 'error'; reason: string };

/** Largest header block accepted; a presence answer's headers are a few hundred bytes. */
export const HTTP_MAX_HEADER_BYTES = 8 * 1024;

const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/;

/**
 * Parses `buf`, everything received so far. `ended` says the peer closed its side: a response
 * without Content-Length is then complete, one with a shorter body is not.
 */
export function parseHttpResponse(buf: Buffer, ended: boolean, maxBodyBytes: number): HttpResponseParse {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) {
    if (buf.length > HTTP_MAX_HEADER_BYTES) return { kind: 'error', reason: 'the answer headers are too large' };
    return ended ? { kind: 'error', reason: buf.length === 0 ? 'closed without answering' : 'closed in the middle of the answer headers' } : { kind: 'incomplete' };
  }
  if (headEnd > HTTP_MAX_HEADER_BYTES) return { kind: 'error', reason: 'the answer headers are too large' };
  const lines = buf.subarray(0, headEnd).toString('latin1').split('\r\n');
  const m = STATUS_LINE.exec(lines[0] ?? '');
  if (m === null) return { kind: 'error', reason: 'not an HTTP/1.x answer' };
  const status = Number(m[1]);
  let length: number | undefined;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return { kind: 'error', reason: 'a malformed header line' };
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'transfer-encoding') return { kind: 'error', reason: `unsupported transfer-encoding ${value}` };
    if (name === 'content-length') {
      if (!/^\d{1,9}$/.test(value) || (length !== undefined && length !== Number(value))) return { kind: 'error', reason: 'a malformed content-length' };
      length = Number(value);
    }
  }
  const body = buf.subarray(headEnd + 4);
  if (length !== undefined && length > maxBodyBytes) return { kind: 'error', reason: `the answer body (${length} bytes) is larger than ${maxBodyBytes} bytes` };
  if (length === undefined && body.length > maxBodyBytes) return { kind: 'error', reason: `the answer body is larger than ${maxBodyBytes} bytes` };
  if (length !== undefined && body.length >= length) return { kind: 'complete', status, body: body.subarray(0, length).toString('utf8') };
  if (ended) {
    if (length === undefined) return { kind: 'complete', status, body: body.toString('utf8') };
    return { kind: 'error', reason: `closed after ${body.length} of ${length} body bytes` };
  }
  return { kind: 'incomplete' };
}
