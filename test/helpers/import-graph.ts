// The import graph of src/: a small exact scanner (comments, strings, template literals and regular
// expressions are skipped, so an `import` in a comment or a string is no edge), and the two checks
// test/imports.test.ts makes on it: no cycle, and no arrow that runs up the layer table.
import { readdirSync, readFileSync } from 'node:fs'
import { join, posix, relative, sep } from 'node:path'

/** File (relative to the source root, `/`-separated) → the files it imports, in source order. */
export type ImportGraph = Map<string, string[]>

/** Where a file sits: its layer's name and its rank (a file may import only lower ranks, or its own layer). */
export interface Layer { name: string, rank: number }

/** One broken rule, naming the files. */
export interface Problem { kind: 'cycle' | 'upward' | 'unlayered', files: string[], message: string }

/** Characters after which a `/` starts a regular expression rather than a division. */
const REGEX_AFTER = new Set(['', '(', ',', '=', ':', '[', '!', '&', '|', '?', '{', '}', ';', '+', '-', '*', '%', '<', '>', '~', '^'])
const REGEX_AFTER_WORDS = new Set(['return', 'typeof', 'case', 'do', 'else', 'in', 'of', 'new', 'delete', 'void', 'throw', 'yield', 'await'])

/**
 * The source with comments, template literals and regular expressions blanked and every string
 * literal replaced by a placeholder `'#N'` (its text kept in `strings`), so the patterns below see
 * only code. Newlines are kept: a statement's line stays where it was.
 */
function mask (source: string): { code: string, strings: string[] } {
  const strings: string[] = []
  let out = ''
  let i = 0
  let last = '' // the last significant character or word of code, to tell a regex from a division
  const blank = (text: string): string => text.replace(/[^\n]/g, ' ')
  while (i < source.length) {
    const c = source[i] as string
    const next = source[i + 1]
    if (c === '/' && next === '/') {
      const end = source.indexOf('\n', i)
      const stop = end === -1 ? source.length : end
      out += blank(source.slice(i, stop))
      i = stop
    } else if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2)
      const stop = end === -1 ? source.length : end + 2
      out += blank(source.slice(i, stop))
      i = stop
    } else if (c === '\'' || c === '"') {
      let j = i + 1
      while (j < source.length && source[j] !== c && source[j] !== '\n') j += source[j] === '\\' ? 2 : 1
      strings.push(source.slice(i + 1, j))
      out += `'#${strings.length - 1}'`
      i = j + 1
      last = 'str'
    } else if (c === '`') {
      // Template literals hold no import edges; `${…}` code inside them is skipped with the text.
      let j = i + 1
      let depth = 0
      while (j < source.length && !(source[j] === '`' && depth === 0)) {
        if (source[j] === '\\') j++
        else if (source[j] === '$' && source[j + 1] === '{') { depth++; j++ } else if (source[j] === '}' && depth > 0) depth--
        j++
      }
      out += blank(source.slice(i, j + 1))
      i = j + 1
      last = 'str'
    } else if (c === '/' && (REGEX_AFTER.has(last) || REGEX_AFTER_WORDS.has(last))) {
      let j = i + 1
      let inClass = false
      while (j < source.length && source[j] !== '\n' && (inClass || source[j] !== '/')) {
        if (source[j] === '\\') j++
        else if (source[j] === '[') inClass = true
        else if (source[j] === ']') inClass = false
        j++
      }
      while (j + 1 < source.length && /[a-z]/i.test(source[j + 1] as string)) j++ // flags
      out += blank(source.slice(i, j + 1))
      i = j + 1
      last = 'str'
    } else {
      const word = /^[\w$]+/.exec(source.slice(i, i + 64))
      if (word !== null) {
        out += word[0]
        i += word[0].length
        last = word[0]
      } else {
        out += c
        i++
        if (!/\s/.test(c)) last = c
      }
    }
  }
  return { code: out, strings }
}

