// The benchmark's receiver: a bare node:http server, run as a child process by
// scripts/bench/receiver-client.ts (never by hand). Plain JavaScript without a loader so that
// nothing but node:http runs in it.
//
// - listens on port 0 at 127.0.0.1 with a listen backlog of 4096 (the kernel caps it at
//   net.core.somaxconn), and on the Unix socket path given as its first argument with the same
//   handler and counters, then sends { type: 'listening', port, socketPath } to the parent over IPC. Node's
//   default of 511 overflows when a fast sender (PHP, fireMany) outruns this receiver for a
//   moment; the kernel then drops the SYN and the client's connect() stalls for the 1 s SYN
//   retransmit, which would measure the receiver's backlog instead of the client;
// - allows half-open connections (a fire-and-forget trigger sends its FIN right after the body);
// - reads every body to its end, counts the request as complete, answers 202;
// - answers { type: 'count', id, ... } to { type: 'count', id } from the parent, with its own CPU
//   time so that the parent can tell what one request costs the receiver;
// - exits when the parent closes the IPC channel.
import http from 'node:http'

let requests = 0 // requests whose body was read to the end
let bodyBytes = 0
let badRequests = 0 // parse errors and other client errors that are not a peer hanging up
let connections = 0

/** @param {http.IncomingMessage} req @param {http.ServerResponse} res */
function onRequest (req, res) {
  req.on('data', (chunk) => { bodyBytes += chunk.length })
  req.on('end', () => {
    requests++
    res.writeHead(202, { 'content-length': '0' })
    res.end()
  })
}

function createServer () {
  const server = http.createServer(onRequest)
  // A trigger half-closes after its body; without this Node would drop the request at the FIN.
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

const LISTEN_BACKLOG = 4_096 // see the header
const socketPath = process.argv[2]
const server = createServer()
const unixServer = createServer()

server.listen({ port: 0, host: '127.0.0.1', backlog: LISTEN_BACKLOG }, () => {
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  if (socketPath === undefined) {
    process.send?.({ type: 'listening', port })
    return
  }
  unixServer.listen({ path: socketPath, backlog: LISTEN_BACKLOG }, () => {
    process.send?.({ type: 'listening', port, socketPath })
  })
})

process.on('message', (message) => {
  if (message !== null && typeof message === 'object' && message.type === 'count') {
    const { user, system } = process.cpuUsage()
    process.send?.({ type: 'count', id: message.id, requests, bodyBytes, badRequests, connections, cpuUs: user + system })
  }
})

process.on('disconnect', () => {
  for (const s of [server, unixServer]) {
    s.close()
    s.closeAllConnections()
  }
  process.exit(0) // a listening Unix server removes its socket file on close
})
