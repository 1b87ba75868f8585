// The bare node:http receiver: the load test's baseline target (scripts/load/targets.ts) and the
// trigger benchmark's receiver (scripts/bench/receiver-client.ts), run as a child, never by hand.
// Plain JavaScript without a loader, so that nothing but node:http runs in it.
//
// - POST anything: reads the body to its end, counts the request, answers 202 with an empty body;
// - GET /stats: {"stored": <requests counted>} — the same field the other load targets report;
// - allows half-open connections, as rawtrigger's receiver does: a fire-and-forget trigger sends
//   its FIN right after the body, and Node would otherwise drop the request at the FIN;
// - listens on 127.0.0.1, port 0, backlog 4096 (the kernel caps it at net.core.somaxconn), and on
//   the Unix socket path given as its first argument with the same handler and counters; prints
//   `listening on http://127.0.0.1:<port>`, and, when forked, sends { type: 'listening', port,
//   socketPath } over IPC. Node's default backlog of 511 overflows when a fast sender (PHP,
//   fireMany) outruns this receiver for a moment; the kernel then drops the SYN and the client's
//   connect() stalls for the 1 s SYN retransmit, which would measure this backlog, not the client;
// - answers { type: 'count', id, ... } to { type: 'count', id } over IPC, with its own CPU time,
//   so that the benchmark can tell what one request costs the receiver;
// - exits when its stdin closes or the IPC channel does (the parent went away), or on SIGTERM.
import http from 'node:http'

const LISTEN_BACKLOG = 4_096 // see the header
let requests = 0 // requests whose body was read to the end
let bodyBytes = 0
let badRequests = 0 // parse errors and other client errors that are not a peer hanging up
let connections = 0

/** @param {http.IncomingMessage} req @param {http.ServerResponse} res */
function onRequest (req, res) {
  if (req.method === 'GET' && req.url === '/stats') {
    req.resume()
    const json = JSON.stringify({ stored: requests })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) })
    res.end(json)
    return
  }
  req.on('data', (chunk) => { bodyBytes += chunk.length })
  req.on('end', () => {
    requests++
    res.writeHead(202, { 'content-length': '0' })
    res.end()
  })
}

function createServer () {
  const server = http.createServer(onRequest)
  server.httpAllowHalfOpen = true
  server.on('connection', () => { connections++ })
  server.on('clientError', (err, socket) => {
    // A trigger closes its socket once the request is written, so our 202 often meets a closed
    // peer: ECONNRESET/EPIPE here is the normal end of a fire-and-forget request, not a fault.
    const code = /** @type {NodeJS.ErrnoException} */ (err).code
    if (code !== 'ECONNRESET' && code !== 'EPIPE') badRequests++
    socket.destroy()
  })
  return server
}

const socketPath = process.argv[2]
const servers = [createServer(), ...(socketPath === undefined ? [] : [createServer()])]

servers[0].listen({ port: 0, host: '127.0.0.1', backlog: LISTEN_BACKLOG }, () => {
  const address = servers[0].address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  const ready = () => {
    process.stdout.write(`listening on http://127.0.0.1:${port}\n`)
    process.send?.({ type: 'listening', port, socketPath })
  }
  if (socketPath === undefined) ready()
  else servers[1].listen({ path: socketPath, backlog: LISTEN_BACKLOG }, ready)
})

process.on('message', (message) => {
  if (message !== null && typeof message === 'object' && message.type === 'count') {
    const { user, system } = process.cpuUsage()
    process.send?.({ type: 'count', id: message.id, requests, bodyBytes, badRequests, connections, cpuUs: user + system })
  }
})

function stop () {
  for (const s of servers) {
    s.close()
    s.closeAllConnections()
  }
  process.exit(0) // a listening Unix server removes its socket file on close
}
process.on('SIGTERM', stop)
process.on('disconnect', stop)
process.stdin.on('end', stop)
process.stdin.resume()
