// The jobs view: every stored job, newest first, a page at a time (GET /jobs?limit=&before=); the
// selected job's failed recipients with the SMTP reply (GET /jobs/:id), and Retry failed / Cancel
// (POST /jobs/:id/retry, /cancel). Polls only while the page is visible and something is running.
import { api, el, plural } from './dom.js'

const PAGE_SIZE = 10 // jobs per page
const POLL_MS = 1000 // while a listed or the selected job is queued or running
const ARRIVAL_MS = 15000 // how long a campaign just sent is waited for in the list (its trigger is on its way)
const ACTIVE = new Set(['queued', 'running', 'scheduled'])
const CANCELLABLE = ACTIVE

const $ = (id) => document.getElementById(id)
const rows = $('jobs-rows')
const view = $('job-view')
let cursors = [null] // the `before` of each page shown so far; the last one is the current page
let next = null // the `next` of the current page: there are older jobs
let listed = [] // the jobs of the current page
let selected = null // { id, job (the last GET /jobs/:id), note (what the last button did) }
let timer = 0
let seq = 0 // a newer refresh makes an older answer stale
let busy = false // a retry or cancel is on its way
let awaited = null // { id, until }: a campaign just sent, not listed yet

// Ids made at about the same time share their first characters (UUIDv7 starts with the time): keep the end.
const shortId = (id) => (id.length > 12 ? `${id.slice(0, 2)}…${id.slice(-8)}` : id)
const sameDay = (a, b) => a.toDateString() === b.toDateString()
/** A <time>: the full date and time, or (`compact`) only the time for today's, the day and minute for older ones. */
function time (iso, compact = false) {
  if (iso === undefined) return '—'
  const at = new Date(iso)
  const text = !compact ? at.toLocaleString()
    : sameDay(at, new Date()) ? at.toLocaleTimeString()
      : at.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' })
  return el('time', { datetime: iso, title: at.toLocaleString() }, text)
}
const stateBadge = (state) => el('span', { class: `state ${state}`, 'data-job-state': state }, state)
const num = (n, col) => el('td', { class: 'num', 'data-col': col }, (n ?? 0).toLocaleString())

function setStatus (text) {
  const status = $('jobs-status')
  if (status.textContent !== text) status.textContent = text // unchanged text is not announced again
}

/** Loads the current page (and the selected job), renders both, and polls again while anything runs. */
async function refresh () {
  clearTimeout(timer)
  timer = 0
  const mine = ++seq
  const before = cursors[cursors.length - 1]
  const query = `limit=${PAGE_SIZE}${before === null ? '' : `&before=${encodeURIComponent(before)}`}`
  const [list, detail] = await Promise.all([
    api('GET', `/jobs?${query}`).catch(() => null),
    selected === null ? null : api('GET', `/jobs/${encodeURIComponent(selected.id)}`).catch(() => null),
  ])
  if (mine !== seq) return
  if (list === null) {
    setStatus('The server did not answer; trying again.')
  } else if (list.status === 401) {
    // With --secret every /jobs request must be signed, and the page holds no secret.
    setStatus('This receiver runs with --secret: /jobs answers signed requests only, so the jobs view is off. ' +
      'Use `npx rawtrigger jobs list` with the secret instead.')
    return
  } else if (list.status !== 200) {
    setStatus(list.json?.error?.message ?? `listing the jobs failed (HTTP ${list.status})`)
  } else {
    listed = list.json.jobs
    next = list.json.next ?? null
    renderList()
  }
  if (selected !== null && detail !== null) {
    if (detail.status === 200) selected.job = detail.json
    else if (detail.status === 404) selected.job = null
  }
  if (selected !== null) renderDetail()
  if (awaited !== null && (listed.some((j) => j.id === awaited.id) || Date.now() > awaited.until)) awaited = null
  const running = listed.some((j) => ACTIVE.has(j.state)) || (selected?.job != null && ACTIVE.has(selected.job.state)) ||
    (awaited !== null && cursors.length === 1)
  if (running && document.visibilityState === 'visible') timer = setTimeout(refresh, POLL_MS)
}

