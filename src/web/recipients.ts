import { parse } from 'csv-parse/sync'
import { ValidationError } from '../errors.ts'
import { normaliseRecipients, parseRecipient, type Recipient } from '../smtp/addresses.ts'

/** Invalid entries the page lists by name; the rest are only counted. */
export const INVALID_SHOWN = 20

/** One entry as the person wrote it, with where it came from (for the list of invalid ones). */
interface Entry {
  value: string | { email: string, name?: string }
  where: string
}

/** What the page shows before sending, and what a campaign is sent to. */
export interface RecipientPreview {
  /** Valid, first of each address (case-insensitive). */
  recipients: Recipient[]
  /** Entries read: valid + invalid + duplicate. */
  total: number
  valid: number
  invalid: number
  duplicates: number
  /** The first invalid entries, e.g. `recipients line 3: "bob@"`. */
  invalidShown: string[]
}

// Header cells that name the address and the display-name columns of a CSV (case-insensitive).
const EMAIL_HEADERS = new Set(['email', 'e-mail', 'email address', 'e-mail address', 'mail', 'address'])
const NAME_HEADERS = new Set(['name', 'full name', 'display name', 'fullname'])
const DELIMITERS = [',', ';', '\t']

/** The first line that is not blank: a CSV header when one of its cells names the address column. */
function csvHeader (text: string): { emailAt: number, nameAt: number, delimiter: string } | undefined {
  const first = text.split(/\r?\n/, 50).find((line) => line.trim() !== '')
  if (first === undefined) return undefined
  for (const delimiter of DELIMITERS) {
    if (!first.includes(delimiter)) continue
    const cells = first.replace(/^\uFEFF/, '').split(delimiter).map((c) => c.trim().replace(/^"|"$/g, '').toLowerCase())
    const emailAt = cells.findIndex((c) => EMAIL_HEADERS.has(c))
    if (emailAt !== -1) return { emailAt, nameAt: cells.findIndex((c) => NAME_HEADERS.has(c)), delimiter }
  }
  const single = first.replace(/^\uFEFF/, '').trim().replace(/^"|"$/g, '').toLowerCase()
  return EMAIL_HEADERS.has(single) ? { emailAt: 0, nameAt: -1, delimiter: ',' } : undefined
}

/**
 * The entries of a pasted list or an uploaded file: a CSV whose header has an `email` column (and
 * optionally `name`; `,`, `;` or tab separated, quoted fields allowed), or else one entry per line
 * (`a@x.org` or `Name <a@x.org>`). Blank lines and lines starting with `#` are skipped.
 */
function entriesOf (text: string, source: string, field: string): Entry[] {
  const header = csvHeader(text)
  if (header === undefined) {
    const entries: Entry[] = []
    text.replace(/^\uFEFF/, '').split(/\r?\n/).forEach((line, i) => {
      const value = line.trim()
      if (value !== '' && !value.startsWith('#')) entries.push({ value, where: `${source} line ${i + 1}` })
    })
    return entries
  }
  let rows: Array<{ record: string[], info: { lines: number } }>
  try {
    rows = parse(text, {
      bom: true,
      delimiter: header.delimiter,
      from_line: 2,
      info: true,
      relax_column_count: true,
      relax_quotes: true,
      skip_empty_lines: true,
      skip_records_with_empty_values: true,
      trim: true,
    }) as unknown as typeof rows
  } catch (err) {
    // csv-parse names the line: "Invalid Closing Quote: … at line 7".
    throw new ValidationError(field, `${source} is not valid CSV: ${(err as Error).message}`)
  }
  return rows.map(({ record, info }) => {
    const email = record[header.emailAt] ?? ''
    const name = header.nameAt === -1 ? '' : record[header.nameAt] ?? ''
    return { value: name === '' ? { email } : { email, name }, where: `${source} line ${info.lines}` }
  })
}

/** Reads the pasted list and the imported file, checks every entry, drops repeated addresses. */
export function previewRecipients (pasted: string, file?: { name: string, text: string }): RecipientPreview {
  const entries = entriesOf(pasted, 'recipients', 'recipients')
  if (file !== undefined) entries.push(...entriesOf(file.text, file.name === '' ? 'file' : file.name, 'file'))
  const list = normaliseRecipients(entries.map((e) => e.value))
  const invalidShown: string[] = []
  for (const entry of entries) {
    if (invalidShown.length >= INVALID_SHOWN || invalidShown.length >= list.invalid.length) break
    if (parseRecipient(entry.value) !== undefined) continue
    const shown = typeof entry.value === 'string' ? entry.value : entry.value.email
    invalidShown.push(`${entry.where}: ${JSON.stringify(shown)}`)
  }
  return {
    recipients: list.recipients,
    total: entries.length,
    valid: list.recipients.length,
    invalid: list.invalid.length,
    duplicates: list.duplicates,
    invalidShown,
  }
}
