// The job message built once and filled per recipient (issue 14, src/smtp/mime-template.ts),
// checked against nodemailer's own composer for the same input: byte for byte (boundary and Date
// aside) when the input has CRLF line ends, and through an independent parser (mailparser) for
// the LF input a job really has: same headers, same decoded text and html, same subject. DKIM
// still signs every message (mailauth verifies it), sent as `raw` through the pooled mailer.
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser'
import { dkimVerify } from 'mailauth'
import nodemailer, { type SendMailOptions } from 'nodemailer'
import { fill, type Recipient } from '../src/smtp/addresses.ts'
import { createMailer } from '../src/smtp/mailer.ts'
import { fillPieces, parsePieces } from '../src/smtp/mime-text.ts'
import { compileMessage, type MessageContent } from '../src/smtp/mime-template.ts'
import { startSmtpServer } from './helpers/smtp-server.ts'

const UNSUBSCRIBE = 'https://example.org/unsubscribe?e={{email}}&job={{job}}'
const composer = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'windows' })

async function composed (options: SendMailOptions): Promise<Buffer> {
  return (await composer.sendMail(options)).message as Buffer
}

const crlf = (s: string | undefined): string | undefined => s?.replace(/\r\n|\r|\n/g, '\r\n')
/** The boundary and the Date are drawn per message; everything else must match. */
const normalise = (raw: Buffer): string => raw.toString('utf8')
  .replace(/^Date: .*$/m, 'Date: (now)')
  .replace(/--_NmP-[0-9a-f]+-Part_1|--_rt-[0-9a-f]+-Part_1/g, '(boundary)')

const CONTENTS: MessageContent[] = [
  {
    from: 'Shop <news@shop.example>',
    subject: 'A recommendation for {{name}}',
    text: 'Hello {{name}},\n\nwe think you will like this. Sent to {{email}}.\n',
    html: '<p>Hello {{name}},</p><p>we think you will like this. Sent to {{email}}.</p>',
  },
  {
    from: 'news@shop.example',
    subject: 'Grüße, {{ name | Freund }} — a subject long enough to be folded over two lines or more',
    text: `${'x'.repeat(200)}\n{{name}} has an ümlaut line ${'y '.repeat(60)}\n.a dot starts this line\nlast line, no newline`,
  },
  {
    from: '"Shop, Inc." <news@shop.example>',
    subject: 'No placeholder here',
    html: `<h1>Hi {{name|there}}</h1><p>A long paragraph ${'word '.repeat(40)}</p><a href="https://x.org/?e={{email}}">link</a>`,
  },
  { from: 'a@b.example', subject: 'Привет, {{name}}', text: 'Привет, {{name}}! Это письмо для {{email}}.\r\nВторая строка.' },
  { from: 'a@b.example', subject: '{{name}}', text: 'fixed text\nwithout any placeholder\n', html: '<b>fixed</b>\n' },
]
const PEOPLE: Recipient[] = [
  { email: 'reader1@list.example', name: 'Reader 1' },
  { email: 'B.c@Example.ORG', name: 'Jürgen Ärger, Jr.' },
  { email: 'd@e.example' },
  { email: 'q@w.example', name: 'Иван Петров' },
  { email: 'o@p.example', name: '<b>&"quoted"</b>' },
]

