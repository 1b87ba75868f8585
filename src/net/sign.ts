import { lazyRequire } from '../lazy-require.ts'
import {
  InvalidOptionError,
  InvalidSecretError,
  SignatureMismatchError,
  SignatureMissingError,
  SignatureTimestampError,
} from '../errors.ts'

/** node:crypto, loaded by the first signature, secret or check: a trigger without a secret pays nothing for it. */
const nodeCrypto = lazyRequire<typeof import('node:crypto')>('node:crypto')

// Standard Webhooks: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md

/** Default tolerance between `webhook-timestamp` and now, in seconds (Standard Webhooks: 5 minutes). */
export const TIMESTAMP_TOLERANCE_S = 300

const SECRET_PREFIX = 'whsec_'
const SECRET_BYTES = 32
const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/
const MSG_ID_RE = /^[\x21-\x7e]{1,255}$/ // visible ASCII, no spaces or dots-only rule in the spec
const TIMESTAMP_RE = /^\d{1,12}$/

/** A secret: `whsec_` + base64, plain base64, or the raw key bytes. */
export type Secret = string | Uint8Array

/** The three headers that carry a Standard Webhooks signature. */
export type WebhookHeaders = {
  'webhook-id': string
  'webhook-timestamp': string
  'webhook-signature': string
}

/** Options of {@link sign}. */
export interface SignOptions {
  /** Message id; also the idempotency key the receiver deduplicates on. @default a random UUID */
  id?: string
  /** Unix time in seconds. @default now */
  timestamp?: number
}

/** Options of {@link verify}. */
export interface VerifyOptions {
  /** Accepted distance between the signed timestamp and now, in seconds. @default 300 */
  toleranceSec?: number
  /** The current Unix time in seconds, for tests. @default now */
  now?: number
}

/** What {@link verify} found in a valid signature. */
export interface VerifiedMessage {
  id: string
  timestamp: number
}

/** Headers as Node's `IncomingHttpHeaders`, a plain object, or a WHATWG `Headers`. */
export type HeaderSource = Headers | Record<string, string | readonly string[] | undefined>

let lastSecret: Secret | undefined
let lastKey: Buffer | undefined

/** Decodes a secret into HMAC key bytes; the last one is cached (one secret per process is the norm). */
export function secretKey (secret: Secret): Buffer {
  if (secret === lastSecret && lastKey !== undefined) return lastKey
  let key: Buffer
  if (typeof secret === 'string') {
    const b64 = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret
    if (!BASE64_RE.test(b64)) {
      throw new InvalidSecretError('secret must be "whsec_" followed by base64 (see `rawtrigger secret`)')
    }
    key = Buffer.from(b64, 'base64')
  } else if (secret instanceof Uint8Array) {
    key = Buffer.from(secret)
  } else {
    throw new InvalidSecretError('secret must be a string or a Uint8Array')
  }
  if (key.length === 0) throw new InvalidSecretError('secret must decode to at least one byte')
  lastSecret = secret
  lastKey = key
  return key
}

/** A new secret: `whsec_` + base64 of 32 random bytes. */
export function generateSecret (): string {
  return SECRET_PREFIX + nodeCrypto().randomBytes(SECRET_BYTES).toString('base64')
}

/** `v1,<base64 HMAC-SHA256 of "id.timestamp.payload">`. */
export function signature (key: Buffer, id: string, timestamp: number, payload: string | Uint8Array): string {
  const hmac = nodeCrypto().createHmac('sha256', key).update(`${id}.${timestamp}.`)
  hmac.update(payload)
  return 'v1,' + hmac.digest('base64')
}

/**
 * Signs a payload per Standard Webhooks.
 * @returns the `webhook-id`, `webhook-timestamp` and `webhook-signature` headers.
 */
export function sign (secret: Secret, payload: string | Uint8Array, options: SignOptions = {}): WebhookHeaders {
  const key = secretKey(secret)
  const id = options.id ?? 'msg_' + globalThis.crypto.randomUUID()
  if (!MSG_ID_RE.test(id)) throw new InvalidOptionError(`webhook id must be 1-255 visible ASCII characters (got ${JSON.stringify(id)})`)
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000)
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new InvalidOptionError(`timestamp must be a non-negative integer of seconds (got ${timestamp})`)
  }
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signature(key, id, timestamp, payload),
  }
}

function header (headers: HeaderSource, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined
  const value = (headers as Record<string, string | readonly string[] | undefined>)[name]
  return typeof value === 'string' ? value : undefined
}

/**
 * Verifies a Standard Webhooks signature. Throws a {@link SignatureMissingError},
 * {@link SignatureTimestampError} or {@link SignatureMismatchError}; returns the id and timestamp.
 * The comparison is constant-time (lengths are compared first).
 */
export function verify (
  secret: Secret,
  payload: string | Uint8Array,
  headers: HeaderSource,
  options: VerifyOptions = {},
): VerifiedMessage {
  const key = secretKey(secret)
  const id = header(headers, 'webhook-id')
  const ts = header(headers, 'webhook-timestamp')
  const sigs = header(headers, 'webhook-signature')
  if (id === undefined || !MSG_ID_RE.test(id)) throw new SignatureMissingError('webhook-id header is missing or malformed')
  if (ts === undefined || !TIMESTAMP_RE.test(ts)) throw new SignatureMissingError('webhook-timestamp header is missing or not Unix seconds')
  if (sigs === undefined || sigs.length === 0) throw new SignatureMissingError('webhook-signature header is missing')

  const timestamp = Number(ts)
  const now = options.now ?? Math.floor(Date.now() / 1000)
  const tolerance = options.toleranceSec ?? TIMESTAMP_TOLERANCE_S
  if (Math.abs(now - timestamp) > tolerance) {
    throw new SignatureTimestampError(`webhook-timestamp ${timestamp} is more than ${tolerance} s from now (${now})`)
  }

  const expected = Buffer.from(signature(key, id, timestamp, payload).slice(3), 'base64')
  for (const entry of sigs.split(' ')) {
    const comma = entry.indexOf(',')
    if (comma === -1 || entry.slice(0, comma) !== 'v1') continue // other schemes (v1a, …) are not ours to check
    const given = Buffer.from(entry.slice(comma + 1), 'base64')
    if (given.length === expected.length && nodeCrypto().timingSafeEqual(given, expected)) return { id, timestamp }
  }
  throw new SignatureMismatchError('no webhook-signature entry matches the payload')
}