// On masked code: a string literal is `'#N'`, so these cannot match inside strings or comments.
const STATIC_FROM = /(?:^|[;}\n])\s*(?:import|export)\b[^;'`]*?\bfrom\s*'#(\d+)'/g
const SIDE_EFFECT = /(?:^|[;}\n])\s*import\s*'#(\d+)'/g
const DYNAMIC = /\bimport\s*\(\s*'#(\d+)'\s*[,)]/g

/**
 * Every module specifier a TypeScript source imports or re-exports: `import … from`, `import type
 * … from`, `export … from`, `import '…'`, `import('…')` (also `typeof import('…')` in types).
 * Dynamic imports of anything but a string literal are not edges (they cannot be known).
 */
export function scanImports (source: string): string[] {
  const { code, strings } = mask(source)
  const found: Array<{ at: number, spec: string }> = []
  for (const pattern of [STATIC_FROM, SIDE_EFFECT, DYNAMIC]) {
    for (const match of code.matchAll(pattern)) found.push({ at: match.index, spec: strings[Number(match[1])] as string })
  }
  return found.sort((a, b) => a.at - b.at).map((f) => f.spec)
}

function listSources (dir: string): string[] {
  const files: string[] = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) files.push(...listSources(path))
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) files.push(path)
  }
  return files
}

/** The graph of the `.ts` files under `root`: relative imports only (packages and `node:` are no edges). */
export function readGraph (root: string): ImportGraph {
  const graph: ImportGraph = new Map()
  for (const path of listSources(root).sort()) {
    const file = relative(root, path).split(sep).join('/')
    const edges = scanImports(readFileSync(path, 'utf8'))
      .filter((spec) => spec.startsWith('./') || spec.startsWith('../'))
      .map((spec) => posix.normalize(posix.join(posix.dirname(file), spec)))
    graph.set(file, [...new Set(edges)])
  }
  return graph
}

/** Every cycle, once each: the files of each strongly connected component of more than one file (or a self-import). */
export function findCycles (graph: ImportGraph): string[][] {
  // Tarjan's algorithm; recursion depth is the longest import chain, a few dozen files.
  let counter = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const cycles: string[][] = []
  const visit = (file: string): void => {
    index.set(file, counter)
    low.set(file, counter)
    counter++
    stack.push(file)
    onStack.add(file)
    for (const dep of graph.get(file) ?? []) {
      if (!graph.has(dep)) continue
      if (!index.has(dep)) {
        visit(dep)
        low.set(file, Math.min(low.get(file) as number, low.get(dep) as number))
      } else if (onStack.has(dep)) {
        low.set(file, Math.min(low.get(file) as number, index.get(dep) as number))
      }
    }
    if (low.get(file) !== index.get(file)) return
    const component: string[] = []
    let top: string
    do {
      top = stack.pop() as string
      onStack.delete(top)
      component.push(top)
    } while (top !== file)
    if (component.length > 1 || (graph.get(file) ?? []).includes(file)) cycles.push(component.sort())
  }
  for (const file of graph.keys()) if (!index.has(file)) visit(file)
  return cycles
}

/**
 * The broken rules of a graph: cycles, arrows from a lower layer to a higher one, and files no
 * layer claims. `layerOf` returns undefined for a file outside every layer.
 */
export function checkGraph (graph: ImportGraph, layerOf: (file: string) => Layer | undefined): Problem[] {
  const problems: Problem[] = []
  for (const files of findCycles(graph)) {
    problems.push({ kind: 'cycle', files, message: `import cycle: ${files.join(' → ')} → ${files[0] ?? ''}` })
  }
  for (const [file, deps] of graph) {
    const from = layerOf(file)
    if (from === undefined) {
      problems.push({ kind: 'unlayered', files: [file], message: `${file} is in no layer of the table` })
      continue
    }
    for (const dep of deps) {
      const to = layerOf(dep)
      if (to === undefined || to.name === from.name || to.rank < from.rank) continue
      problems.push({ kind: 'upward', files: [file, dep], message: `upward import: ${file} (${from.name}) → ${dep} (${to.name})` })
    }
  }
  return problems
}
