// Small helpers shared by the page's scripts (app.js, jobs.js): building elements, calling the
// server. Every value from the server goes in through textContent, never as HTML.

/** Builds an element: el('p', { class: 'x' }, 'text', child). Attributes that are undefined or null are left out. */
export function el (tag, attrs = {}, ...children) {
  const node = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, String(v))
  node.append(...children.filter((c) => c !== undefined && c !== null))
  return node
}

/** One JSON request to this server: `{ status, json }` (json null when the answer is not JSON). */
export async function api (method, path, body) {
  const res = await fetch(path, {
    method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  })
  let json = null
  try { json = await res.json() } catch { json = null }
  return { status: res.status, json }
}

/** "1 recipient", "1,000 recipients". */
export const plural = (n, one, many = one + 's') => `${n.toLocaleString()} ${n === 1 ? one : many}`
