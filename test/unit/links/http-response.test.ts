import { describe, expect, it } from 'vitest';
import { parseHttpResponse } from '../../../agent/links/http-response.ts';

const MAX = 1024;
const b = (s: string) => Buffer.from(s, 'latin1');
const OK = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}';

describe('HTTP response parsing', () => {
  it('waits for the whole header block and then for Content-Length bytes', () => {
    for (let i = 0; i < OK.length; i++) expect(parseHttpResponse(b(OK.slice(0, i)), false, MAX)).toEqual({ kind: 'incomplete' });
    expect(parseHttpResponse(b(OK), false, MAX)).toEqual({ kind: 'complete', status: 200, body: '{"a":1}' });
  });

  it('reads a body without Content-Length up to the close', () => {
    const text = 'HTTP/1.0 404 Not Found\r\n\r\nnope';
    expect(parseHttpResponse(b(text), false, MAX)).toEqual({ kind: 'incomplete' });
    expect(parseHttpResponse(b(text), true, MAX)).toEqual({ kind: 'complete', status: 404, body: 'nope' });
  });

  it('tells a close before any byte from a close in the middle', () => {
    expect(parseHttpResponse(Buffer.alloc(0), true, MAX)).toEqual({ kind: 'error', reason: 'closed without answering' });
    expect(parseHttpResponse(b('HTTP/1.1 200'), true, MAX)).toMatchObject({ kind: 'error' });
    expect(parseHttpResponse(b(OK.slice(0, -2)), true, MAX)).toEqual({ kind: 'error', reason: 'closed after 5 of 7 body bytes' });
  });

  it.each([
    ['something that is not HTTP', 'SSH-2.0-OpenSSH_9.6\r\n\r\n'],
    ['a chunked body', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n'],
    ['a malformed Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n'],
    ['a body larger than the bound', `HTTP/1.1 200 OK\r\nContent-Length: ${MAX + 1}\r\n\r\n`],
  ])('refuses %s', (_what, text) => {
    expect(parseHttpResponse(b(text), false, MAX)).toMatchObject({ kind: 'error' });
  });

  it('refuses headers that never end before the bound', () => {
    expect(parseHttpResponse(b(`HTTP/1.1 200 OK\r\nX: ${'y'.repeat(9000)}`), false, MAX)).toMatchObject({ kind: 'error', reason: 'the answer headers are too large' });
  });
});
