import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TandemError } from '../../../shared/errors.ts';
import { messageProblem } from '../../../shared/protocol/index.ts';
import { PROTOCOL_MIN, PROTOCOL_VERSION, TANDEM_VERSION, helloProtocolFields, negotiateProtocol, ownProtocol, peerProtocol } from '../../../shared/version.ts';
import { PROJECT } from '../../helpers/pair.ts';

const hello = { t: 'hello', proto: 1, pair: 'p', node: 'alpha', role: 'active', generation: 'g', epoch: 1, serving: false, blockSize: 65536, headSeq: 0, firstSeq: 0, appliedSeq: 0, syncId: '' };

describe('versions', () => {
  it('is the version of package.json', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(PROJECT, 'package.json'), 'utf8')) as { version: string };
    expect(TANDEM_VERSION).toBe(pkg.version);
  });

  it('speaks its own protocol and the previous one', () => {
    expect(PROTOCOL_MIN).toBe(PROTOCOL_VERSION - 1);
    expect(ownProtocol({})).toEqual({ min: PROTOCOL_MIN, max: PROTOCOL_VERSION });
  });

  it('sets the protocol back to what an older release spoke, and refuses what no release spoke', () => {
    // A release speaks the one before it, no older: the oldest a node can be set back to is PROTOCOL_MIN.
    expect(ownProtocol({ TANDEM_PROTOCOL_VERSION: String(PROTOCOL_MIN) })).toEqual({ min: PROTOCOL_MIN, max: PROTOCOL_MIN });
    expect(ownProtocol({ TANDEM_PROTOCOL_VERSION: String(PROTOCOL_VERSION) })).toEqual({ min: PROTOCOL_MIN, max: PROTOCOL_VERSION });
    for (const bad of ['0', String(PROTOCOL_MIN - 1), String(PROTOCOL_VERSION + 1), 'two', '1.5', '-1', '01x']) {
      expect(() => ownProtocol({ TANDEM_PROTOCOL_VERSION: bad }), bad).toThrow(TandemError);
    }
  });

  it('announces a range as a protocol-1 agent reads it: proto is the floor, protoMax the top', () => {
    expect(helloProtocolFields({ min: 1, max: 1 })).toEqual({ proto: 1 });
    expect(helloProtocolFields({ min: 1, max: 2 })).toEqual({ proto: 1, protoMax: 2 });
    expect(peerProtocol({ proto: 1 })).toEqual({ min: 1, max: 1 });
    expect(peerProtocol({ proto: 1, protoMax: 2 })).toEqual({ min: 1, max: 2 });
  });

  it('runs a session at the highest protocol both speak, and refuses when none is shared', () => {
    expect(negotiateProtocol({ min: 1, max: 2 }, { min: 1, max: 2 })).toEqual({ ok: true, version: 2 });
    expect(negotiateProtocol({ min: 1, max: 2 }, { min: 1, max: 1 })).toEqual({ ok: true, version: 1 });
    expect(negotiateProtocol({ min: 1, max: 1 }, { min: 1, max: 2 })).toEqual({ ok: true, version: 1 });
    expect(negotiateProtocol({ min: 2, max: 3 }, { min: 1, max: 2 })).toEqual({ ok: true, version: 2 });
    const r = negotiateProtocol({ min: 2, max: 3 }, { min: 1, max: 1 });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toMatch(/peer speaks protocol 1, this node 2 to 3/);
  });

  it('accepts a hello with or without protoMax and version, and refuses bad ones', () => {
    expect(messageProblem(hello)).toBeUndefined();
    expect(messageProblem({ ...hello, protoMax: 2, version: '0.1.0' })).toBeUndefined();
    expect(messageProblem({ ...hello, protoMax: -1 })).toMatch(/protoMax/);
    expect(messageProblem({ ...hello, version: 'x'.repeat(65) })).toMatch(/version/);
    expect(messageProblem({ ...hello, version: 7 })).toMatch(/version/);
  });

  it('accepts a passive hello whose durableSeq is at most its headSeq, and refuses any other', () => {
    expect(messageProblem({ ...hello, role: 'passive', headSeq: 10, durableSeq: 4 })).toBeUndefined();
    expect(messageProblem({ ...hello, role: 'passive', headSeq: 10, durableSeq: 10 })).toBeUndefined();
    expect(messageProblem({ ...hello, role: 'passive', headSeq: 10, durableSeq: 11 })).toMatch(/durableSeq/);
    expect(messageProblem({ ...hello, role: 'passive', headSeq: 10, durableSeq: -1 })).toMatch(/durableSeq/);
    expect(messageProblem({ ...hello, role: 'passive', headSeq: 10, durableSeq: '4' })).toMatch(/durableSeq/);
  });
});
