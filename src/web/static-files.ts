import { existsSync, readFileSync } from 'node:fs'
import type { ServerResponse } from 'node:http'
import { fileURLToPath } from 'node:url'

/** The files of the page, by URL path: plain HTML, CSS and JS, no build step, nothing from a CDN. */
const FILES: Record<string, { file: string, type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/static/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/static/dom.js': { file: 'dom.js', type: 'text/javascript; charset=utf-8' },
  '/static/jobs.js': { file: 'jobs.js', type: 'text/javascript; charset=utf-8' },
  '/static/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
}

// Everything the page loads comes from this server; inline scripts and styles are refused.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

/**
 * The static directory: next to this module in a checkout (src/web/static); from dist/web the
 * TypeScript build does not copy it, so the source tree's copy is used.
 */
function staticDir (): string {
  for (const candidate of ['./static/', '../../src/web/static/']) {
    const dir = fileURLToPath(new URL(candidate, import.meta.url))
    if (existsSync(dir)) return dir
  }
  throw new Error('src/web/static not found: the web page files are missing from this installation')
}

const cache = new Map<string, Buffer>()

/** True when `path` is one of the page's files. */
export function isStaticPath (path: string): boolean {
  return Object.hasOwn(FILES, path)
}

/** Serves one of the page's files (GET or HEAD). */
export function sendStatic (res: ServerResponse, path: string, head: boolean): void {
  const entry = FILES[path]
  if (entry === undefined) throw new Error(`not a static path: ${path}`)
  let body = cache.get(entry.file)
  if (body === undefined) {
    body = readFileSync(staticDir() + entry.file)
    cache.set(entry.file, body)
  }
  res.writeHead(200, {
    'Content-Type': entry.type,
    'Content-Length': body.length,
    'Cache-Control': 'no-cache',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    ...(entry.type.startsWith('text/html') ? { 'Content-Security-Policy': CSP } : {}),
  })
  res.end(head ? undefined : body)
}
