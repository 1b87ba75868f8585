// `rawtrigger/client`: the trigger client alone (trigger, buildRequest, fireMany, the pool,
// signatures, errors). Loads node:net and these files, nothing else; node:tls with the first https://
// trigger, node:crypto with the first signature (src/lazy-require.ts).
export * from './errors.ts'
export { buildRequest, USER_AGENT } from './net/request-bytes.ts'
export type { Body, HeaderInput, RequestOptions } from './net/request-bytes.ts'
export { trigger, ACK_TIMEOUT_MS } from './net/trigger.ts'
export type { TriggerOptions, TriggerResult } from './net/trigger.ts'
export { CONNECT_TIMEOUT_MS } from './net/connect.ts'
export type { TlsOptions } from './net/connect.ts'
export { fireMany, FIRE_MANY_CONCURRENCY } from './net/fire-many.ts'
export { createTriggerPool, POOL_CONNECTIONS } from './net/trigger-pool.ts'
export type { TriggerPool, TriggerPoolOptions, TriggerPoolStats } from './net/trigger-pool.ts'
export type { FireManyError, FireManyOptions, FireManySummary } from './net/fire-many.ts'
export { generateSecret, sign, verify, TIMESTAMP_TOLERANCE_S } from './net/sign.ts'
export type { HeaderSource, Secret, SignOptions, VerifiedMessage, VerifyOptions, WebhookHeaders } from './net/sign.ts'
