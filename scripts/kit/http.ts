// GETs of the JSON and text views the scripts read from a server (/stats, /jobs/:id, /mailbox,
// /metrics), each bounded by a timeout; and the wait until a freshly started server answers.
import { until } from './scope.ts'

const GET_TIMEOUT_MS = 10_000 // one GET on loopback; a guard
const READY_TIMEOUT_MS = 10_000 // a 200 after the listening line (serve on Redis connects first)

async function get (url: string): Promise<Response> {
  const res = await fetch(url, { signal: AbortSignal.timeout(GET_TIMEOUT_MS) })
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`)
  return res
}

/** The JSON of a GET that must answer 200. */
export async function getJson<T = Record<string, unknown>> (url: string): Promise<T> {
  return await (await get(url)).json() as T
}

/** The text of a GET that must answer 200. */
export async function getText (url: string): Promise<string> {
  return await (await get(url)).text()
}

/** Waits until `url` answers 200; throws after 10 s, with `why` (the child's stderr, say). */
export async function waitUp (url: string, why = ''): Promise<void> {
  if (!await until(() => get(url).then(() => true), READY_TIMEOUT_MS, 50)) {
    throw new Error(`${url} did not answer 200 within ${READY_TIMEOUT_MS} ms\n${why}`)
  }
}
