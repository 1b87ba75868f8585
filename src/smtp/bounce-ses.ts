// Amazon SES bounce and complaint notifications, as Amazon SNS delivers them to an HTTP(S)
// subscriber: an SNS envelope (`Type: "Notification"`) whose `Message` is the SES notification as a
// JSON string. Also the SES notification itself (SNS "raw message delivery", or a relay that
// unwrapped it), and SES event publishing's `eventType` spelling of `notificationType`.
// Formats: https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html and
// https://docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html.
// SNS signatures are not checked (that needs the certificate at SigningCertURL, and the receiver
// fetches nothing): the access rule of /bounces (loopback, or a Standard Webhooks signature) decides.
import { BadBounceError } from '../errors.ts'
import { asObject, asString, reasonOf, type BounceEvent, type BounceKind, type BounceReport } from './bounce-types.ts'

/** SNS message types a subscriber receives. */
const SNS_TYPES = new Set(['Notification', 'SubscriptionConfirmation', 'UnsubscribeConfirmation'])

/** True for an SNS envelope: `Type` one of the SNS message types, and a `TopicArn`. */
export function isSnsEnvelope (json: Record<string, unknown>): boolean {
  return typeof json.Type === 'string' && SNS_TYPES.has(json.Type) && typeof json.TopicArn === 'string'
}

/** True for an SES notification: `notificationType` (or `eventType`) and its `mail` object. */
export function isSesNotification (json: Record<string, unknown>): boolean {
  return (typeof json.notificationType === 'string' || typeof json.eventType === 'string') && asObject(json.mail) !== undefined
}

/** `bounce.bounceType` → kind: Permanent is a hard bounce; Transient and Undetermined are soft. */
const BOUNCE_KINDS: Record<string, BounceKind> = { Permanent: 'hard', Transient: 'soft', Undetermined: 'soft' }

function recipients (value: unknown, field: string): Array<Record<string, unknown>> {
  if (!Array.isArray(value)) throw new BadBounceError(`SES notification: ${field} must be an array`)
  return value.map((entry) => asObject(entry) ?? {})
}

function bounceEvents (bounce: Record<string, unknown> | undefined): BounceEvent[] {
  if (bounce === undefined) throw new BadBounceError('SES Bounce notification has no bounce object')
  const type = asString(bounce.bounceType)
  const kind = type === undefined ? undefined : BOUNCE_KINDS[type]
  if (kind === undefined) throw new BadBounceError(`SES bounce.bounceType must be Permanent, Transient or Undetermined (got ${JSON.stringify(bounce.bounceType)})`)
  const subType = asString(bounce.bounceSubType)
  return recipients(bounce.bouncedRecipients, 'bounce.bouncedRecipients').map((r) => ({
    email: asString(r.emailAddress) ?? '',
    kind,
    reason: reasonOf(kind, 'ses', subType === undefined ? type : `${type}/${subType}`, asString(r.status), asString(r.diagnosticCode)),
  }))
}

function complaintEvents (complaint: Record<string, unknown> | undefined): BounceEvent[] {
  if (complaint === undefined) throw new BadBounceError('SES Complaint notification has no complaint object')
  const feedback = asString(complaint.complaintFeedbackType)
  return recipients(complaint.complainedRecipients, 'complaint.complainedRecipients').map((r) => ({
    email: asString(r.emailAddress) ?? '',
    kind: 'complaint' as const,
    reason: reasonOf('complaint', 'ses', feedback),
  }))
}

/** Events of an SES notification (the parsed `Message` of an SNS notification). */
export function parseSesNotification (json: Record<string, unknown>): BounceReport {
  const type = asString(json.notificationType) ?? asString(json.eventType)
  if (type === 'Bounce') return { source: 'ses', events: bounceEvents(asObject(json.bounce)) }
  if (type === 'Complaint') return { source: 'ses', events: complaintEvents(asObject(json.complaint)) }
  // Delivery, Send, Open, AmazonSnsSubscriptionSucceeded, …: nothing to suppress.
  const mail = asObject(json.mail)
  const destination = Array.isArray(mail?.destination) ? mail.destination : []
  const count = Math.max(1, destination.length)
  return { source: 'ses', events: Array.from({ length: count }, (_, i) => ({ email: asString(destination[i]) ?? '', kind: 'ignored' as const, reason: reasonOf('ignored', 'ses', type) })) }
}

/**
 * Events of an SNS envelope. A `SubscriptionConfirmation` carries its `SubscribeURL` for the
 * operator (the route logs it); it and `UnsubscribeConfirmation` count as one ignored event.
 */
export function parseSnsEnvelope (json: Record<string, unknown>): BounceReport {
  const topicArn = asString(json.TopicArn) ?? ''
  if (json.Type !== 'Notification') {
    const subscribeUrl = asString(json.SubscribeURL)
    return {
      source: 'ses',
      events: [{ email: '', kind: 'ignored', reason: reasonOf('ignored', 'ses', String(json.Type)) }],
      topicArn,
      ...(json.Type === 'SubscriptionConfirmation' && subscribeUrl !== undefined ? { subscribeUrl } : {}),
    }
  }
  const message = json.Message
  let inner: unknown
  try {
    inner = typeof message === 'string' ? JSON.parse(message) : undefined
  } catch {}
  const notification = asObject(inner)
  if (notification === undefined || !isSesNotification(notification)) {
    throw new BadBounceError(`SNS notification from ${topicArn}: Message is not an SES notification (a JSON object with notificationType and mail)`)
  }
  return parseSesNotification(notification)
}
