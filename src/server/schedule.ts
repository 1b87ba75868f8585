// `notBefore` in any `POST /jobs/:type` body: taken out here, before the job type's parse, so
// every type can be scheduled without a field in its schema.
import { ValidationError } from '../errors.ts'

/** How far ahead a job may be scheduled: a year (a later time is more likely a typo than a plan). */
export const MAX_SCHEDULE_AHEAD_MS = 366 * 24 * 3600 * 1000

/** The body field, reserved in every job type's body. */
export const NOT_BEFORE_FIELD = 'notBefore'

// RFC 3339 (ISO 8601 profile) date-time with a zone: a time without one means a different
// instant on every server, so it is refused rather than guessed.
const ISO_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/i

/** A job body with its `notBefore` taken out. */
export interface Scheduled {
  /** The body the job type parses: the same object without `notBefore`. */
  body: unknown
  /** Epoch ms; absent when there was none or it had passed (the job runs now). */
  notBefore?: number
}

/**
 * Takes `notBefore` out of a parsed JSON body. Throws a {@link ValidationError} on field
 * `notBefore` for a value that is not an ISO 8601 time with a zone offset or `Z`, or that lies more
 * than {@link MAX_SCHEDULE_AHEAD_MS} ahead. A time in the past is no schedule: the job runs now.
 */
export function takeNotBefore (json: unknown, now = Date.now()): Scheduled {
  if (typeof json !== 'object' || json === null || Array.isArray(json) || !Object.hasOwn(json, NOT_BEFORE_FIELD)) return { body: json }
  const { [NOT_BEFORE_FIELD]: raw, ...body } = json as Record<string, unknown>
  if (raw === null) return { body }
  if (typeof raw !== 'string' || !ISO_TIME_RE.test(raw)) {
    throw new ValidationError(NOT_BEFORE_FIELD, `must be an ISO 8601 time with a zone offset or Z, e.g. 2030-01-31T09:00:00+01:00 (got ${JSON.stringify(raw)?.slice(0, 60)})`)
  }
  const at = Date.parse(raw)
  if (!Number.isFinite(at)) throw new ValidationError(NOT_BEFORE_FIELD, `is not a valid time (got ${JSON.stringify(raw)})`)
  if (at - now > MAX_SCHEDULE_AHEAD_MS) {
    throw new ValidationError(NOT_BEFORE_FIELD, `must be at most ${MAX_SCHEDULE_AHEAD_MS / (24 * 3600 * 1000)} days ahead (got ${raw})`)
  }
  return at > now ? { body, notBefore: at } : { body }
}
