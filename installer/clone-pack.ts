// The clone pack: one file with everything the secondary needs except the data (the pair's
// names and addresses, what is protected, the application modules, the settings, the pair key),
// written by `install primary` and read by `install secondary --from PACK`.
//
// How the key travels: the body is sealed (AES-256-GCM) with a key derived from the pair key, and
// the pair key itself is in the pack, wrapped with a key derived (scrypt) from a one-time pack
// code that install primary prints (or a passphrase the operator put in both answers files). So
// the operator carries one file by any means (scp, a USB stick, a ticket attachment) and one
// short code by another (typed, or from a secrets store): neither alone opens the pair. A holder
// of the pair key file can open the pack without the code (--key). The visible header (pair,
// nodes, release) is bound to both ciphertexts, so it cannot be changed either. The secondary
// runs the scripts the pack describes as root: only a pack sealed with the pair key is opened.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { PAIR_KEY_MIN_BYTES } from '../shared/constants.ts';
import { TandemError } from '../shared/errors.ts';

/** What the pack carries: the primary's answers as the secondary needs them. */
export interface PackPayload {
  pair: string;
  /** The primary (installed first) and the node this pack installs. */
  from: string;
  to: string;
  nodes: Record<string, { channel: string; control: string; public?: string | undefined }>;
  protect: { name: string; path: string; exclude: string[] }[];
  modules: unknown[];
  publicTargets: unknown[];
  settings: Record<string, unknown>;
}

interface Envelope {
  tandemClonePack: 1;
  pair: string;
  from: string;
  to: string;
  createdAt: string;
  tandem: string;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  wrappedKey: string;
  body: string;
}

/** The parts of the envelope anyone may read (the pack is not secret, only sealed). */
export type PackHeader = Pick<Envelope, 'pair' | 'from' | 'to' | 'createdAt' | 'tandem'>;

/** Format 1's key derivation: 32 MiB and ~0.1 s per try; a reader accepts these values only. */
const KDF = { name: 'scrypt', N: 32768, r: 8, p: 1 } as const;
const MAX_PACK_BYTES = 1024 * 1024;
const CODE_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'; // Crockford base32: no I, L, O, U
const CODE_GROUPS = 4;
const CODE_GROUP_LEN = 5;

/** A new pack code: 20 characters of base32 (100 bits) in groups of five. */
export function generatePackCode(): string {
  const groups: string[] = [];
  for (let g = 0; g < CODE_GROUPS; g++) {
    let s = '';
    for (let i = 0; i < CODE_GROUP_LEN; i++) s += CODE_ALPHABET[crypto.randomInt(CODE_ALPHABET.length)];
    groups.push(s);
  }
  return groups.join('-');
}

/** What is typed and what was printed compare equal: case, spaces, dashes, O/0 and I/L/1 aside. */
export function normalizePackCode(code: string): string {
  return code.normalize('NFKC').toUpperCase().replace(/[\s-]+/g, '').replace(/O/g, '0').replace(/[IL]/g, '1');
}

function aad(h: Omit<Envelope, 'wrappedKey' | 'body'>): Buffer {
  // Field order fixed here, not taken from the file: the same bytes on both sides.
  return Buffer.from(JSON.stringify([h.tandemClonePack, h.pair, h.from, h.to, h.createdAt, h.tandem, h.kdf.name, h.kdf.N, h.kdf.r, h.kdf.p, h.kdf.salt]));
}

function seal(key: Buffer, plain: Buffer, ad: Buffer): string {
  const nonce = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(ad);
  const body = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([nonce, body, c.getAuthTag()]).toString('base64');
}

function unseal(key: Buffer, sealed: string, ad: Buffer): Buffer | undefined {
  const b = Buffer.from(sealed, 'base64');
  if (b.length < 12 + 16) return undefined;
  const d = crypto.createDecipheriv('aes-256-gcm', key, b.subarray(0, 12));
  d.setAAD(ad);
  d.setAuthTag(b.subarray(b.length - 16));
  try {
    return Buffer.concat([d.update(b.subarray(12, b.length - 16)), d.final()]);
  } catch {
    return undefined;
  }
}

function codeKey(code: string, salt: Buffer): Buffer {
  return crypto.scryptSync(normalizePackCode(code), salt, 32, { N: KDF.N, r: KDF.r, p: KDF.p, maxmem: 64 * 1024 * 1024 });
}

function bodyKey(pairKey: Buffer, salt: Buffer): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', pairKey, salt, 'tandem clone pack v1', 32));
}

