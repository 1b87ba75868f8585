// Progress on stderr: a line rewritten in place on a terminal, one line per phase otherwise.
/** Reports progress: done so far out of the total. */
export type OnProgress = (done: number, total: number) => void

export interface Phase {
  onProgress: OnProgress
  /** Ends the phase with a closing note (`3500 calls in 1.2 s`). */
  done: (note: string) => void
}

export function phase (label: string): Phase {
  const tty = process.stderr.isTTY
  const start = performance.now()
  if (!tty) process.stderr.write(`… ${label}\n`)
  return {
    onProgress (done, total) {
      if (!tty) return
      const pct = total === 0 ? 100 : Math.floor((done / total) * 100)
      process.stderr.write(`\r\x1b[K… ${label}  ${done}/${total} (${pct}%)`)
    },
    done (note) {
      const seconds = ((performance.now() - start) / 1000).toFixed(1)
      process.stderr.write(`${tty ? '\r\x1b[K' : ''}✓ ${label}: ${note} (${seconds} s)\n`)
    },
  }
}
