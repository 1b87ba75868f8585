// Which bounce format a `POST /bounces` body is, by its Content-Type and then its shape, and the
// events it holds. JSON bodies are told apart by their fields: an SNS envelope (`Type`,
// `TopicArn`), an SES notification (`notificationType`/`eventType` and `mail`), a Postmark record
// (`RecordType`, `Email`). SNS posts JSON as `text/plain; charset=UTF-8`, so that type is taken
// for SNS envelopes only.
import { BadBounceError, BadJsonError, UnsupportedMediaTypeError } from '../errors.ts'
import { isValidEmail } from './addresses.ts'
import { DSN_MEDIA_TYPES, parseDsn } from './bounce-dsn.ts'
import { parseContentType } from './bounce-mime.ts'
import { isPostmarkRecord, parsePostmark } from './bounce-postmark.ts'
import { isSesNotification, isSnsEnvelope, parseSesNotification, parseSnsEnvelope } from './bounce-ses.ts'
import { asObject, reasonOf, type BounceReport } from './bounce-types.ts'

/** How a body is read: as JSON, as JSON from SNS (text/plain), or as a DSN. */
export type BounceBodyKind = 'json' | 'sns-text' | 'dsn'

/** The media types `POST /bounces` takes, for messages. */
export const BOUNCE_MEDIA_TYPES = 'application/json, text/plain (Amazon SNS), message/rfc822, multipart/report or message/delivery-status'

const JSON_TYPE_RE = /^application\/(?:[\w.+-]+\+)?json$/

/** How a body of this Content-Type is read; throws {@link UnsupportedMediaTypeError} (415) for any other. */
export function bounceBodyKind (contentType: string | undefined): BounceBodyKind {
  const type = contentType === undefined ? '' : parseContentType(contentType).type
  if (JSON_TYPE_RE.test(type)) return 'json'
  if (type === 'text/plain') return 'sns-text'
  if (DSN_MEDIA_TYPES.has(type)) return 'dsn'
  throw new UnsupportedMediaTypeError(`Content-Type must be ${BOUNCE_MEDIA_TYPES} (got ${contentType ?? 'none'})`)
}

function parseJson (body: Buffer): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(body.toString('utf8').replace(/^\uFEFF/, ''))
  } catch (cause) {
    throw new BadJsonError(`body is not valid JSON: ${(cause as Error).message}`)
  }
  const json = asObject(value)
  if (json === undefined) throw new BadBounceError('body must be a JSON object: an SNS message, an SES notification or a Postmark bounce or spam-complaint record')
  return json
}

function parseJsonReport (json: Record<string, unknown>): BounceReport {
  if (isSnsEnvelope(json)) return parseSnsEnvelope(json)
  if (isSesNotification(json)) return parseSesNotification(json)
  if (isPostmarkRecord(json)) return parsePostmark(json)
  const keys = Object.keys(json).slice(0, 8).join(', ')
  throw new BadBounceError(`JSON body is none of the bounce formats: an SNS message (Type, TopicArn), an SES notification (notificationType, mail) or a Postmark record (RecordType, Email); its fields: ${keys || 'none'}`)
}

/**
 * The events of a `POST /bounces` body. Throws {@link BadJsonError} or {@link BadBounceError}
 * (400) for a body that is none of the formats, {@link UnsupportedMediaTypeError} (415) for a
 * Content-Type that is none of {@link BOUNCE_MEDIA_TYPES} or a text/plain body that is not from SNS.
 * An event whose address is not a valid one is turned into an ignored event.
 */
export function parseBounce (contentType: string | undefined, body: Buffer): BounceReport {
  const kind = bounceBodyKind(contentType)
  let report: BounceReport
  if (kind === 'dsn') {
    report = parseDsn(contentType as string, body)
  } else {
    let json: Record<string, unknown>
    try {
      json = parseJson(body)
    } catch (err) {
      if (kind === 'sns-text') throw new UnsupportedMediaTypeError(`text/plain is taken for Amazon SNS messages only, and this body is not one (${(err as Error).message}); send JSON as application/json`)
      throw err
    }
    if (kind === 'sns-text' && !isSnsEnvelope(json)) {
      throw new UnsupportedMediaTypeError('text/plain is taken for Amazon SNS messages only (Type and TopicArn fields); send other JSON as application/json')
    }
    report = parseJsonReport(json)
  }
  for (const event of report.events) {
    if (event.kind !== 'ignored' && !isValidEmail(event.email)) {
      event.reason = reasonOf('ignored', report.source, `not an e-mail address: ${JSON.stringify(event.email)}`)
      event.kind = 'ignored'
    }
  }
  return report
}
