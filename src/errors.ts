/**
 * Every error rawtrigger throws is a {@link TriggerError} with a stable `code`.
 * Match on `err.code`, never on the message. Operating-system errors
 * (ECONNREFUSED, ENOTFOUND, ECONNRESET, …) are never renamed: they stay on `err.cause`.
 */

/** Base class of every rawtrigger error. */
export class TriggerError extends Error {
  /** Stable machine-readable code, `RT_ERR_*`. */
  readonly code: string = 'RT_ERR_TRIGGER'
  override name = 'TriggerError'
}

// ── Invalid input: thrown before any connection is opened ─────────────────────

/** The URL cannot be parsed, is not http(s), or carries credentials. */
export class InvalidUrlError extends TriggerError {
  override readonly code = 'RT_ERR_INVALID_URL'
  override name = 'InvalidUrlError'
}

/** The method is not an RFC 9110 token. */
export class InvalidMethodError extends TriggerError {
  override readonly code = 'RT_ERR_INVALID_METHOD'
  override name = 'InvalidMethodError'
}

/** A header name is not an RFC 9110 token. */
export class InvalidHeaderNameError extends TriggerError {
  override readonly code = 'RT_ERR_INVALID_HEADER_NAME'
  override name = 'InvalidHeaderNameError'
}

/** A header value holds CR, LF, NUL, another control character or a character above U+00FF. */
export class InvalidHeaderValueError extends TriggerError {
  override readonly code = 'RT_ERR_INVALID_HEADER_VALUE'
  override name = 'InvalidHeaderValueError'
}

/** The caller set a header that framing depends on: Content-Length, Host, Transfer-Encoding, Connection. */
export class ForbiddenHeaderError extends TriggerError {
  override readonly code = 'RT_ERR_FORBIDDEN_HEADER'
  override name = 'ForbiddenHeaderError'
}

/** The body is not a string, a Uint8Array or a JSON-serialisable plain object or array. */
export class InvalidBodyError extends TriggerError {
  override readonly code = 'RT_ERR_INVALID_BODY'
  override name = 'InvalidBodyError'
}

/** An option has the wrong type or is out of range; the message names the option and the rule. */
export class InvalidOptionError extends TriggerError {
  override readonly code = 'RT_ERR_INVALID_OPTION'
  override name = 'InvalidOptionError'
}

// ── Network: the OS error, when there is one, is on `cause` ───────────────────

/** TCP connect failed: refused, unreachable, DNS failure. `cause.code` is the OS code. */
export class ConnectError extends TriggerError {
  override readonly code = 'RT_ERR_CONNECT'
  override name = 'ConnectError'
}

/** The connection (TCP, and the TLS handshake for https) was not ready within `connectTimeoutMs`. */
export class ConnectTimeoutError extends TriggerError {
  override readonly code = 'RT_ERR_CONNECT_TIMEOUT'
  override name = 'ConnectTimeoutError'
}

/** The TLS handshake failed, e.g. an untrusted certificate. `cause.code` is Node's code. */
export class TlsError extends TriggerError {
  override readonly code = 'RT_ERR_TLS'
  override name = 'TlsError'
}

/** The socket failed while the request was being written (e.g. ECONNRESET, EPIPE on `cause`). */
export class WriteError extends TriggerError {
  override readonly code = 'RT_ERR_WRITE'
  override name = 'WriteError'
}

/** With `ack: true`, no status line arrived within `ackTimeoutMs`. */
export class AckTimeoutError extends TriggerError {
  override readonly code = 'RT_ERR_ACK_TIMEOUT'
  override name = 'AckTimeoutError'
}

/** With `ack: true`, the peer closed before a status line, or sent something that is not one. */
export class AckError extends TriggerError {
  override readonly code = 'RT_ERR_ACK'
  override name = 'AckError'
}

/** The caller's AbortSignal fired; its reason is on `cause`. */
export class AbortError extends TriggerError {
  override readonly code = 'RT_ERR_ABORTED'
  override name = 'AbortError'
}

// ── Signatures (Standard Webhooks) ────────────────────────────────────────────

/** The secret is not `whsec_` + base64 (or plain base64) of at least one byte. */
export class InvalidSecretError extends TriggerError {
  override readonly code = 'RT_ERR_INVALID_SECRET'
  override name = 'InvalidSecretError'
}

/** A `webhook-id`, `webhook-timestamp` or `webhook-signature` header is absent or malformed. */
export class SignatureMissingError extends TriggerError {
  override readonly code = 'RT_ERR_SIGNATURE_MISSING'
  override name = 'SignatureMissingError'
}

/** No signature in `webhook-signature` matches the payload under the secret. */
export class SignatureMismatchError extends TriggerError {
  override readonly code = 'RT_ERR_SIGNATURE_MISMATCH'
  override name = 'SignatureMismatchError'
}

/** `webhook-timestamp` is further than the tolerance (default 5 minutes) from now. */
export class SignatureTimestampError extends TriggerError {
  override readonly code = 'RT_ERR_SIGNATURE_TIMESTAMP'
  override name = 'SignatureTimestampError'
}

// ── The receiver: each maps to an HTTP status in its JSON error body ──────────

/** A request the receiver refuses; `status` is the HTTP status it answers with. */
export class RequestError extends TriggerError {
  override readonly code: string = 'RT_ERR_REQUEST'
  override name = 'RequestError'
  readonly status: number = 400
}

