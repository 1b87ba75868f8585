// The load test's baseline: a bare node:http server, run as a child process by scripts/load.ts
// (never by hand). Plain JavaScript without a loader, so that nothing but node:http runs in it.
//
// - POST anything: reads the body to its end, counts the request, answers 202 with an empty body;
// - GET /stats: {"stored": <requests counted>} — the same field the other targets report;
// - allows half-open connections, as rawtrigger's receiver does: a fire-and-forget trigger sends
//   its FIN right after the body, and Node would otherwise drop the request at the FIN;
// - listens on 127.0.0.1, port 0, backlog 4096 (the kernel caps it at net.core.somaxconn), and
//   prints `listening on http://127.0.0.1:<port>`;
// - exits when its stdin closes (the parent went away) or on SIGTERM.
import http from 'node:http'

const LISTEN_BACKLOG = 4_096
let stored = 0

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/stats') {
    req.resume()
    const json = JSON.stringify({ stored })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) })
    res.end(json)
    return
  }
  req.resume()
  req.on('end', () => {
    stored++
    res.writeHead(202, { 'content-length': '0' })
    res.end()
  })
})
server.httpAllowHalfOpen = true
// A trigger hangs up once its request is written: ECONNRESET/EPIPE when we answer is its normal end.
server.on('clientError', (_err, socket) => { socket.destroy() })

server.listen({ port: 0, host: '127.0.0.1', backlog: LISTEN_BACKLOG }, () => {
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  process.stdout.write(`listening on http://127.0.0.1:${port}\n`)
})

function stop () {
  server.close()
  server.closeAllConnections()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.stdin.on('end', stop)
process.stdin.resume()
