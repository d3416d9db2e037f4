// A software WebAuthn authenticator for HTTP tests (test code only): an ES256 key from node:crypto,
// authenticatorData, clientDataJSON and a 'none' attestation in a tiny CBOR encoder — enough to produce
// the responses a browser would send, so the routes can be tested without one.
import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';

type Cbor = number | string | Uint8Array | Cbor[] | Map<Cbor, Cbor> | { [key: string]: Cbor };

function head(major: number, length: number): Buffer {
  if (length < 24) return Buffer.from([(major << 5) | length]);
  if (length < 0x100) return Buffer.from([(major << 5) | 24, length]);
  if (length < 0x10000) {
    const b = Buffer.alloc(3);
    b[0] = (major << 5) | 25;
    b.writeUInt16BE(length, 1);
    return b;
  }
  const b = Buffer.alloc(5);
  b[0] = (major << 5) | 26;
  b.writeUInt32BE(length, 1);
  return b;
}

/** Encodes the few CBOR types WebAuthn needs (integers, byte and text strings, arrays, maps). */
export function cbor(value: Cbor): Buffer {
  if (typeof value === 'number') return value >= 0 ? head(0, value) : head(1, -1 - value);
  if (typeof value === 'string') {
    const text = Buffer.from(value, 'utf8');
    return Buffer.concat([head(3, text.length), text]);
  }
  if (value instanceof Uint8Array) return Buffer.concat([head(2, value.length), value]);
  if (Array.isArray(value)) return Buffer.concat([head(4, value.length), ...value.map(cbor)]);
  const entries = value instanceof Map ? [...value] : Object.entries(value);
  return Buffer.concat([head(5, entries.length), ...entries.flatMap(([k, v]) => [cbor(k), cbor(v)])]);
}

const sha256 = (data: Buffer | string): Buffer => createHash('sha256').update(data).digest();
const b64 = (data: Buffer | Uint8Array): string => Buffer.from(data).toString('base64url');

export interface CeremonyOverrides {
  /** The origin the "browser" puts into clientDataJSON. @default the authenticator's origin */
  readonly origin?: string;
  /** The RP id whose hash goes into authenticatorData. @default the options' RP id */
  readonly rpId?: string;
  /** The challenge echoed in clientDataJSON. @default the options' challenge */
  readonly challenge?: string;
  /** The clientDataJSON type. */
  readonly type?: string;
  /** The signature counter to sign with. @default one more than the last */
  readonly counter?: number;
  /** User verification flag. @default true */
  readonly uv?: boolean;
}

// biome-ignore lint/suspicious/noExplicitAny: options arrive as parsed JSON
type Json = any;

/** One discoverable credential on a software authenticator. */
export class SoftAuthenticator {
  readonly origin: string;
  readonly credentialId = randomBytes(16);
  readonly #key: { privateKey: KeyObject; publicKey: KeyObject };
  #counter: number;
  #rpId = '';
  #userHandle = '';
  /** Whether the key claims to be synced (backup eligible and backed up). */
  readonly synced: boolean;

  constructor(origin: string, options: { counter?: number; synced?: boolean } = {}) {
    this.origin = origin;
    this.#key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.#counter = options.counter ?? 0;
    this.synced = options.synced ?? false;
  }

  get id(): string {
    return b64(this.credentialId);
  }

  /** The COSE (EC2, ES256) form of the public key. */
  #cosePublicKey(): Buffer {
    const jwk = this.#key.publicKey.export({ format: 'jwk' });
    return cbor(
      new Map<Cbor, Cbor>([
        [1, 2],
        [3, -7],
        [-1, 1],
        [-2, Buffer.from(jwk.x as string, 'base64url')],
        [-3, Buffer.from(jwk.y as string, 'base64url')],
      ]),
    );
  }

  #flags(uv: boolean, attested: boolean): number {
    let flags = 0x01; // user present
    if (uv) flags |= 0x04;
    if (this.synced) flags |= 0x08 | 0x10; // backup eligible, backed up
    if (attested) flags |= 0x40;
    return flags;
  }

  #clientData(type: string, options: Json, overrides: CeremonyOverrides): Buffer {
    const data = {
      type: overrides.type ?? type,
      challenge: overrides.challenge ?? options.challenge,
      origin: overrides.origin ?? this.origin,
      crossOrigin: false,
    };
    return Buffer.from(JSON.stringify(data), 'utf8');
  }

  /** The response JSON a browser sends, around the ceremony's own response fields. */
  #credential(clientData: Buffer, fields: Record<string, unknown>): Json {
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      clientExtensionResults: {},
      authenticatorAttachment: 'cross-platform',
      response: { clientDataJSON: b64(clientData), ...fields },
    };
  }

  /** Answers `PublicKeyCredentialCreationOptionsJSON` with a 'none' attestation. */
  register(options: Json, overrides: CeremonyOverrides = {}): Json {
    const rpId = overrides.rpId ?? options.rp.id;
    this.#rpId = rpId;
    this.#userHandle = options.user.id;
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(this.#counter);
    const idLength = Buffer.alloc(2);
    idLength.writeUInt16BE(this.credentialId.length);
    const authData = Buffer.concat([
      sha256(rpId),
      Buffer.from([this.#flags(overrides.uv ?? true, true)]),
      counter,
      Buffer.alloc(16), // aaguid
      idLength,
      this.credentialId,
      this.#cosePublicKey(),
    ]);
    const clientData = this.#clientData('webauthn.create', options, overrides);
    return this.#credential(clientData, {
      attestationObject: b64(cbor({ fmt: 'none', attStmt: {}, authData })),
      transports: ['usb'],
    });
  }

  /** Answers `PublicKeyCredentialRequestOptionsJSON` (a discoverable credential: no allow-list). */
  authenticate(options: Json, overrides: CeremonyOverrides = {}): Json {
    const rpId = overrides.rpId ?? options.rpId ?? this.#rpId;
    const next = overrides.counter ?? (this.#counter === 0 ? 0 : this.#counter + 1);
    this.#counter = next;
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(next);
    const authData = Buffer.concat([
      sha256(rpId),
      Buffer.from([this.#flags(overrides.uv ?? true, false)]),
      counter,
    ]);
    const clientData = this.#clientData('webauthn.get', options, overrides);
    const signature = sign('sha256', Buffer.concat([authData, sha256(clientData)]), this.#key.privateKey);
    return this.#credential(clientData, {
      authenticatorData: b64(authData),
      signature: b64(signature),
      userHandle: this.#userHandle,
    });
  }
}
