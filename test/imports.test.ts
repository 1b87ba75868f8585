// Data flows one way through src/: each file imports only from its own layer or the layers below
// it in the table, and no set of files imports itself round in a circle. Type-only imports count:
// a type that points up is a dependency that points up.
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { describe, test } from 'node:test'
import { checkGraph, findCycles, readGraph, scanImports, type ImportGraph, type Layer } from './helpers/import-graph.ts'

const SRC = fileURLToPath(new URL('../src/', import.meta.url))

/**
 * The layers of src/, top to bottom: a file may import from its own row and every row below it.
 * A path ending in `/` is a folder; `*.ts` is any file directly in src/ not claimed above (the
 * shared leaves: errors.ts, log.ts, json-response.ts).
 */
const LAYERS: ReadonlyArray<readonly [name: string, paths: readonly string[]]> = [
  ['entry', ['index.ts', 'client.ts']], // the package's entries (rawtrigger, rawtrigger/client), re-exports only
  ['cli', ['cli.ts', 'cli/']], //      `rawtrigger …`: wires a receiver, a queue and the e-mail job together
  ['defaults', ['receiver-default.ts']], // the package's createReceiver: the receiver on SQLite unless told otherwise
  ['web', ['web/']], //                the page and its app routes (call trigger(), read the receiver's views)
  ['email', ['email/']], //            the e-mail job type as a receiver plugin: its routes, metrics and /stats fields
  ['server', ['server/']], //          the receiver: HTTP, access, routes, metrics, the plugin contract; knows no job type
  ['smtp', ['smtp/']], //              the e-mail job type: a handler registered by name, its mailer and sink
  ['queue', ['queue/']], //            job stores and the handler contract; knows no job type
  ['net', ['net/']], //                the trigger client and signatures
  ['base', ['*.ts']], //               errors, logger, JSON writing: import nothing of src/ but each other
]

function layerTable (rows: typeof LAYERS): (file: string) => Layer | undefined {
  return (file) => {
    for (const [i, [name, paths]] of rows.entries()) {
      const rank = rows.length - i
      for (const path of paths) {
        if (path.endsWith('/') ? file.startsWith(path) : path === '*.ts' ? !file.includes('/') : file === path) return { name, rank }
      }
    }
    return undefined
  }
}

const layerOf = layerTable(LAYERS)

test('src/ has no import cycle and no import that runs up the layer table', () => {
  const graph = readGraph(SRC)
  assert.ok(graph.size > 50, `read only ${graph.size} files from ${SRC}`)
  const problems = checkGraph(graph, layerOf)
  assert.deepEqual(problems.map((p) => p.message), [], `\n${problems.map((p) => p.message).join('\n')}`)
})

test('every layer of the table holds files, so a renamed folder cannot silently leave the check', () => {
  const files = [...readGraph(SRC).keys()]
  for (const [name] of LAYERS) {
    assert.ok(files.some((file) => layerOf(file)?.name === name), `no file of src/ is in layer ${name}`)
  }
})

describe('the checker, on small graphs', () => {
  const graph = (edges: Record<string, string[]>): ImportGraph => new Map(Object.entries(edges))

  test('a two-file cycle and a longer one are reported with their files', () => {
    const g = graph({
      'queue/types.ts': ['queue/handler.ts'],
      'queue/handler.ts': ['queue/types.ts', 'errors.ts'],
      'server/routes.ts': ['server/control-routes.ts'],
      'server/control-routes.ts': ['server/bounce-route.ts'],
      'server/bounce-route.ts': ['server/routes.ts'],
      'errors.ts': [],
    })
    assert.deepEqual(findCycles(g).sort(), [
      ['queue/handler.ts', 'queue/types.ts'],
      ['server/bounce-route.ts', 'server/control-routes.ts', 'server/routes.ts'],
    ])
    const messages = checkGraph(g, layerOf).map((p) => p.message)
    assert.equal(messages.length, 2)
    assert.match(messages[0] ?? '', /import cycle: .*queue\/handler\.ts.*queue\/types\.ts/)
  })

  test('a self-import is a cycle', () => {
    assert.deepEqual(findCycles(graph({ 'net/a.ts': ['net/a.ts'] })), [['net/a.ts']])
  })

  test('an arrow up the table is reported with both files and layers; down and sideways within a layer are not', () => {
    const g = graph({
      'smtp/service.ts': ['server/respond.ts', 'queue/handler.ts', 'smtp/sink.ts'],
      'server/respond.ts': ['errors.ts'],
      'queue/handler.ts': ['log.ts'],
      'smtp/sink.ts': [],
      'net/trigger.ts': ['queue/types.ts'],
      'queue/types.ts': [],
      'errors.ts': [],
      'log.ts': [],
    })
    assert.deepEqual(checkGraph(g, layerOf).map((p) => p.message), [
      'upward import: smtp/service.ts (smtp) → server/respond.ts (server)',
      'upward import: net/trigger.ts (net) → queue/types.ts (queue)',
    ])
  })

  test('queue may not import the e-mail job type, nor anything import the entry', () => {
    const g = graph({ 'queue/worker.ts': ['smtp/addresses.ts'], 'cli/serve.ts': ['index.ts'], 'smtp/addresses.ts': [], 'index.ts': [] })
    assert.deepEqual(checkGraph(g, layerOf).map((p) => p.kind), ['upward', 'upward'])
  })

  test('a file outside every layer is reported', () => {
    const problems = checkGraph(graph({ 'plugins/x.ts': [] }), layerTable([['net', ['net/']]]))
    assert.deepEqual(problems.map((p) => [p.kind, p.files]), [['unlayered', ['plugins/x.ts']]])
  })
})

describe('the import scanner', () => {
  test('finds static, type-only, re-exported, side-effect and dynamic imports, multi-line ones too', () => {
    const source = [
      "import type { A } from './a.ts'",
      "import { b, type B } from '../b.ts'",
      'import {',
      '  c,',
      '  d,',
      "} from './c.ts'",
      "export * from './e.ts'",
      "export type { F } from './f.ts'",
      "import './g.ts'",
      "const h = await import('./h.ts')",
      "type I = typeof import('./i.ts')",
      "import x, * as y from \"./j.ts\"",
    ].join('\n')
    assert.deepEqual(scanImports(source), ['./a.ts', '../b.ts', './c.ts', './e.ts', './f.ts', './g.ts', './h.ts', './i.ts', './j.ts'])
  })

  test('skips what only looks like an import: comments, strings, templates, regular expressions, computed specifiers', () => {
    const source = [
      "// import { a } from './a.ts'",
      "/* export * from './b.ts' */",
      "const s = \"import { c } from './c.ts'\"",
      "const t = `import('./d.ts') ${x} from './e.ts'`",
      "const re = /from '.\\/f.ts'/",
      'const m = await import(url)',
      "const ratio = a / b; const q = 'import(\"./g.ts\")'",
      "import { real } from './real.ts'",
    ].join('\n')
    assert.deepEqual(scanImports(source), ['./real.ts'])
  })
})
