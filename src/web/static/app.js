// The campaign page: preview counts, send, live progress (polling GET /campaigns/:id), caught e-mails.
// Plain browser JavaScript, served as is; every value from the server goes in through textContent.
// The jobs view is jobs.js: a sent campaign is announced to it (`campaign:sent`), and it announces a
// retry or cancel (`job:changed`).
import { api, el, plural } from './dom.js'

const POLL_MS = 250 // progress of a running campaign
const MAILBOX_POLL_MS = 1000 // caught e-mails while a campaign runs
const PREVIEW_DELAY_MS = 250 // typing pause before the counts are refreshed
const NOT_ARRIVED_MS = 15000 // a job id still "pending" this long after its trigger: lost or refused
const MAILBOX_PAGE = 50 // caught e-mails listed at first, and added per "Show more"
const MAILBOX_MAX = 1000 // what GET /mailbox lists at most (the sink keeps the newest 1,000)
const MAX_FILE_BYTES = 16 * 1024 * 1024 // the app route's body limit
const FINAL = new Set(['done', 'failed', 'cancelled'])

const $ = (id) => document.getElementById(id)
const form = $('campaign-form')
const fields = { subject: form.elements.subject, text: form.elements.text, recipients: form.elements.recipients, file: form.elements.recipientsFile, notBefore: form.elements.sendAt }
let file = null // { name, text } of the imported file
let previewSeq = 0
let previewTimer = 0
let current = null // the campaign being shown: { id, since, timer }
let mailboxTimer = 0
let mailboxLimit = MAILBOX_PAGE
let selectedMail = ''

function showError (message, field) {
  const box = $('form-error')
  box.textContent = message
  box.hidden = message === ''
  const target = field === 'file' ? fields.file : fields[field]
  if (target !== undefined) target.focus()
}

// ---- counts before sending ------------------------------------------------------------------

/** A `datetime-local` value (the browser's local time, no zone) as ISO 8601 with the browser's offset at that time. */
function withOffset (local) {
  const minutes = -new Date(local).getTimezoneOffset()
  const pad = (n) => String(Math.floor(n)).padStart(2, '0')
  return `${local}${minutes < 0 ? '-' : '+'}${pad(Math.abs(minutes) / 60)}:${pad(Math.abs(minutes) % 60)}`
}

function campaignBody () {
  const sendAt = fields.notBefore.value
  return {
    subject: fields.subject.value, text: fields.text.value, recipients: fields.recipients.value, ...(file === null ? {} : { file }),
    ...(sendAt === '' ? {} : { notBefore: withOffset(sendAt) }),
  }
}

async function refreshPreview () {
  const seq = ++previewSeq
  const { status, json } = await api('POST', '/campaigns/preview', { recipients: fields.recipients.value, ...(file === null ? {} : { file }) })
  if (seq !== previewSeq) return // a newer preview is on its way
  if (status !== 200) {
    showError(json?.error?.message ?? `preview failed (HTTP ${status})`, json?.error?.field)
    return
  }
  showError('')
  for (const key of ['valid', 'invalid', 'duplicates']) document.querySelector(`[data-count="${key}"]`).textContent = json[key].toLocaleString()
  $('counts').dataset.total = String(json.total)
  const list = $('invalid-list')
  list.replaceChildren(...json.invalidShown.map((line) => el('li', {}, line)))
  if (json.invalid > json.invalidShown.length) list.append(el('li', {}, `… and ${plural(json.invalid - json.invalidShown.length, 'more')}`))
  $('invalid-details').hidden = json.invalid === 0
  $('send').textContent = json.valid > 0 ? `Send to ${plural(json.valid, 'recipient')}` : 'Send campaign'
}

function schedulePreview () {
  clearTimeout(previewTimer)
  previewTimer = setTimeout(refreshPreview, PREVIEW_DELAY_MS)
}

