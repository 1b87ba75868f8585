// Postmark's bounce and spam-complaint webhooks: one JSON object per event, `RecordType` "Bounce"
// or "SpamComplaint", the bounce type in `Type` (its name) and `TypeCode`, the address in `Email`.
// Formats and types: https://postmarkapp.com/developer/webhooks/bounce-webhook,
// https://postmarkapp.com/developer/webhooks/spam-complaint-webhook,
// https://postmarkapp.com/developer/api/bounce-api#bounce-types.
import { BadBounceError } from '../errors.ts'
import { asString, reasonOf, type BounceKind, type BounceReport } from './bounce-types.ts'

/**
 * Postmark bounce types by name. Hard: the address does not exist or Postmark deactivated it;
 * soft: temporary or the sending side's problem (a block, DNS, DMARC) — the address may work later.
 * A type in no row (AutoResponder, AddressChange, Subscribe, ChallengeVerification, …) is ignored.
 */
const TYPE_KINDS: Record<string, BounceKind> = {
  HardBounce: 'hard',
  BadEmailAddress: 'hard',
  ManuallyDeactivated: 'hard',
  SpamComplaint: 'complaint',
  Unsubscribe: 'unsubscribe',
  SoftBounce: 'soft',
  Transient: 'soft',
  DnsError: 'soft',
  Blocked: 'soft',
  DMARCPolicy: 'soft',
  Unknown: 'soft',
}

/** The same types by `TypeCode`, for a payload that carries the code only. */
const CODE_TYPES: Record<number, string> = {
  1: 'HardBounce', 2: 'Transient', 16: 'Unsubscribe', 256: 'DnsError', 2048: 'Unknown', 4096: 'SoftBounce',
  100000: 'BadEmailAddress', 100001: 'SpamComplaint', 100002: 'ManuallyDeactivated', 100006: 'Blocked', 100009: 'DMARCPolicy',
}

const RECORD_TYPES = new Set(['Bounce', 'SpamComplaint'])

/** True for a Postmark bounce or spam-complaint record: `RecordType` and `Email`. */
export function isPostmarkRecord (json: Record<string, unknown>): boolean {
  return typeof json.RecordType === 'string' && 'Email' in json
}

/** The event of a Postmark bounce or spam-complaint webhook. */
export function parsePostmark (json: Record<string, unknown>): BounceReport {
  const recordType = String(json.RecordType)
  if (!RECORD_TYPES.has(recordType)) {
    throw new BadBounceError(`Postmark RecordType must be Bounce or SpamComplaint (got ${JSON.stringify(recordType)}); point only the bounce and spam-complaint webhooks here`)
  }
  const type = asString(json.Type) ?? (typeof json.TypeCode === 'number' ? CODE_TYPES[json.TypeCode] : undefined)
  // A SpamComplaint record is a complaint whatever its Type says.
  const kind: BounceKind = recordType === 'SpamComplaint' ? 'complaint' : (type === undefined ? undefined : TYPE_KINDS[type]) ?? 'ignored'
  const email = asString(json.Email) ?? ''
  // Details holds the SMTP reply when there is one ("smtp;550 5.1.1 …"); Description is Postmark's prose.
  return { source: 'postmark', events: [{ email, kind, reason: reasonOf(kind, 'postmark', type, asString(json.Details)) }] }
}