function renderList () {
  const focused = document.activeElement?.dataset?.job // keep the keyboard where it was across a re-render
  rows.replaceChildren(...listed.map((j) => {
    const pick = el('button', { type: 'button', class: 'link job-pick', 'data-job': j.id, title: j.id,
      'aria-pressed': String(j.id === selected?.id) }, shortId(j.id))
    pick.addEventListener('click', () => select(j.id))
    return el('tr', { 'data-job-row': j.id, class: j.id === selected?.id ? 'selected' : undefined },
      el('td', {}, pick), el('td', { 'data-col': 'type' }, j.type), el('td', { 'data-col': 'state' }, stateBadge(j.state)),
      num(j.sent, 'sent'), num(j.failed, 'failed'), num(j.pending, 'pending'), el('td', { 'data-col': 'created' }, time(j.createdAt, true),
        j.notBefore === undefined ? undefined : el('small', { class: 'send-at', 'data-not-before': j.notBefore }, ' → ', time(j.notBefore, true))))
  }))
  if (listed.length === 0) {
    rows.append(el('tr', {}, el('td', { colspan: 7, class: 'empty' }, cursors.length > 1 ? 'No older jobs.' : 'No jobs yet.')))
  }
  if (focused !== undefined) rows.querySelector(`[data-job="${CSS.escape(focused)}"]`)?.focus()
  const page = cursors.length
  $('jobs-page').textContent = `Page ${page}`
  $('jobs-newer').disabled = page === 1
  $('jobs-older').disabled = next === null
  const running = listed.filter((j) => ACTIVE.has(j.state)).length
  setStatus(listed.length === 0 ? '' : `Page ${page}: ${plural(listed.length, 'job')}` + (running > 0 ? `, ${running} running or queued` : ''))
}

function select (id) {
  if (selected?.id !== id) selected = { id, job: undefined, note: '' }
  view.replaceChildren(el('p', { class: 'empty' }, `Loading ${id}…`))
  refresh()
  view.focus()
}

/** The selected job: its counts, the two buttons (enabled only when they apply), its failures. */
function renderDetail () {
  const { id, job, note } = selected
  if (job === undefined) return // not loaded yet
  if (job === null) {
    view.replaceChildren(el('p', { class: 'empty' }, `No job ${id}: it was deleted (see --retain) or never stored.`))
    return
  }
  for (const r of rows.querySelectorAll('tr')) r.classList.toggle('selected', r.dataset.jobRow === id)
  const canRetry = job.failed > 0 && job.state !== 'cancelled'
  const canCancel = CANCELLABLE.has(job.state)
  let box = view.querySelector(`[data-job-detail="${CSS.escape(id)}"]`)
  if (box === null) box = buildDetail(id) // built once per selection: the buttons keep the focus
  const row = (name, value) => [el('dt', {}, name), el('dd', {}, value)]
  box.querySelector('.facts').replaceChildren(
    ...row('Type', job.type), ...row('State', stateBadge(job.state)),
    ...row('Recipients', `${job.sent.toLocaleString()} sent, ${job.failed.toLocaleString()} failed, ` +
      `${job.pending.toLocaleString()} pending` + (job.cancelled > 0 ? `, ${job.cancelled.toLocaleString()} cancelled` : '') +
      ` of ${job.total.toLocaleString()}`),
    ...row('Created', time(job.createdAt)), ...(job.notBefore === undefined ? [] : row('Scheduled for', time(job.notBefore))),
    ...row('Started', time(job.startedAt)), ...row('Finished', time(job.finishedAt)))
  const retry = box.querySelector('[data-action=retry]')
  const cancel = box.querySelector('[data-action=cancel]')
  retry.disabled = busy || !canRetry
  cancel.disabled = busy || !canCancel
  retry.title = canRetry ? '' : job.state === 'cancelled' ? 'A cancelled job is not retried' : 'Nothing has failed'
  cancel.title = canCancel ? '' : `The job has ended (${job.state})`
  box.querySelector('[data-action-result]').textContent = note
  const errors = job.errors ?? []
  box.querySelector('.failures').hidden = errors.length === 0
  box.querySelector('[data-job-failures]').replaceChildren(...errors.map((e) => el('li', {},
    el('b', {}, e.index === undefined ? 'The job' : `Recipient #${e.index + 1}`), ' — ', el('span', { class: 'reply' }, e.message),
    el('small', {}, ` (${[e.attempts > 0 ? plural(e.attempts, 'attempt') : '', e.state === 'pending' ? 'will retry' : e.state ?? '']
      .filter(Boolean).join(', ')})`))))
  if (errors.length > 0 && errors.length < job.failed) {
    box.querySelector('[data-job-failures]').append(el('li', { class: 'hint' }, `… the first ${errors.length} of ${job.failed.toLocaleString()} shown`))
  }
}