fields.recipients.addEventListener('input', schedulePreview)
fields.file.addEventListener('change', async () => {
  const chosen = fields.file.files[0]
  file = null
  $('file-clear').hidden = chosen === undefined
  if (chosen !== undefined) {
    if (chosen.size > MAX_FILE_BYTES) {
      fields.file.value = ''
      $('file-clear').hidden = true
      showError(`${chosen.name} is ${(chosen.size / 1048576).toFixed(1)} MiB; at most 16 MiB`, 'file')
      return
    }
    file = { name: chosen.name, text: await chosen.text() }
  }
  refreshPreview()
})
$('file-clear').addEventListener('click', () => {
  fields.file.value = ''
  fields.file.dispatchEvent(new Event('change'))
  fields.file.focus()
})

// ---- sending and progress -------------------------------------------------------------------

form.addEventListener('submit', async (event) => {
  event.preventDefault()
  if (!form.reportValidity()) return
  const button = $('send')
  button.disabled = true
  showError('')
  try {
    const sentAt = performance.now()
    const { status, json } = await api('POST', '/campaigns', campaignBody())
    const answeredMs = performance.now() - sentAt
    if (status !== 202) {
      showError(json?.error?.message ?? `sending failed (HTTP ${status})`, json?.error?.field)
      return
    }
    history.replaceState(null, '', `#job=${json.id}`)
    showCampaign(json.id, { ...json, answeredMs })
    document.dispatchEvent(new CustomEvent('campaign:sent', { detail: { id: json.id } }))
  } catch (err) {
    showError(`the server did not answer: ${err.message}`)
  } finally {
    button.disabled = false
  }
})

/** Renders the campaign panel for a job id and starts polling it. */
function showCampaign (id, accepted) {
  if (current !== null) clearTimeout(current.timer)
  current = { id, since: Date.now(), timer: 0 }
  const total = accepted?.recipients ?? 0
  const facts = el('dl', { class: 'facts' },
    el('dt', {}, 'Job'), el('dd', {}, el('code', { 'data-job-id': id }, id)),
    el('dt', {}, 'State'), el('dd', {}, el('span', { class: `state ${accepted?.notBefore === undefined ? 'queued' : 'scheduled'}`, 'data-state': '' },
      accepted?.notBefore === undefined ? 'queued' : 'scheduled')),
    el('dt', {}, 'Sent'), el('dd', {}, el('span', { class: 'progress-text', 'data-progress': '' }, `0/${total}`)),
    el('dt', {}, 'Failed'), el('dd', {}, el('span', { 'data-failed': '' }, '0')),
    el('dt', {}, 'Elapsed'), el('dd', {}, el('span', { 'data-elapsed': '' }, '—')))
  const bar = el('progress', { max: Math.max(total, 1), value: 0, 'aria-label': 'E-mails sent' })
  const notes = []
  if (accepted !== undefined) {
    // What the person waited for, measured here: the app route fired one trigger and answered.
    notes.push(el('p', { class: 'note' }, `Send was answered in ${Math.round(accepted.answeredMs)} ms: the app fired one ` +
      `${(accepted.trigger.bytes / 1024).toFixed(1)} KiB request at the worker over a raw socket and hung up without ` +
      'reading the answer. No e-mail was sent while you waited.'))
    if (accepted.notBefore !== undefined) {
      notes.push(el('p', { class: 'note', 'data-send-at': accepted.notBefore }, `Scheduled: sending starts at ${new Date(accepted.notBefore).toLocaleString()}.`))
    }
    const skipped = []
    if (accepted.invalid > 0) skipped.push(`${plural(accepted.invalid, 'invalid entry', 'invalid entries')} skipped`)
    if (accepted.duplicates > 0) skipped.push(`${plural(accepted.duplicates, 'duplicate')} sent once`)
    if (skipped.length > 0) notes.push(el('p', { class: 'hint' }, skipped.join(', ') + '.'))
  }
  const failures = el('div', { class: 'failures', hidden: '' }, el('h3', {}, 'Failures'), el('ol', { 'data-failures': '' }))
  $('campaign').replaceChildren(facts, bar, ...notes, failures)
  poll()
}

