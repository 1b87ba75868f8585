// The keyed lists of job types (item-types.ts KeyedList) in the SQLite file: one table, `lists`.
import type Database from 'better-sqlite3'
import type { KeyedList, ListEntry } from './item-types.ts'

/**
 * Files made by rawtrigger 0.1 keep the one list it had, the e-mail type's suppressions, in a
 * table of its own: moved into `lists` once, when such a file is opened.
 */
const LEGACY_TABLES: ReadonlyArray<[table: string, list: string, key: string, value: string]> = [['suppressions', 'suppressions', 'email', 'reason']]

/** Moves the rows of tables of earlier versions into `lists` (in one transaction) and drops those tables. */
export function migrateLegacyLists (db: Database.Database): void {
  const has = db.prepare(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`).pluck()
  for (const [table, list, key, value] of LEGACY_TABLES) {
    if (has.get(table) === 0) continue
    db.transaction(() => {
      db.prepare(`INSERT OR IGNORE INTO lists (list, key, value, created_at) SELECT ?, ${key}, ${value}, created_at FROM ${table}`).run(list)
      db.exec(`DROP TABLE ${table}`)
    })()
  }
}

/** The keyed lists of one SQLite file. */
export class SqliteLists {
  readonly #s

  constructor (db: Database.Database) {
    this.#s = {
      entries: db.prepare('SELECT key, value, created_at FROM lists WHERE list = ? AND key > ? ORDER BY key LIMIT ?'),
      put: db.prepare(`INSERT INTO lists (list, key, value, created_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (list, key) DO UPDATE SET value = excluded.value`),
      exists: db.prepare('SELECT 1 FROM lists WHERE list = ? AND key = ?').pluck(),
      remove: db.prepare('DELETE FROM lists WHERE list = ? AND key = ?'),
      lookup: db.prepare('SELECT key, value FROM lists WHERE list = ? AND key IN (SELECT value FROM json_each(?))'),
    }
  }

  /** The list `name` (unguarded: the store wraps it, see list-guard.ts). */
  list (name: string): KeyedList {
    const s = this.#s
    return {
      async entries (limit, after = '') {
        const rows = s.entries.all(name, after, limit) as Array<{ key: string, value: string, created_at: number }>
        return rows.map((r): ListEntry => ({ key: r.key, value: r.value, createdAt: new Date(r.created_at).toISOString() }))
      },
      async put (key, value) {
        const existed = s.exists.get(name, key) !== undefined
        s.put.run(name, key, value, Date.now())
        return !existed
      },
      async remove (key) {
        return s.remove.run(name, key).changes === 1
      },
      async lookup (keys) {
        const out = new Map<string, string>()
        if (keys.length === 0) return out
        for (const r of s.lookup.all(name, JSON.stringify(keys)) as Array<{ key: string, value: string }>) out.set(r.key.toLowerCase(), r.value)
        return out
      },
    }
  }
}
