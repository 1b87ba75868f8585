// The little MIME a DSN needs (issue 14), without a parser dependency: header blocks (RFC 5322
// §2.2, unfolding §2.2.3), Content-Type parameters (RFC 2045 §5.1), multipart bodies (RFC 2046
// §5.1.1) and the two transfer encodings a report part may carry (RFC 2045 §6.7, §6.8).
// Line ends are normalised to LF first: messages arrive with CRLF from an MTA, LF from a file.

/** One header field: the name lower-cased, the value unfolded and trimmed. */
export type HeaderField = [name: string, value: string]

/** A Content-Type: the media type lower-cased, its parameters by lower-cased name. */
export interface ContentType {
  type: string
  params: Map<string, string>
}

/** Nesting depth of multiparts looked into: a report forwarded inside a message inside a message. */
const MAX_DEPTH = 5

/** `text` with CRLF and bare CR turned into LF. */
export function normaliseLineEnds (text: string): string {
  return text.replace(/\r\n?/g, '\n')
}

/** The fields of a header block (LF line ends); a line that is not `name: value` is skipped. */
export function parseHeaderBlock (block: string): HeaderField[] {
  const fields: HeaderField[] = []
  for (const line of block.replace(/\n[ \t]+/g, ' ').split('\n')) {
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    const name = line.slice(0, colon).trim().toLowerCase()
    if (!/^[!-9;-~]+$/.test(name)) continue // RFC 5322 §3.6.8 field name: printable, no colon
    fields.push([name, line.slice(colon + 1).trim()])
  }
  return fields
}

/** The first field `name` (lower-case) of `fields`. */
export function fieldOf (fields: readonly HeaderField[], name: string): string | undefined {
  return fields.find(([n]) => n === name)?.[1]
}

/** A message (LF line ends) split at its first empty line: header fields and body. */
export function splitMessage (text: string): { headers: HeaderField[], body: string } {
  const end = text.startsWith('\n') ? 0 : text.indexOf('\n\n')
  if (end === -1) return { headers: parseHeaderBlock(text), body: '' }
  return { headers: parseHeaderBlock(text.slice(0, end)), body: text.slice(end + (end === 0 ? 1 : 2)) }
}

/** Parses `type/subtype; name=value; name="quoted \" value"`; comments are not expected here. */
export function parseContentType (value: string): ContentType {
  const semi = value.indexOf(';')
  const type = (semi === -1 ? value : value.slice(0, semi)).trim().toLowerCase()
  const params = new Map<string, string>()
  const re = /;\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;]*))/g
  const rest = semi === -1 ? '' : value.slice(semi)
  for (const m of rest.matchAll(re)) {
    const name = (m[1] as string).toLowerCase()
    if (!params.has(name)) params.set(name, m[2] === undefined ? m[3] ?? '' : m[2].replace(/\\(.)/g, '$1'))
  }
  return { type, params }
}

/**
 * The body parts of a multipart body (LF line ends): what lies between `--boundary` delimiter lines,
 * up to `--boundary--`; the preamble and epilogue are dropped. The line end before a delimiter is
 * part of the delimiter (RFC 2046 §5.1.1); trailing white space on a delimiter line is padding.
 */
export function multipartParts (body: string, boundary: string): string[] {
  const parts: string[] = []
  let current: string[] | undefined
  for (const line of body.split('\n')) {
    if (line.startsWith('--') && line.slice(2, 2 + boundary.length) === boundary) {
      const after = line.slice(2 + boundary.length)
      if (/^[ \t]*$/.test(after)) {
        if (current !== undefined) parts.push(current.join('\n'))
        current = []
        continue
      }
      if (/^--[ \t]*$/.test(after)) {
        if (current !== undefined) parts.push(current.join('\n'))
        return parts
      }
    }
    current?.push(line)
  }
  // No closing delimiter (a truncated message): keep the last part as it is.
  if (current !== undefined) parts.push(current.join('\n'))
  return parts
}

/** A body decoded from its Content-Transfer-Encoding; 7bit, 8bit, binary and unknown ones as they are. */
export function decodeTransfer (body: string, encoding: string | undefined): string {
  const cte = (encoding ?? '7bit').trim().toLowerCase()
  if (cte === 'base64') return Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64').toString('utf8')
  if (cte === 'quoted-printable') {
    const bytes = Buffer.from(body.replace(/[ \t]+$/gm, '').replace(/=\n/g, ''), 'latin1')
    const out: number[] = []
    for (let i = 0; i < bytes.length; i++) {
      const byte = bytes[i] as number
      const hex = byte === 0x3d ? bytes.subarray(i + 1, i + 3).toString('latin1') : ''
      if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
        out.push(parseInt(hex, 16))
        i += 2
      } else {
        out.push(byte)
      }
    }
    return Buffer.from(out).toString('utf8')
  }
  return body
}

/** What {@link findPart} saw of the outermost entity, for an error message. */
export interface FoundPart {
  /** The decoded body of the first part whose type is one of the wanted ones; undefined when none is. */
  body: string | undefined
  /** The outermost Content-Type seen (its type and `report-type`), e.g. `multipart/report; report-type=feedback-report`. */
  outer: string
}

/**
 * Looks through an entity (its Content-Type and body, LF line ends) and its nested multiparts and
 * `message/rfc822` parts for the first part of one of `types`.
 */
export function findPart (contentType: string | undefined, body: string, types: ReadonlySet<string>): FoundPart {
  const top = parseContentType(contentType ?? 'text/plain')
  const reportType = top.params.get('report-type')
  const outer = reportType === undefined ? top.type : `${top.type}; report-type=${reportType}`
  return { body: search(top, body, types, 0), outer }
}

function search (ct: ContentType, body: string, types: ReadonlySet<string>, depth: number): string | undefined {
  if (types.has(ct.type)) return body
  if (depth >= MAX_DEPTH) return undefined
  if (ct.type === 'message/rfc822') {
    const inner = splitMessage(body)
    const innerType = parseContentType(fieldOf(inner.headers, 'content-type') ?? 'text/plain')
    return search(innerType, decodeTransfer(inner.body, fieldOf(inner.headers, 'content-transfer-encoding')), types, depth + 1)
  }
  const boundary = ct.params.get('boundary')
  if (!ct.type.startsWith('multipart/') || boundary === undefined || boundary === '') return undefined
  for (const part of multipartParts(body, boundary)) {
    const { headers, body: partBody } = splitMessage(part)
    const partType = parseContentType(fieldOf(headers, 'content-type') ?? 'text/plain')
    // A multipart's own body is never transfer-encoded (RFC 2045 §6.4); leaf parts may be.
    const decoded = partType.type.startsWith('multipart/') ? partBody : decodeTransfer(partBody, fieldOf(headers, 'content-transfer-encoding'))
    const found = search(partType, decoded, types, depth + 1)
    if (found !== undefined) return found
  }
  return undefined
}
