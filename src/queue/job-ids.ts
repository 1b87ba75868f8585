import { randomFillSync } from 'node:crypto'

/** Random hex digits drawn per refill: one syscall and one conversion for 256 ids. */
const POOL_BYTES = 8 * 256
const pool = Buffer.alloc(POOL_BYTES)
let hex = ''
let hexOffset = POOL_BYTES * 2
let lastMs = 0
let lastTime = ''
let sequence = 0

/** 16 random hex digits. */
function random16 (): string {
  if (hexOffset === POOL_BYTES * 2) {
    hex = randomFillSync(pool).toString('hex')
    hexOffset = 0
  }
  hexOffset += 16
  return hex.slice(hexOffset - 16, hexOffset)
}

const VARIANT = '89ab'

/**
 * A new job id: a UUIDv7 (RFC 9562 §5.7) — 48 bits of Unix milliseconds, a 12-bit sequence that
 * keeps ids of one millisecond in order, 62 random bits. Ids that grow with time are appended to
 * the right edge of the store's id index; random UUIDs touched a random page per insert, and
 * measured 40–55 µs per job against 13–14 µs in a 64-job commit.
 */
export function timeOrderedId (): string {
  const ms = Date.now()
  if (ms > lastMs) {
    lastMs = ms
    sequence = 0
  } else if (++sequence > 0xfff) {
    lastMs++ // more than 4,096 ids in one millisecond: borrow the next one
    sequence = 0
  }
  if (sequence === 0) { // a new millisecond (or a borrowed one)
    const time = lastMs.toString(16).padStart(12, '0')
    lastTime = `${time.slice(0, 8)}-${time.slice(8)}-7`
  }
  const r = random16()
  const seq = sequence < 0x10 ? `00${sequence.toString(16)}` : sequence < 0x100 ? `0${sequence.toString(16)}` : sequence.toString(16)
  // The variant's two top bits are 10: one of 8, 9, a, b, picked by a random digit.
  return `${lastTime}${seq}-${VARIANT[parseInt(r[0] as string, 16) & 3] as string}${r.slice(1, 4)}-${r.slice(4)}`
}
