// The two paths bench-email measures serve against, in this process: raw nodemailer pooled
// sendMail (the same connections serve's mailer uses) and the seed app's naive loop; and the
// message both build per recipient, as rawtrigger fills its template.
import nodemailer, { type SendMailOptions } from 'nodemailer'
import type { Sink } from '../../src/smtp/sink.ts'
import { phase } from '../kit/progress.ts'

/** createMailer's defaults. */
export const POOL = { maxConnections: 5, maxMessages: 100 }

export const FROM = 'Shop <news@shop.example>'
export const SUBJECT = 'A recommendation for {{name}}'
export const TEXT = 'Hello {{name}},\n\nwe think you will like this. Sent to {{email}}.\n'
export const HTML = '<p>Hello {{name}},</p><p>we think you will like this. Sent to {{email}}.</p>'

export interface Person { email: string, name: string }
export function people (n: number, tag: string): Person[] {
  return Array.from({ length: n }, (_, i) => ({ email: `${tag}${i}@list.example`, name: `Reader ${i}` }))
}

/** What rawtrigger sends to one recipient, built the same way, for the raw and naive runs. */
function message (p: Person, jobId: string, index: number): SendMailOptions {
  const fill = (s: string, html = false): string => s.replace(/\{\{(name|email)\}\}/g, (_, k: string) => {
    const v = k === 'name' ? p.name : p.email
    return html ? v.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`) : v
  })
  return { from: FROM, to: { name: p.name, address: p.email }, subject: fill(SUBJECT), text: fill(TEXT), html: fill(HTML, true), messageId: `<${jobId}.${index}@shop.example>` }
}

export async function measureRaw (sink: Sink, n: number, tag: string): Promise<number> {
  const p = phase(`raw nodemailer pool, ${n.toLocaleString('en')} mails`)
  const transport = nodemailer.createTransport({ url: sink.url, pool: true, ...POOL })
  const recipients = people(n, tag)
  let done = 0
  const t0 = performance.now()
  await Promise.all(recipients.map(async (r, i) => {
    await transport.sendMail(message(r, `raw-${tag}`, i))
    if (++done % 250 === 0) p.onProgress(done, n)
  }))
  const seconds = (performance.now() - t0) / 1000
  transport.close()
  p.done(`${Math.round(n / seconds)} mails/s`)
  return seconds
}

export async function measureNaive (sink: Sink, n: number): Promise<number> {
  const p = phase(`naive loop (new connection per mail, sequential), ${n} mails`)
  const recipients = people(n, 'naive')
  const t0 = performance.now()
  for (const [i, r] of recipients.entries()) {
    const transport = nodemailer.createTransport({ url: sink.url })
    await transport.sendMail(message(r, 'naive', i))
    transport.close()
    p.onProgress(i + 1, n)
  }
  const seconds = (performance.now() - t0) / 1000
  p.done(`${(n / seconds).toFixed(1)} mails/s`)
  return seconds
}
