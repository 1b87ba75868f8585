// The tables the scripts print: columns aligned for a terminal, or Markdown rows that paste into
// BENCHMARKS.md as they are.

/** Rows padded to their columns' widths; `right(i)` says which columns align right. */
export function aligned (rows: readonly string[][], right: (column: number) => boolean, gap = '  '): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? []
  return rows.map((r) => r.map((cell, i) => (right(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0))).join(gap).trimEnd())
}

/** A Markdown table: the header, the alignment row as given (`|---|--:|`), one line per row. */
export function markdown (header: readonly string[], align: string, rows: ReadonlyArray<ReadonlyArray<string | number>>): string[] {
  const line = (cells: ReadonlyArray<string | number>): string => `| ${cells.join(' | ')} |`
  return [line(header), align, ...rows.map(line)]
}