/** The request is malformed HTTP, e.g. no `Host` header in HTTP/1.1 (400). */
export class BadRequestError extends RequestError {
  override readonly code = 'RT_ERR_BAD_REQUEST'
  override name = 'BadRequestError'
}

/** The body is not valid JSON (400). */
export class BadJsonError extends RequestError {
  override readonly code = 'RT_ERR_BAD_JSON'
  override name = 'BadJsonError'
}

/** A `POST /bounces` body is none of the bounce formats (SES via SNS, Postmark, an RFC 3464 DSN) (400). */
export class BadBounceError extends RequestError {
  override readonly code = 'RT_ERR_BAD_BOUNCE'
  override name = 'BadBounceError'
}

/** The payload breaks the job type's schema (400); `field` names the first bad field. */
export class ValidationError extends RequestError {
  override readonly code = 'RT_ERR_VALIDATION'
  override name = 'ValidationError'
  readonly field: string
  /** Extra facts for the client, e.g. the invalid addresses. */
  readonly details: Record<string, unknown> | undefined
  constructor (field: string, message: string, details?: Record<string, unknown>) {
    super(`${field}: ${message}`)
    this.field = field
    this.details = details
  }
}

/** No valid Standard Webhooks signature while a secret is set (401). The cause says why. */
export class UnauthorizedError extends RequestError {
  override readonly code = 'RT_ERR_UNAUTHORIZED'
  override name = 'UnauthorizedError'
  override readonly status = 401
}

/** No secret is set and the peer is not on loopback (403). */
export class ForbiddenError extends RequestError {
  override readonly code = 'RT_ERR_FORBIDDEN'
  override name = 'ForbiddenError'
  override readonly status = 403
}

/** Unknown path, job type or job id (404). */
export class NotFoundError extends RequestError {
  override readonly code = 'RT_ERR_NOT_FOUND'
  override name = 'NotFoundError'
  override readonly status = 404
}

/** The path exists but not for this method (405). */
export class MethodNotAllowedError extends RequestError {
  override readonly code = 'RT_ERR_METHOD_NOT_ALLOWED'
  override name = 'MethodNotAllowedError'
  override readonly status = 405
}

/** The job is in a state that does not allow this: nothing failed to retry, already finished (409). */
export class ConflictError extends RequestError {
  override readonly code = 'RT_ERR_CONFLICT'
  override name = 'ConflictError'
  override readonly status = 409
}

/** The body is larger than the limit (413); answered without reading the rest. */
export class BodyTooLargeError extends RequestError {
  override readonly code = 'RT_ERR_BODY_TOO_LARGE'
  override name = 'BodyTooLargeError'
  override readonly status = 413
}

/** The body is not `application/json` (415). */
export class UnsupportedMediaTypeError extends RequestError {
  override readonly code = 'RT_ERR_UNSUPPORTED_MEDIA_TYPE'
  override name = 'UnsupportedMediaTypeError'
  override readonly status = 415
}

/** The receiver is stopping, or the store cannot write now (503). Retry later. */
export class UnavailableError extends RequestError {
  override readonly code = 'RT_ERR_UNAVAILABLE'
  override name = 'UnavailableError'
  override readonly status = 503
}

/** The request head or the whole request did not arrive within the receiver's limit (408). */
export class RequestTimeoutError extends RequestError {
  override readonly code = 'RT_ERR_REQUEST_TIMEOUT'
  override name = 'RequestTimeoutError'
  override readonly status = 408
}

/** A bug in the receiver (500): the client gets no details, the log has them. */
export class InternalError extends RequestError {
  override readonly code = 'RT_ERR_INTERNAL'
  override name = 'InternalError'
  override readonly status = 500
}

/** The client went away before the whole body arrived: no job, nobody to answer. */
export class IncompleteBodyError extends RequestError {
  override readonly code = 'RT_ERR_INCOMPLETE_BODY'
  override name = 'IncompleteBodyError'
}

/** The job store failed (disk full, database locked, I/O error); the SQLite code is on `cause`. */
export class StoreError extends TriggerError {
  override readonly code = 'RT_ERR_STORE'
  override name = 'StoreError'
}

/** `serve` or `createReceiver` options are unsafe or invalid, e.g. a public bind without a secret. */
export class ConfigError extends TriggerError {
  override readonly code = 'RT_ERR_CONFIG'
  override name = 'ConfigError'
}

// ── The CLI's control commands (`rawtrigger jobs …`, `rawtrigger suppressions …`) ──

/** Options of {@link ControlError}: the server's answer, when there was one. */
export interface ControlErrorOptions extends ErrorOptions {
  /** The HTTP status the server answered with. */
  status?: number
  /** The `error.code` of the server's JSON answer, e.g. `RT_ERR_NOT_FOUND`. */
  serverCode?: string
}

/**
 * A control request to a running receiver failed: the server refused it (`status`, `serverCode`,
 * its message in `message`), or it could not be reached (the connection error on `cause`).
 */
export class ControlError extends TriggerError {
  override readonly code = 'RT_ERR_CONTROL'
  override name = 'ControlError'
  /** The HTTP status of the refusal; undefined when no answer came. */
  readonly status: number | undefined
  /** The server's error code; undefined when no answer came or it carried none. */
  readonly serverCode: string | undefined
  constructor (message?: string, options: ControlErrorOptions = {}) {
    const { status, serverCode, ...errorOptions } = options
    super(message, errorOptions)
    this.status = status
    this.serverCode = serverCode
  }
}
