// Which Tandem this is: the package version (what `tandem --version`, status and the hello say)
// and the range of channel protocol versions it speaks. Two nodes of a pair may run different
// releases during a rolling upgrade (docs/install.md, "Upgrades"): each release speaks its own
// protocol and the previous one, and a session runs at the highest version both speak.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TandemError } from './errors.ts';

/**
 * The highest channel protocol this release speaks.
 * 1: the first release. 2: the hello also carries `protoMax` and `version`. 3: a passive may
 * apply a batch without a consistency point straight from memory, without writing it to its
 * receive log first; its hello says what it holds durably (`durableSeq`), which is what the
 * active may trim (a protocol-2 active trims at `headSeq`, so such a batch is written first).
 */
export const PROTOCOL_VERSION = 3;

/**
 * The lowest protocol this release still speaks: the previous release's, so that a pair upgrades
 * one node at a time. It goes into the hello's `proto` field, which a protocol-1 agent compares
 * for equality (TLS's legacy_version trick): such an agent sees a peer of its own protocol.
 */
export const PROTOCOL_MIN = 2;

/** The environment variable that sets this node's protocol back (tests of a rolling upgrade). */
export const PROTOCOL_ENV = 'TANDEM_PROTOCOL_VERSION';

/** What a node speaks: every version from `min` to `max`. */
export interface ProtocolRange {
  min: number;
  max: number;
}

/**
 * The package version, read once from the package.json of this installation. The file is
 * searched upwards from this module so the answer holds from the sources, from a global npm
 * install and from a compiled build alike.
 */
const PACKAGE = findPackage();
export const TANDEM_VERSION: string = PACKAGE?.version ?? '0.0.0-unknown';

/** The directory of this installation's package.json (bin/, docs/ are there); undefined if not found. */
export const PACKAGE_ROOT: string | undefined = PACKAGE?.root;

function findPackage(): { root: string; version: string } | undefined {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'tandem' && typeof pkg.version === 'string') return { root: dir, version: pkg.version };
    } catch {
      // No package.json here: one level up.
    }
    dir = path.dirname(dir);
  }
  return undefined;
}

/**
 * The protocol range this node offers. `TANDEM_PROTOCOL_VERSION=N` (N from PROTOCOL_MIN to
 * PROTOCOL_VERSION) makes it speak exactly what a release of protocol N spoke: a rolling
 * upgrade can be rehearsed on one release. Anything else there is refused, never guessed.
 */
export function ownProtocol(env: NodeJS.ProcessEnv = process.env): ProtocolRange {
  const raw = env[PROTOCOL_ENV];
  if (raw === undefined || raw === '') return { min: PROTOCOL_MIN, max: PROTOCOL_VERSION };
  const n = /^\d{1,3}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= PROTOCOL_MIN && n <= PROTOCOL_VERSION)) {
    throw new TandemError({
      code: 'TANDEM_ERR_CONFIG_INVALID',
      op: `read ${PROTOCOL_ENV}`,
      reason: `${JSON.stringify(raw.slice(0, 20))} is not a protocol this release speaks (${PROTOCOL_MIN} to ${PROTOCOL_VERSION})`,
      hint: `unset ${PROTOCOL_ENV}, or set it to a number from ${PROTOCOL_MIN} to ${PROTOCOL_VERSION}`,
    });
  }
  // Set back to N, a node speaks what the release of protocol N spoke: N and the one before it,
  // though never below PROTOCOL_MIN (this release speaks nothing older).
  return { min: Math.max(PROTOCOL_MIN, n - 1), max: n };
}

/** The hello fields that announce a range: `proto` alone up to protocol 1, `protoMax` from 2. */
export function helloProtocolFields(own: ProtocolRange): { proto: number; protoMax?: number } {
  return own.max >= 2 ? { proto: own.min, protoMax: own.max } : { proto: own.min };
}

/** The peer's range as its hello announced it (a protocol-1 hello has `proto` only). */
export function peerProtocol(hello: { proto: number; protoMax?: number | undefined }): ProtocolRange {
  return { min: hello.proto, max: Math.max(hello.proto, hello.protoMax ?? hello.proto) };
}

export type Negotiation = { ok: true; version: number } | { ok: false; reason: string };

/** The version a session runs at: the highest both speak (DRBD's protocol_min/max agreement). */
export function negotiateProtocol(own: ProtocolRange, peer: ProtocolRange): Negotiation {
  const version = Math.min(own.max, peer.max);
  if (version < own.min || version < peer.min) {
    const span = (r: ProtocolRange) => (r.min === r.max ? `${r.min}` : `${r.min} to ${r.max}`);
    return { ok: false, reason: `the peer speaks protocol ${span(peer)}, this node ${span(own)}: no version in common` };
  }
  return { ok: true, version };
}

/** "tandem 0.1.0 (protocol 3, speaks 2 to 3; node v20.20.2)": what a bug report needs. */
export function versionLine(): string {
  return `tandem ${TANDEM_VERSION} (protocol ${PROTOCOL_VERSION}, speaks ${PROTOCOL_MIN} to ${PROTOCOL_VERSION}; node ${process.version})`;
}
