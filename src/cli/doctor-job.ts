import { ValidationError } from '../errors.ts'
import type { JobHandler, ParsedJob } from '../queue/handler.ts'

/** The job type `rawtrigger doctor` fires: `POST /jobs/doctor`. */
export const DOCTOR_JOB_TYPE = 'doctor'

/** What a doctor job carries: which run and which hang-up shape sent it. Nothing else. */
export interface DoctorPayload {
  run: string
  shape: string
}

const FIELD_RE = /^[A-Za-z0-9_-]{1,64}$/

function field (o: Record<string, unknown>, name: string): string {
  const v = o[name]
  if (typeof v !== 'string' || !FIELD_RE.test(v)) throw new ValidationError(name, 'must be 1-64 letters, digits, _ or -')
  return v
}

/**
 * A job that does nothing: `rawtrigger doctor` needs triggers that become real, stored jobs (so
 * `GET /jobs/:id` shows which arrived) without sending mail or touching anything. Registered by
 * `serve` beside `email`; its jobs end `done` at once and go with retention like any other.
 */
export const doctorJob: JobHandler<DoctorPayload> = {
  maxBodyBytes: 1_024,
  parse (body: unknown): ParsedJob<DoctorPayload> {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ValidationError('body', 'must be a JSON object')
    const o = body as Record<string, unknown>
    return { payload: { run: field(o, 'run'), shape: field(o, 'shape') }, items: 0 }
  },
  async run (): Promise<void> {},
}