describe('one message per job, filled per recipient', () => {
  test('byte for byte what nodemailer composes for the same input (CRLF line ends), with and without List-Unsubscribe', async () => {
    let compared = 0
    for (const content of CONTENTS) {
      for (const unsubscribeUrl of [undefined, UNSUBSCRIBE]) {
        const template = compileMessage(content, { jobId: 'job-7', ...(unsubscribeUrl === undefined ? {} : { unsubscribeUrl }) })
        for (const [index, r] of PEOPLE.entries()) {
          const options = template.options(index, r)
          const reference = await composed({ ...options, text: crlf(options.text as string), ...(options.html === undefined ? {} : { html: crlf(options.html as string) }) })
          assert.equal(normalise(template.render(index, r).raw), normalise(reference), `${content.subject} / ${r.email}`)
          compared++
        }
      }
    }
    assert.equal(compared, CONTENTS.length * 2 * PEOPLE.length)
  })

  test('random texts, names and subjects: byte for byte what nodemailer composes', async () => {
    const textArb = fc.array(fc.oneof(
      fc.string({ maxLength: 90 }),
      fc.constantFrom('{{name}}', '{{email}}', '{{name|there}}', '\n', '\r\n', ' \n', '=', '.', 'ü', '€', 'Привет', '\t', 'x'.repeat(80)),
    ), { maxLength: 12 }).map((a) => a.join(''))
    const subjectArb = fc.array(fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('{{name}}', 'ü', '=?', '"', ' ', 'x'.repeat(70))), { maxLength: 5 })
      .map((a) => a.join('').replace(/[\r\n]/g, ''))
    await fc.assert(fc.asyncProperty(textArb, textArb, fc.string({ maxLength: 30 }), fc.boolean(), subjectArb, async (text, html, name, withHtml, subject) => {
      const content: MessageContent = { from: 'Shop <news@shop.example>', subject: `S {{name}} ${subject}`, text, ...(withHtml ? { html } : {}) }
      const r: Recipient = name.trim() === '' ? { email: 'a@x.example' } : { email: 'a@x.example', name: name.trim() }
      const template = compileMessage(content, { jobId: 'j' })
      const options = template.options(3, r)
      const reference = await composed({ ...options, text: crlf(options.text as string), ...(options.html === undefined ? {} : { html: crlf(options.html as string) }) })
      assert.equal(normalise(template.render(3, r).raw), normalise(reference))
    }), { numRuns: 300 })
  })

  test('mailparser reads the same headers, subject, text and html as from nodemailer composing the job\'s own (LF) input', async () => {
    const addresses = (a: AddressObject | AddressObject[] | undefined): unknown => [a ?? []].flat().flatMap((o) => o.value.map((v) => ({ address: v.address, name: v.name })))
    const view = (m: ParsedMail): Record<string, unknown> => ({
      subject: m.subject,
      from: addresses(m.from),
      to: addresses(m.to),
      messageId: m.messageId,
      text: m.text?.replace(/\r\n/g, '\n'),
      html: m.html === false || m.html === undefined ? undefined : m.html.replace(/\r\n/g, '\n'),
      listUnsubscribe: m.headers.get('list-unsubscribe'),
      listUnsubscribePost: m.headers.get('list-unsubscribe-post'),
      mimeVersion: m.headers.get('mime-version'),
      contentType: (m.headers.get('content-type') as { value?: string } | undefined)?.value,
      date: m.date !== undefined,
    })
    for (const content of CONTENTS) {
      const template = compileMessage(content, { jobId: 'job-7', unsubscribeUrl: UNSUBSCRIBE })
      for (const [index, r] of PEOPLE.entries()) {
        const ours = view(await simpleParser(template.render(index, r).raw))
        const theirs = view(await simpleParser(await composed(template.options(index, r))))
        assert.deepEqual(ours, theirs, `${content.subject} / ${r.email}`)
        assert.equal(ours.subject ?? '', fill(content.subject, r).trim())
      }
    }
  })

  test('the parts are filled as fill() fills them, in text and (HTML-escaped) in html', () => {
    fc.assert(fc.property(fc.string({ maxLength: 60 }), fc.option(fc.string({ maxLength: 12 }), { nil: undefined }), fc.boolean(), (template, name, html) => {
      const r: Recipient = name === undefined ? { email: 'a@x.example' } : { email: 'a@x.example', name }
      const withPlaceholders = `${template}{{name}}{{ email }}{{name | fb }}${template}`
      assert.equal(fillPieces(parsePieces(withPlaceholders), r, html), fill(withPlaceholders, r, html))
    }), { numRuns: 500 })
  })

  test('html only: the text part is derived once, placeholders filled per recipient, none left in it', async () => {
    const template = compileMessage({ from: 'a@b.example', subject: 's', html: '<h1>Hi {{name|there}}</h1><p>Mail for {{email}}</p>' }, { jobId: 'j' })
    const one = await simpleParser(template.render(0, { email: 'x@y.example', name: 'Jürgen' }).raw)
    const two = await simpleParser(template.render(1, { email: 'z@y.example' }).raw)
    assert.match(one.text ?? '', /Jürgen/)
    assert.match(one.text ?? '', /x@y\.example/)
    assert.match(two.text ?? '', /there/)
    assert.doesNotMatch(`${one.text ?? ''}${two.text ?? ''}`, /\{\{|\uE000|<h1>/)
    // html holding the private-use token characters: derived per message instead
    const odd = compileMessage({ from: 'a@b.example', subject: 's', html: '<p>\uE000 {{name}}</p>' }, { jobId: 'j' })
    assert.match((await simpleParser(odd.render(0, { email: 'x@y.example', name: 'Ann' }).raw)).text ?? '', /Ann/)
  })

  test('Message-ID is <jobId.index@from-domain>, one per message; the envelope names the recipient alone', () => {
    const template = compileMessage(CONTENTS[0] as MessageContent, { jobId: 'job-7' })
    const m = template.render(41, { email: 'r@list.example', name: 'R' })
    assert.equal(m.messageId, '<job-7.41@shop.example>')
    assert.deepEqual(m.envelope, { from: 'news@shop.example', to: ['r@list.example'] })
    assert.equal(m.raw.toString().match(/^Message-ID: /gm)?.length, 1)
  })
})

describe('raw messages through the pooled mailer', () => {
  test('a DKIM key that is not a PEM private key fails when the mailer is created', () => {
    assert.throws(() => createMailer({ url: 'smtp://127.0.0.1:1', dkim: { domainName: 'shop.example', keySelector: 's1', privateKey: 'not a key' } }),
      { code: 'RT_ERR_CONFIG', message: /DKIM private key of shop\.example is not a PEM private key/ })
  })

  test('DKIM signs every raw message: mailauth verifies each; one Message-ID, one signature', async (t) => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const record = `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`
    const sink = await startSmtpServer()
    t.after(() => sink.close())
    const mailer = createMailer({ url: sink.url, dkim: { domainName: 'shop.example', keySelector: 's1', privateKey: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString() } })
    t.after(() => mailer.close())
    const template = compileMessage(CONTENTS[1] as MessageContent, { jobId: 'job-d', unsubscribeUrl: UNSUBSCRIBE })
    await Promise.all(PEOPLE.map((r, i) => mailer.send(template.render(i, r))))
    assert.equal(sink.delivered.length, PEOPLE.length)
    const resolver = async (name: string, rrtype: string): Promise<string[][]> => {
      if (rrtype === 'TXT' && name === 's1._domainkey.shop.example') return [[record]]
      throw Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: 'ENOTFOUND' })
    }
    for (const { raw } of sink.delivered) {
      const text = raw.toString()
      assert.equal(text.match(/^Message-ID: /gim)?.length, 1)
      assert.equal(text.match(/^DKIM-Signature: /gim)?.length, 1)
      const { results } = await dkimVerify(raw, { resolver })
      assert.equal(results[0]?.status.result, 'pass', JSON.stringify(results[0]?.status))
    }
  })
})
