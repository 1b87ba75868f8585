// A real nginx (Debian's package) in front of a receiver, on loopback, with a temp config and a
// free port; killed after the test. Runs in the foreground, one process (master_process off), so
// the pid we spawned is the only one to kill.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { tempDir } from './receiver.ts'

/** Where Debian's nginx, nginx-light and nginx-full put the binary. */
export const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p))
const START_TIMEOUT_MS = 10_000

export interface NginxOptions {
  /** The receiver's port on 127.0.0.1. */
  upstreamPort: number
  /** `proxy_ignore_client_abort` in the proxying location. @default false (nginx's default) */
  ignoreClientAbort?: boolean
}

export interface Nginx {
  /** `http://127.0.0.1:PORT` */
  url: string
  port: number
  /** The access log so far (status 499 = nginx gave up because the client closed). */
  accessLog (): string
  close (): Promise<void>
}

async function freePort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

function config (dir: string, port: number, options: NginxOptions): string {
  return `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://127.0.0.1:${options.upstreamPort};
      proxy_http_version 1.1;
      proxy_ignore_client_abort ${options.ignoreClientAbort === true ? 'on' : 'off'};
    }
  }
}
`
}

/** Starts nginx proxying to the upstream; resolves once it accepts connections. */
export async function startNginx (t: TestContext, options: NginxOptions): Promise<Nginx> {
  if (NGINX === undefined) throw new Error('nginx is not installed (apt-get install nginx-light)')
  const dir = tempDir(t, 'rawtrigger-nginx-')
  mkdirSync(join(dir, 'logs'))
  const port = await freePort()
  const conf = join(dir, 'nginx.conf')
  writeFileSync(conf, config(dir, port, options))
  const check = spawnSync(NGINX, ['-t', '-q', '-p', dir, '-e', join(dir, 'error.log'), '-c', conf], { encoding: 'utf8' })
  if (check.status !== 0) throw new Error(`nginx -t failed: ${check.stderr}`)
  const child = spawn(NGINX, ['-p', dir, '-e', join(dir, 'error.log'), '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const close = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  }
  t.after(close)
  const deadline = Date.now() + START_TIMEOUT_MS
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (up) break
    if (child.exitCode !== null || Date.now() > deadline) {
      await close()
      const log = existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : ''
      throw new Error(`nginx did not start on 127.0.0.1:${port}\n${stderr}\n${log}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    accessLog: () => (existsSync(join(dir, 'access.log')) ? readFileSync(join(dir, 'access.log'), 'utf8') : ''),
    close,
  }
}