/** The pack's text: a JSON envelope (readable header, sealed key and body). */
export function sealPack(payload: PackPayload, pairKey: Buffer, code: string, meta: { tandem: string; now: Date }): string {
  const salt = crypto.randomBytes(16);
  const h = { tandemClonePack: 1 as const, pair: payload.pair, from: payload.from, to: payload.to, createdAt: meta.now.toISOString(), tandem: meta.tandem, kdf: { ...KDF, salt: salt.toString('base64') } };
  const ad = aad(h);
  const env: Envelope = { ...h, wrappedKey: seal(codeKey(code, salt), pairKey, ad), body: seal(bodyKey(pairKey, salt), Buffer.from(JSON.stringify(payload)), ad) };
  return `${JSON.stringify(env, null, 2)}\n`;
}

const packError = (file: string, reason: string, hint: string) => new TandemError({ code: 'TANDEM_ERR_PACK_INVALID', op: `open clone pack ${file}`, reason, hint });

/** Reads and checks the envelope's shape (not its seal): bounded, every field typed. */
export function readPackHeader(file: string): PackHeader & { envelope: Envelope } {
  let text: string;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > MAX_PACK_BYTES) throw new Error(`larger than ${MAX_PACK_BYTES} bytes: not a clone pack`);
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw TandemError.wrap(err, { code: 'TANDEM_ERR_PACK_INVALID', op: `open clone pack ${file}`, hint: 'copy the file install primary wrote (--pack) to this server and name it with --from' });
  }
  let e: Record<string, unknown>;
  try {
    e = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw packError(file, 'not a clone pack (not JSON)', 'name the file install primary wrote with --pack');
  }
  const str = (v: unknown, max = 256) => typeof v === 'string' && v.length > 0 && v.length <= max;
  const kdf = e.kdf as Record<string, unknown> | undefined;
  if (typeof e !== 'object' || e === null || e.tandemClonePack !== 1) throw packError(file, 'not a clone pack of a release this one reads (format 1)', 'make the pack with the same Tandem release as this one');
  if (!str(e.pair, 32) || !str(e.from, 32) || !str(e.to, 32) || !str(e.createdAt, 40) || !str(e.tandem, 64) || !str(e.wrappedKey, 1024) || !str(e.body, MAX_PACK_BYTES)) throw packError(file, 'the pack is damaged (a field is missing or malformed)', 'copy it again from the primary');
  if (typeof kdf !== 'object' || kdf === null || kdf.name !== KDF.name || kdf.N !== KDF.N || kdf.r !== KDF.r || kdf.p !== KDF.p || !str(kdf.salt, 64)) throw packError(file, 'the pack names a key derivation this release does not use', 'make the pack with this Tandem release');
  const envelope = e as unknown as Envelope;
  return { pair: envelope.pair, from: envelope.from, to: envelope.to, createdAt: envelope.createdAt, tandem: envelope.tandem, envelope };
}

/** Opens a pack with its code or with the pair key; throws TANDEM_ERR_PACK_INVALID on a wrong secret or a changed pack. */
export function openPack(file: string, secret: { code: string } | { pairKey: Buffer }): { header: PackHeader; payload: PackPayload; pairKey: Buffer } {
  const { envelope: env, ...header } = readPackHeader(file);
  const ad = aad(env);
  const salt = Buffer.from(env.kdf.salt, 'base64');
  let pairKey: Buffer;
  if ('code' in secret) {
    const k = unseal(codeKey(secret.code, salt), env.wrappedKey, ad);
    if (k === undefined) throw packError(file, 'the pack code does not open this pack (a wrong code, or the pack was changed)', 'type the code install primary printed for this pack, or give the pair key file (--key / pairKey:)');
    pairKey = k;
  } else pairKey = secret.pairKey;
  if (pairKey.length < PAIR_KEY_MIN_BYTES) throw packError(file, 'the pair key in the pack is too short', 'make a new pack on the primary');
  const body = unseal(bodyKey(pairKey, salt), env.body, ad);
  if (body === undefined) throw packError(file, 'the pack is not sealed with this pair key (another pair, or the pack was changed)', 'use the pack and key of the same primary');
  let payload: PackPayload;
  try {
    payload = JSON.parse(body.toString('utf8')) as PackPayload;
  } catch {
    throw packError(file, 'the sealed body is not readable', 'make a new pack on the primary');
  }
  if (payload.pair !== env.pair || payload.from !== env.from || payload.to !== env.to) throw packError(file, 'the sealed body does not match its header', 'make a new pack on the primary');
  return { header, payload, pairKey };
}