function buildDetail (id) {
  const retry = el('button', { type: 'button', class: 'secondary', 'data-action': 'retry' }, 'Retry failed')
  const cancel = el('button', { type: 'button', class: 'secondary danger', 'data-action': 'cancel' }, 'Cancel')
  retry.addEventListener('click', () => act(id, 'retry'))
  cancel.addEventListener('click', () => act(id, 'cancel'))
  const box = el('div', { 'data-job-detail': id },
    el('h3', {}, 'Job ', el('code', {}, id)),
    el('dl', { class: 'facts' }),
    el('div', { class: 'actions' }, retry, cancel),
    el('p', { class: 'action-result', role: 'status', 'aria-live': 'polite', tabindex: -1, 'data-action-result': '' }),
    el('div', { class: 'failures', hidden: '' }, el('h4', {}, 'Failed recipients, with the SMTP reply'), el('ol', { 'data-job-failures': '' })))
  view.replaceChildren(box)
  return box
}

/** Presses Retry failed or Cancel: one POST, its answer shown, then the job reloaded. */
async function act (id, verb) {
  busy = true
  renderDetail()
  let note
  try {
    const { status, json } = await api('POST', `/jobs/${encodeURIComponent(id)}/${verb}`)
    if (status === 200 && verb === 'retry') note = `Retrying ${plural(json.items, 'failed recipient')}: the job is ${json.state}.`
    else if (status === 200) note = `Cancelled: ${plural(json.items, 'recipient')} will not be sent. Messages already in flight finish.`
    else note = json?.error?.message ?? `${verb} failed (HTTP ${status})`
  } catch (err) {
    note = `the server did not answer: ${err.message}`
  }
  busy = false
  if (selected?.id === id) selected.note = note
  document.dispatchEvent(new CustomEvent('job:changed', { detail: { id } })) // the Progress panel may show it
  const pressed = document.activeElement
  await refresh()
  // The pressed button no longer applies (a job cancelled once): keep the keyboard on the answer.
  if (pressed?.disabled === true) view.querySelector('[data-action-result]')?.focus()
}

$('jobs-refresh').addEventListener('click', refresh)
$('jobs-older').addEventListener('click', () => {
  if (next === null) return
  cursors.push(next)
  refresh()
})
$('jobs-newer').addEventListener('click', () => {
  if (cursors.length > 1) cursors.pop()
  refresh()
})
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') refresh()
  else clearTimeout(timer) // hidden: no polling until the page is seen again
})
// A campaign just sent from this page: show the newest page, where it is.
document.addEventListener('campaign:sent', (event) => {
  cursors = [null]
  awaited = { id: event.detail.id, until: Date.now() + ARRIVAL_MS }
  refresh()
})

refresh()
