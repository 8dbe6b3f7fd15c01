import { closeSync, openSync, unlinkSync } from 'node:fs';
import Database from 'better-sqlite3';

/**
 * Galaxy's Interactive Tools map, `gxitproxy`, written exactly as Galaxy
 * writes it (INTERACTIVE-TOOLS.md §4.2), by both of its writers.
 */

/** SQLAlchemy 2.0's DDL for Galaxy ≥ 24.2's `gxitproxy` Table, verbatim. */
export const GXITPROXY_SQLALCHEMY_DDL =
  'CREATE TABLE gxitproxy ("key" VARCHAR(16) NOT NULL, key_type TEXT NOT NULL, token VARCHAR(32), host TEXT, port INTEGER, info TEXT, PRIMARY KEY ("key", key_type))';

/** Galaxy 19.09–24.1's (and gx-it-proxy's createdb.js) DDL, as `InteractiveToolSqlite.save` runs it. */
export const GXITPROXY_LEGACY_DDL = `CREATE TABLE gxitproxy
                                 (key text,
                                  key_type text,
                                  token text,
                                  host text,
                                  port integer,
                                  info text,
                                  PRIMARY KEY (key, key_type)
                                  )`;

/** The key type Galaxy writes: `entry_point.__class__.__name__.lower()`. */
export const KEY_TYPE = 'interactivetoolentrypoint';

/** One entry point as Galaxy saves it. */
export interface EntryPointWrite {
  key: string;
  keyType?: string;
  token: string;
  host: string | null;
  port: number | null;
  /** The `info` column as stored; default: Galaxy ≥ 23.1's JSON for the two flags below. */
  info?: string | null;
  requiresPathInUrl?: boolean | null;
  requiresPathInHeaderNamed?: string | null;
}

/** Galaxy's `json.dumps({"requires_path_in_url": …, "requires_path_in_header_named": …})`, Python's separators. */
export function galaxyInfo(requiresPathInUrl: boolean | null = false, requiresPathInHeaderNamed: string | null = null): string {
  return `{"requires_path_in_url": ${JSON.stringify(requiresPathInUrl)}, "requires_path_in_header_named": ${JSON.stringify(requiresPathInHeaderNamed)}}`;
}

function values(e: EntryPointWrite): [string, string, string, string | null, number | null, string | null] {
  const info = e.info !== undefined ? e.info : galaxyInfo(e.requiresPathInUrl ?? false, e.requiresPathInHeaderNamed ?? null);
  return [e.key, e.keyType ?? KEY_TYPE, e.token, e.host, e.port, info];
}

/** The writer interface both Galaxy generations share. */
export interface GalaxyItWriter {
  readonly path: string;
  /** `save()`: DELETE of the key's row, INSERT, COMMIT. */
  save(entry: EntryPointWrite): void;
  /** `remove(key=…, key_type=…)`: DELETE, COMMIT. */
  remove(key: string, keyType?: string): void;
  /** Many rows in one transaction (fixtures for scale tests; Galaxy itself writes one at a time). */
  saveMany(entries: Iterable<EntryPointWrite>): void;
  close(): void;
}

const SQLALCHEMY_DELETE = 'DELETE FROM gxitproxy WHERE gxitproxy."key" = ? AND gxitproxy.key_type = ?';
const SQLALCHEMY_INSERT = 'INSERT INTO gxitproxy ("key", key_type, token, host, port, info) VALUES (?, ?, ?, ?, ?, ?)';

/**
 * Galaxy ≥ 24.2 (`InteractiveToolPropagatorSQLAlchemy`, engine
 * `sqlite:///PATH`): one pooled connection that stays open between writes;
 * each save checks for the table (`PRAGMA main.table_info`) and creates it
 * when missing (DDL runs outside a transaction, as pysqlite does), then
 * DELETE + INSERT + COMMIT. No lock file; the file keeps SQLite's default
 * rollback journal. The connection opens on the first write, so the file
 * does not exist before it.
 */
export class SqlAlchemyItWriter implements GalaxyItWriter {
  private db: Database.Database | undefined;

  constructor(readonly path: string) {}

  save(entry: EntryPointWrite): void {
    const db = this.connection();
    this.createTableIfMissing(db);
    db.exec('BEGIN');
    try {
      db.prepare(SQLALCHEMY_DELETE).run(entry.key, entry.keyType ?? KEY_TYPE);
      db.prepare(SQLALCHEMY_INSERT).run(...values(entry));
      db.exec('COMMIT');
    } catch (err) {
      db.exec('ROLLBACK');
      throw err;
    }
  }