/** A view for a job that will not be shown: the page stops polling it. */
const failedView = (message) => ({ state: 'failed', total: 0, sent: 0, failed: 0, errors: [{ message }] })

async function poll () {
  const c = current
  let view = null
  try {
    const { status, json } = await api('GET', `/campaigns/${c.id}`)
    if (status === 200 && json.state === 'pending') {
      // Fired by this server, not stored yet: the trigger is on its way. Normal for the first ticks.
      const since = Date.parse(json.firedAt) || c.since
      view = Date.now() - since <= NOT_ARRIVED_MS
        ? json
        : failedView('the receiver never stored this job: the trigger did not arrive or was refused (see the server log)')
    } else if (status === 200) {
      view = json
    } else if (status === 404) {
      view = failedView('no such job: this server neither stored it nor fired it (an old link, or the server restarted before the job arrived)')
    } else {
      view = failedView(json?.error?.message ?? `HTTP ${status}`)
    }
  } catch {
    // The server restarts or the network blinks: try again on the next tick.
  }
  if (c !== current) return
  if (view !== null) render(view)
  if (view === null || !FINAL.has(view.state)) current.timer = setTimeout(poll, POLL_MS)
  else refreshMailbox()
}

function render (view) {
  const root = $('campaign')
  const state = root.querySelector('[data-state]')
  // "pending" (fired, not stored yet) reads as queued: to the person, the job waits for the worker.
  const shown = view.state === 'pending' ? 'queued' : view.state
  state.textContent = shown
  state.className = `state ${shown}`
  state.title = view.state === 'pending' ? 'On its way to the worker, not stored yet' : ''
  if (view.state === 'pending') return
  root.querySelector('[data-progress]').textContent = `${view.sent}/${view.total}`
  root.querySelector('[data-failed]').textContent = view.failed.toLocaleString()
  const bar = root.querySelector('progress')
  bar.max = Math.max(view.total, 1)
  bar.value = view.sent + view.failed
  if (view.startedAt !== undefined) {
    const ms = (view.finishedAt === undefined ? Date.now() : Date.parse(view.finishedAt)) - Date.parse(view.startedAt)
    const rate = ms > 0 ? ` · ${Math.round(view.sent / (ms / 1000)).toLocaleString()} e-mails/s` : ''
    root.querySelector('[data-elapsed]').textContent = `${(ms / 1000).toFixed(2)} s${rate}`
  }
  const errors = view.errors ?? []
  root.querySelector('.failures').hidden = errors.length === 0
  root.querySelector('[data-failures]').replaceChildren(...errors.map((e) => el('li', {},
    el('b', {}, e.email ?? (e.index === undefined ? 'job' : `recipient #${e.index + 1}`)), ' — ', e.message,
    e.attempts > 0 ? el('small', {}, ` (${plural(e.attempts, 'attempt')}${e.state === 'pending' ? ', will retry' : ''})`) : undefined)))
  if (view.state === 'running') scheduleMailbox()
}

// ---- caught e-mails -------------------------------------------------------------------------

function scheduleMailbox () {
  if (mailboxTimer === 0) mailboxTimer = setTimeout(() => { mailboxTimer = 0; refreshMailbox() }, MAILBOX_POLL_MS)
}

