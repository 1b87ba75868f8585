// The limits both stores' control views share (SQLite: sqlite-control.ts, Redis: redis-control.ts).

/** Jobs per page of `GET /jobs` by default, and at most. */
export const LIST_LIMIT = 50
export const LIST_LIMIT_MAX = 500
/** Finished jobs deleted per retention step: small, so intake never waits long for the lock. */
export const PURGE_BATCH = 50
