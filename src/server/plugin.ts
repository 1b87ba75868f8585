// What a job type adds to the receiver beyond its handler, as a fastify plugin adds routes and
// decorations: the receiver knows no job type, and the e-mail type is one such plugin
// (src/email/plugin.ts). A second type (a webhook relay, an SMS sender) is another, with no change here.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Registry } from 'prom-client'
import type { Logger } from '../log.ts'
import type { AnyJobHandler, ItemEvent } from '../queue/handler.ts'
import type { JobQueue, StoreStats } from '../queue/types.ts'
import type { Access, RouteAccess } from './access.ts'
import type { RouteContext } from './route-context.ts'

/** What a plugin is given when a receiver starts. */
export interface PluginHost {
  queue: JobQueue
  /** The receiver's Prometheus registry: the plugin's metrics go on it. */
  registry: Registry
  log: Logger
}

/** A plugin's part in one running receiver. */
export interface PluginHooks {
  /**
   * The plugin's routes, after the access check (rows of {@link ReceiverPlugin.access}) and before
   * the job routes; true when handled.
   */
  route?: (ctx: RouteContext, req: IncomingMessage, res: ServerResponse, path: string, access: Access) => boolean
  /** Each item outcome that a job of the plugin's own handlers reports (`ctx.observe`). */
  observe?: (event: ItemEvent) => void
  /** Fields the plugin adds to `GET /stats`, from the store's part. */
  stats?: (stats: StoreStats) => Record<string, unknown>
}

/** A job type, or a set of them, with what they add to the receiver. */
export interface ReceiverPlugin {
  /** For logs and errors. */
  name: string
  /** Job types by name: `POST /jobs/<name>`. */
  handlers?: Record<string, AnyJobHandler>
  /** Rows for the plugin's routes in the receiver's access table (a path in no row needs a loopback peer, or a signed GET). */
  access?: readonly RouteAccess[]
  /** Called once per receiver as it starts: registers metrics, returns the hooks for that receiver. */
  register?: (host: PluginHost) => PluginHooks
}

/** The plugins' hooks of one receiver, joined. */
export interface Plugged {
  route: (ctx: RouteContext, req: IncomingMessage, res: ServerResponse, path: string, access: Access) => boolean
  /** Hands an item event to the plugin whose handler the job's type is. */
  observe: (type: string, event: ItemEvent) => void
  stats: (stats: StoreStats) => Record<string, unknown>
}

/** Registers every plugin with the receiver and joins their hooks. */
export function plugIn (plugins: readonly ReceiverPlugin[], host: PluginHost): Plugged {
  const hooks = plugins.map((p) => ({ plugin: p, hooks: p.register?.(host) ?? {} }))
  const observers = new Map<string, (event: ItemEvent) => void>()
  for (const { plugin, hooks: h } of hooks) {
    if (h.observe !== undefined) for (const type of Object.keys(plugin.handlers ?? {})) observers.set(type, h.observe)
  }
  const routes = hooks.flatMap(({ hooks: h }) => (h.route === undefined ? [] : [h.route]))
  const stats = hooks.flatMap(({ hooks: h }) => (h.stats === undefined ? [] : [h.stats]))
  return {
    route: (ctx, req, res, path, access) => routes.some((r) => r(ctx, req, res, path, access)),
    observe: (type, event) => observers.get(type)?.(event),
    stats: (s) => Object.assign({}, ...stats.map((f) => f(s))) as Record<string, unknown>,
  }
}