async function refreshMailbox () {
  const { status, json } = await api('GET', `/mailbox?limit=${mailboxLimit}`).catch(() => ({ status: 0, json: null }))
  if (status === 404) {
    $('mailbox-note').textContent = 'Mail goes to a real SMTP server (serve --smtp): nothing is caught here.'
    $('mail-list').replaceChildren()
    $('mailbox-more').hidden = true
    return
  }
  if (status !== 200) return
  $('mailbox-count').textContent = json.received.toLocaleString()
  const shown = json.messages.length
  // Fewer than asked for, yet more received: the older ones are no longer kept by the sink.
  const dropped = shown < mailboxLimit && json.received > shown
  $('mailbox-more').hidden = json.received === 0
  $('mailbox-shown').textContent = `Showing ${shown.toLocaleString()} of ${json.received.toLocaleString()}` +
    (dropped ? ` · only the newest ${shown.toLocaleString()} are kept` : '')
  const more = Math.min(MAILBOX_PAGE, json.received - shown, MAILBOX_MAX - shown)
  $('mailbox-show-more').hidden = shown < mailboxLimit || more <= 0
  $('mailbox-show-more').textContent = `Show ${more.toLocaleString()} more`
  $('mail-list').replaceChildren(...json.messages.map((m) => {
    const button = el('button', { type: 'button', class: 'mail-item', 'aria-pressed': String(m.messageId === selectedMail) },
      el('span', { class: 'mail-subject' }, m.subject || '(no subject)'),
      el('span', { class: 'mail-meta' }, `To ${m.to.join(', ')} · ${new Date(m.receivedAt).toLocaleTimeString()}`))
    button.addEventListener('click', () => { selectedMail = m.messageId; showMail(m); refreshMailbox() })
    return el('li', {}, button)
  }))
  if (json.messages.length === 0) $('mail-list').append(el('li', { class: 'empty' }, 'Nothing caught yet.'))
}

/** The headers (unfolded) and body of a raw message head. */
function parseMessage (raw) {
  const at = raw.search(/\r?\n\r?\n/)
  const headText = at === -1 ? raw : raw.slice(0, at)
  const body = at === -1 ? '' : raw.slice(at).replace(/^\r?\n\r?\n/, '')
  const headers = {}
  for (const line of headText.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  return { headers, body }
}

function decodeBody (body, encoding) {
  const bytes = (binary) => new TextDecoder().decode(Uint8Array.from(binary, (ch) => ch.charCodeAt(0)))
  try {
    if (/quoted-printable/i.test(encoding)) {
      return bytes(body.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/gi, (_, h) => String.fromCharCode(parseInt(h, 16))))
    }
    if (/base64/i.test(encoding)) return bytes(atob(body.replace(/\s+/g, '')))
  } catch {
    // A head cut off mid-sequence: show what is there.
  }
  return body
}

function showMail (m) {
  const { headers, body } = parseMessage(m.head)
  const raw = /^multipart\//i.test(headers['content-type'] ?? '') ? body : decodeBody(body, headers['content-transfer-encoding'] ?? '')
  const text = raw.replace(/\r\n/g, '\n') // SMTP line ends
  const view = $('mail-view')
  const row = (name, value) => [el('dt', {}, name), el('dd', {}, value)]
  view.replaceChildren(
    el('h3', {}, m.subject || '(no subject)'),
    el('dl', { class: 'mail-headers' }, ...row('From', headers.from ?? m.from), ...row('To', headers.to ?? m.to.join(', ')),
      ...row('Date', new Date(m.receivedAt).toLocaleString()), ...row('Size', `${m.size.toLocaleString()} bytes`)),
    el('pre', { class: 'mail-body' }, text + (m.size > m.head.length ? '\n…' : '')),
    el('details', {}, el('summary', {}, 'Source (first 4 KiB)'), el('pre', { class: 'mail-source' }, m.head.replace(/\r\n/g, '\n'))))
  view.focus()
}

// Retried or cancelled in the jobs view: the campaign shown here follows again.
document.addEventListener('job:changed', (event) => {
  if (current?.id === event.detail.id) { clearTimeout(current.timer); poll() }
})

$('mailbox-refresh').addEventListener('click', refreshMailbox)
$('mailbox-show-more').addEventListener('click', () => {
  mailboxLimit = Math.min(mailboxLimit + MAILBOX_PAGE, MAILBOX_MAX)
  refreshMailbox()
})

// ---- start ----------------------------------------------------------------------------------

refreshMailbox()
if (fields.recipients.value !== '') refreshPreview() // a browser may restore the list on reload
const resumed = /^#job=([A-Za-z0-9_-]{1,64})$/.exec(location.hash)
if (resumed !== null) showCampaign(resumed[1])
