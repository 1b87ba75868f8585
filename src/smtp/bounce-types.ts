// What every bounce parser returns (issue 14): one event per recipient of a report, each with a
// kind that decides whether the address is suppressed. The parsers are pure functions of the
// request body; storing and answering is the route's job (src/server/bounce-route.ts).

/** Where a report came from: Amazon SES (via SNS, or posted directly), Postmark, or an RFC 3464 DSN. */
export type BounceSource = 'ses' | 'postmark' | 'dsn'

/**
 * What one report says about one recipient.
 * - `hard`: a permanent failure (SES `Permanent`, Postmark `HardBounce`, a DSN `failed` with a 5.x.x status) — suppressed.
 * - `complaint`: the recipient marked the mail as spam — suppressed.
 * - `unsubscribe`: the recipient asked to be removed (Postmark `Unsubscribe`) — suppressed.
 * - `soft`: a temporary failure (full mailbox, a delay, 4.x.x) — counted only.
 * - `ignored`: neither (a delivery, an auto-reply, an SNS confirmation) — counted only.
 */
export type BounceKind = 'hard' | 'complaint' | 'unsubscribe' | 'soft' | 'ignored'

/** The kinds whose addresses go on the suppression list. */
export const SUPPRESSED_KINDS: ReadonlySet<BounceKind> = new Set<BounceKind>(['hard', 'complaint', 'unsubscribe'])

/** One recipient's outcome in a report. */
export interface BounceEvent {
  /** The recipient's address as the report gives it, trimmed; '' when it gives none. */
  email: string
  kind: BounceKind
  /**
   * What the suppression list records: the kind and source first (`bounce:ses`, `complaint:postmark`),
   * then the provider's type and the SMTP status and diagnostic where the report gives them.
   */
  reason: string
}

/** A parsed report. */
export interface BounceReport {
  source: BounceSource
  events: BounceEvent[]
  /**
   * An SNS `SubscriptionConfirmation`: the URL the operator opens to confirm the subscription.
   * Never fetched by rawtrigger.
   */
  subscribeUrl?: string
  /** The SNS topic of a confirmation. */
  topicArn?: string
}

/** Longest reason stored: a diagnostic can quote a whole SMTP reply. */
export const MAX_REASON_CHARS = 300

/** `bounce:ses Permanent/General 5.1.1 smtp; 550 …`: the parts that are present, one line, at most {@link MAX_REASON_CHARS}. */
export function reasonOf (kind: BounceKind, source: BounceSource, ...details: Array<string | undefined>): string {
  const label = kind === 'hard' || kind === 'soft' ? 'bounce' : kind
  const parts = [`${label}:${source}`, ...details.filter((d): d is string => d !== undefined && d.trim() !== '')]
  const line = parts.join(' ').replace(/\s+/g, ' ').trim()
  return line.length <= MAX_REASON_CHARS ? line : `${line.slice(0, MAX_REASON_CHARS - 1)}…`
}

/** A JSON object, or undefined. */
export function asObject (value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined
}

/** A non-empty string, or undefined. */
export function asString (value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined
}
