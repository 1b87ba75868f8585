// Today's src/smtp/addresses.ts, copied verbatim (only this comment added): the reference the fast
// intake path is checked against in test/addresses-property.test.ts. Do not edit to match changes.
import addressparser from 'nodemailer/lib/addressparser'

/** One recipient after intake: a checked address and an optional display name. */
export interface Recipient {
  email: string
  name?: string
}

/** What {@link normaliseRecipients} found. */
export interface RecipientList {
  recipients: Recipient[]
  /** Entries that are not an address, as given (all of them). */
  invalid: string[]
  /** Entries dropped because the same address (case-insensitive) came earlier. */
  duplicates: number
}

// A pragmatic check, not RFC 5322's full grammar: a dot-atom local part (≤ 64) and a host name with
// at least one dot (≤ 253); no quoted local parts, no IP literals. What bulk mail needs.
const LOCAL_RE = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/
const LABEL_RE = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/

/** True when `email` is an address rawtrigger will send to. */
export function isValidEmail (email: string): boolean {
  if (email.length > 254) return false
  const at = email.lastIndexOf('@')
  if (at <= 0 || at > 64) return false
  const local = email.slice(0, at)
  const domain = email.slice(at + 1)
  if (!LOCAL_RE.test(local) || domain.length > 253) return false
  const labels = domain.split('.')
  return labels.length >= 2 && labels.every((l) => LABEL_RE.test(l)) && !/^\d+$/.test(labels[labels.length - 1] as string)
}

/**
 * Parses one entry: `a@x.org`, `Name <a@x.org>`, or `{ email, name? }`.
 * Returns undefined when it is not exactly one valid address.
 */
export function parseRecipient (entry: unknown): Recipient | undefined {
  if (typeof entry === 'object' && entry !== null && !Array.isArray(entry)) {
    const { email, name } = entry as { email?: unknown, name?: unknown }
    if (typeof email !== 'string' || (name !== undefined && name !== null && typeof name !== 'string')) return undefined
    const address = email.trim()
    if (!isValidEmail(address)) return undefined
    const display = typeof name === 'string' ? name.trim() : ''
    return display === '' ? { email: address } : { email: address, name: display }
  }
  if (typeof entry !== 'string') return undefined
  const text = entry.trim()
  if (!text.includes('<')) return isValidEmail(text) ? { email: text } : undefined
  const parsed = addressparser(text)
  if (parsed.length !== 1) return undefined
  const one = parsed[0] as { address?: string, name?: string, group?: unknown }
  if (one.group !== undefined || typeof one.address !== 'string' || !isValidEmail(one.address)) return undefined
  return one.name === undefined || one.name === '' ? { email: one.address } : { email: one.address, name: one.name }
}

/** Checks every entry, keeps the first of each address (case-insensitive), reports the rest. */
export function normaliseRecipients (entries: readonly unknown[]): RecipientList {
  const seen = new Set<string>()
  const recipients: Recipient[] = []
  const invalid: string[] = []
  let duplicates = 0
  for (const entry of entries) {
    const r = parseRecipient(entry)
    if (r === undefined) {
      invalid.push(typeof entry === 'string' ? entry : JSON.stringify(entry) ?? String(entry))
      continue
    }
    const key = r.email.toLowerCase()
    if (seen.has(key)) {
      duplicates++
      continue
    }
    seen.add(key)
    recipients.push(r)
  }
  return { recipients, invalid, duplicates }
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

/** Fills `{{name}}` and `{{email}}`; with `html`, the values are HTML-escaped. */
export function fill (template: string, r: Recipient, html = false): string {
  return template.replace(/\{\{\s*(name|email)\s*\}\}/g, (_, key: string) => {
    const value = key === 'name' ? r.name ?? '' : r.email
    return html ? value.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] as string) : value
  })
}
