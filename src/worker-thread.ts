// Starting a worker thread from a module next to the caller, from the compiled JavaScript or from
// the TypeScript source alike (tests and tsx): a worker does not inherit the hooks `--import tsx`
// registered in the main thread, so from a .ts module it registers tsx's loader first.
import { Worker } from 'node:worker_threads'

/**
 * Starts `./<name>.js` (or `.ts`, matching `from`, the caller's `import.meta.url`) as a worker
 * thread with `data` as its workerData.
 */
export function startWorker (from: string, name: string, data: unknown): Worker {
  const ts = from.endsWith('.ts')
  const url = new URL(`./${name}${ts ? '.ts' : '.js'}`, from)
  if (ts) {
    return new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url.href)}) })`, { eval: true, workerData: data })
  }
  return new Worker(url, { workerData: data })
}
