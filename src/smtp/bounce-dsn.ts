// RFC 3464 delivery status notifications: a `multipart/report; report-type=delivery-status`
// message whose `message/delivery-status` part is header blocks separated by blank lines — one
// per-message block, then one block per recipient (§2.1). A recipient whose `Action` is `failed`
// with a 5.x.x `Status` (RFC 3463 class 5, permanent) is a hard bounce; `failed` with another
// class (4.4.7: gave up after the queue lifetime) and `delayed` are soft; `delivered`, `relayed`
// and `expanded` are ignored. RFC 6533's `message/global-delivery-status` reads the same.
import { BadBounceError } from '../errors.ts'
import { decodeTransfer, fieldOf, findPart, normaliseLineEnds, parseContentType, parseHeaderBlock, splitMessage } from './bounce-mime.ts'
import { reasonOf, type BounceEvent, type BounceKind, type BounceReport } from './bounce-types.ts'

/** The report parts this parser reads. */
export const DELIVERY_STATUS_TYPES: ReadonlySet<string> = new Set(['message/delivery-status', 'message/global-delivery-status'])

/** What a POST body may be: a whole message, its multipart/report body, or the delivery-status part alone. */
export const DSN_MEDIA_TYPES: ReadonlySet<string> = new Set(['message/rfc822', 'multipart/report', ...DELIVERY_STATUS_TYPES])

/** The per-recipient fields of a DSN (RFC 3464 §2.3) that decide what happened. */
export interface DsnRecipient {
  /** The address of `Final-Recipient` (or `Original-Recipient` when that is missing), without its address type. */
  recipient: string
  /** `Action`, lower-cased: failed, delayed, delivered, relayed, expanded. */
  action: string
  /** `Status` as `class.subject.detail` (RFC 3463), without a comment; undefined when absent or malformed. */
  status: string | undefined
  /** `Diagnostic-Code` as given, e.g. `smtp; 550 5.1.1 <a@x.org>: User unknown`. */
  diagnosticCode: string | undefined
  /** `Remote-MTA` as given. */
  remoteMta: string | undefined
}

/** `(a comment)` removed, one level of nesting; RFC 3464 fields may carry them (§2.1.1). */
function stripComments (value: string): string {
  return value.replace(/\((?:[^()\\]|\\.|\([^()]*\))*\)/g, ' ').trim()
}

/** `rfc822; a@x.org` → `a@x.org` (§2.3.2 address-type ";" generic-address); `<…>` removed. */
function addressOf (value: string): string {
  const semi = value.indexOf(';')
  const address = (semi === -1 ? value : value.slice(semi + 1)).trim()
  return address.startsWith('<') && address.endsWith('>') ? address.slice(1, -1).trim() : address
}

/** The recipient blocks of a delivery-status body (any line ends). */
export function parseDeliveryStatus (text: string): DsnRecipient[] {
  const recipients: DsnRecipient[] = []
  // Blocks are separated by one or more blank lines; a line of white space only counts as blank.
  for (const block of normaliseLineEnds(text).split(/\n(?:[ \t]*\n)+/)) {
    const fields = parseHeaderBlock(block)
    const final = fieldOf(fields, 'final-recipient') ?? fieldOf(fields, 'original-recipient')
    if (final === undefined) continue // the per-message block (Reporting-MTA, Arrival-Date, …)
    const status = /^([245])\.(\d{1,3})\.(\d{1,3})\b/.exec(stripComments(fieldOf(fields, 'status') ?? ''))
    recipients.push({
      recipient: addressOf(stripComments(final)),
      action: stripComments(fieldOf(fields, 'action') ?? '').toLowerCase(),
      status: status === null ? undefined : `${status[1]}.${status[2]}.${status[3]}`,
      diagnosticCode: fieldOf(fields, 'diagnostic-code'),
      remoteMta: fieldOf(fields, 'remote-mta'),
    })
  }
  return recipients
}

/**
 * The delivery-status text of a POST body by its media type: `message/rfc822` (a whole message
 * as the MTA sent it), `multipart/report` (its body, the boundary in `contentType`), or the
 * delivery-status part itself.
 */
export function deliveryStatusOf (contentType: string, raw: Buffer): string {
  const text = normaliseLineEnds(raw.toString('utf8'))
  const { type } = parseContentType(contentType)
  if (DELIVERY_STATUS_TYPES.has(type)) return text
  let entityType = contentType
  let body = text
  if (type === 'message/rfc822') {
    const message = splitMessage(text)
    entityType = fieldOf(message.headers, 'content-type') ?? 'text/plain'
    body = decodeTransfer(message.body, fieldOf(message.headers, 'content-transfer-encoding'))
  }
  const found = findPart(entityType, body, DELIVERY_STATUS_TYPES)
  if (found.body === undefined) {
    const arf = /report-type=feedback-report/i.test(found.outer) ? ' (ARF feedback reports are not read; use the provider\'s complaint webhook)' : ''
    throw new BadBounceError(`the message (${found.outer}) has no message/delivery-status part: not an RFC 3464 DSN${arf}`)
  }
  return found.body
}

/** A DSN recipient's kind. */
export function dsnKind (r: DsnRecipient): BounceKind {
  if (r.action === 'failed') return r.status?.startsWith('5.') === true ? 'hard' : 'soft'
  if (r.action === 'delayed') return 'soft'
  return 'ignored'
}

/** The events of a DSN posted as `contentType`. */
export function parseDsn (contentType: string, raw: Buffer): BounceReport {
  const recipients = parseDeliveryStatus(deliveryStatusOf(contentType, raw))
  if (recipients.length === 0) throw new BadBounceError('the delivery-status part has no recipient block (no Final-Recipient field)')
  const events: BounceEvent[] = recipients.map((r) => {
    const kind = dsnKind(r)
    return { email: r.recipient, kind, reason: reasonOf(kind, 'dsn', r.action, r.status, r.diagnosticCode) }
  })
  return { source: 'dsn', events }
}