  remove(key: string, keyType = KEY_TYPE): void {
    const db = this.connection();
    db.exec('BEGIN');
    db.prepare(SQLALCHEMY_DELETE).run(key, keyType);
    db.exec('COMMIT');
  }

  saveMany(entries: Iterable<EntryPointWrite>): void {
    const db = this.connection();
    this.createTableIfMissing(db);
    const del = db.prepare(SQLALCHEMY_DELETE);
    const ins = db.prepare(SQLALCHEMY_INSERT);
    db.transaction(() => {
      for (const e of entries) {
        del.run(e.key, e.keyType ?? KEY_TYPE);
        ins.run(...values(e));
      }
    })();
  }

  /** Runs SQL on Galaxy's open connection (bad rows, journal mode experiments). */
  exec(sql: string): void {
    this.connection().exec(sql);
  }

  /** The pooled connection, opened on first use like SQLAlchemy's pool. */
  connection(): Database.Database {
    return (this.db ??= new Database(this.path));
  }

  close(): void {
    this.db?.close();
    this.db = undefined;
  }

  private createTableIfMissing(db: Database.Database): void {
    if (db.prepare('PRAGMA main.table_info("gxitproxy")').all().length === 0) db.exec(GXITPROXY_SQLALCHEMY_DDL);
  }
}

/**
 * Galaxy 19.09–24.1 (`InteractiveToolSqlite`): every save and remove under
 * `galaxy.util.filelock.FileLock(PATH)` (`PATH.lock` created with
 * O_CREAT|O_EXCL, removed after), on a fresh connection: CREATE TABLE with
 * its error ignored, DELETE, INSERT, commit, close.
 */
export class LegacyItWriter implements GalaxyItWriter {
  constructor(readonly path: string) {}

  save(entry: EntryPointWrite): void {
    this.locked((db) => {
      db.exec('BEGIN');
      db.prepare('DELETE FROM gxitproxy WHERE key=? and key_type=?').run(entry.key, entry.keyType ?? KEY_TYPE);
      db.prepare(
        `INSERT INTO gxitproxy
                            (key, key_type, token, host, port, info)
                            VALUES (?, ?, ?, ?, ?, ?)`,
      ).run(...values(entry));
      db.exec('COMMIT');
    });
  }

  remove(key: string, keyType = KEY_TYPE): void {
    this.locked((db) => {
      try {
        db.exec('BEGIN');
        db.prepare('DELETE FROM gxitproxy WHERE key=? and key_type=?').run(key, keyType);
        db.exec('COMMIT');
      } catch {
        // No table yet: Galaxy logs "Error removing entry" and carries on.
        if (db.inTransaction) db.exec('ROLLBACK');
      }
    }, false);
  }

  saveMany(entries: Iterable<EntryPointWrite>): void {
    this.locked((db) => {
      const del = db.prepare('DELETE FROM gxitproxy WHERE key=? and key_type=?');
      const ins = db.prepare('INSERT INTO gxitproxy (key, key_type, token, host, port, info) VALUES (?, ?, ?, ?, ?, ?)');
      db.transaction(() => {
        for (const e of entries) {
          del.run(e.key, e.keyType ?? KEY_TYPE);
          ins.run(...values(e));
        }
      })();
    });
  }

  close(): void {
    // A fresh connection per write: nothing stays open.
  }

  private locked(fn: (db: Database.Database) => void, createTable = true): void {
    const lock = `${this.path}.lock`;
    const fd = openSync(lock, 'wx');
    try {
      const db = new Database(this.path);
      try {
        if (createTable) {
          try {
            db.exec(GXITPROXY_LEGACY_DDL);
          } catch {
            // "table gxitproxy already exists": Galaxy ignores it too.
          }
        }
        fn(db);
      } finally {
        db.close();
      }
    } finally {
      closeSync(fd);
      unlinkSync(lock);
    }
  }
}

/** Which of Galaxy's writers: ≥ 24.2 (SQLAlchemy) or 19.09–24.1 (raw sqlite3 under a lock file). */
export type GalaxyItWriterKind = 'sqlalchemy' | 'legacy';

export function galaxyItWriter(kind: GalaxyItWriterKind, path: string): GalaxyItWriter {
  return kind === 'sqlalchemy' ? new SqlAlchemyItWriter(path) : new LegacyItWriter(path);
}

/** The i-th generated entry point's key and token, shaped like Galaxy ≥ 23.1's (lowercase alphanumerics). */
export function entryPointKey(i: number): { key: string; token: string } {
  const base = i.toString(36).padStart(6, '0');
  return { key: `${base}k${'q1dbzr'}`, token: `${base}t${'jnahsc'}` };
}
