import { closeSync, openSync, unlinkSync, mkdtempSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';

/** A temp directory removed in t.after. */
export function tempDir(prefix = 'gie-test-'): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Galaxy's CREATE TABLE for the current map (17.05 and later). */
export const GXPROXY2 =
  'CREATE TABLE gxproxy2 (key text PRIMARY KEY, host text, port integer, container_ids text, container_interface text)';
/** Older Galaxy's table: key `host:port`, secret the cookie (its PRIMARY_KEY typo is a type name, not a constraint). */
export const GXPROXY = 'CREATE TABLE gxproxy (key text PRIMARY_KEY, secret text)';

/**
 * Galaxy's write discipline: exclusive `<map>.lock`, a fresh connection, the
 * CREATE TABLE tried with its error ignored, the change, commit, close, and
 * the lock removed.
 */
function withGalaxyLock<T>(path: string, createTable: string, fn: (db: Database.Database) => T): T {
  const lock = `${path}.lock`;
  const fd = openSync(lock, 'wx');
  try {
    const db = new Database(path);
    try {
      try {
        db.exec(createTable);
      } catch {
        // "table ... already exists": Galaxy ignores it too.
      }
      return fn(db);
    } finally {
      db.close();
    }
  } finally {
    closeSync(fd);
    unlinkSync(lock);
  }
}

/**
 * Writes the session map exactly as Galaxy does (lib/galaxy/web/proxy):
 * exclusive `<map>.lock`, open, CREATE TABLE (error ignored), DELETE, INSERT,
 * commit, close, remove the lock. A fresh connection per write, like Galaxy.
 */
export class GalaxySqliteWriter {
  constructor(readonly path: string) {}

  private withLock<T>(fn: (db: Database.Database) => T): T {
    return withGalaxyLock(this.path, GXPROXY2, fn);
  }

  /** Galaxy's add_entry: DELETE then INSERT in one transaction. */
  addSession(key: string, host: string, port: number, containerIds: string[] = ['c0ffee']): void {
    this.withLock((db) => {
      db.transaction(() => {
        db.prepare('DELETE FROM gxproxy2 WHERE key=?').run(key);
        db.prepare(
          'INSERT INTO gxproxy2 (key, host, port, container_ids, container_interface) VALUES (?,?,?,?,?)',
        ).run(key, host, port, JSON.stringify(containerIds), null);
      })();
    });
  }

  /** Many sessions in one transaction (fixtures for scale tests). */
  addMany(entries: Iterable<[string, string, number]>): void {
    this.withLock((db) => {
      const ins = db.prepare(
        'INSERT OR REPLACE INTO gxproxy2 (key, host, port, container_ids, container_interface) VALUES (?,?,?,?,?)',
      );
      db.transaction(() => {
        for (const [k, h, p] of entries) ins.run(k, h, p, '[]', null);
      })();
    });
  }

  /** Galaxy's update after a container moved. */
  updateSession(key: string, host: string, port: number): void {
    this.withLock((db) => db.prepare('UPDATE gxproxy2 SET host=?, port=? WHERE key=?').run(host, port, key));
  }

  removeSession(key: string): void {
    this.withLock((db) => db.prepare('DELETE FROM gxproxy2 WHERE key=?').run(key));
  }

  /** Runs arbitrary SQL on a fresh connection (bad rows, other tables). */
  exec(sql: string): void {
    this.withLock((db) => db.exec(sql));
  }
}

/**
 * Older Galaxy's writer (before 17.05): table `gxproxy (key 'host:port',
 * secret cookie)`, one INSERT per container, same lock discipline.
 */
export class OlderGalaxySqliteWriter {
  constructor(readonly path: string) {}

  addSession(cookie: string, host: string, port: number): void {
    withGalaxyLock(this.path, GXPROXY, (db) => {
      db.prepare('INSERT INTO gxproxy (key, secret) VALUES (?, ?)').run(`${host}:${port}`, cookie);
    });
  }

  removeSession(cookie: string): void {
    withGalaxyLock(this.path, GXPROXY, (db) => db.prepare('DELETE FROM gxproxy WHERE secret=?').run(cookie));
  }
}

/**
 * A complete map file written in one transaction (table and rows), as a tool
 * that builds the file elsewhere and renames it into place would.
 */
export function writeSqliteMapFile(path: string, table: 'gxproxy2' | 'gxproxy', sessions: Iterable<[string, string, number]>): void {
  const db = new Database(path);
  try {
    db.transaction(() => {
      db.exec(table === 'gxproxy2' ? GXPROXY2 : GXPROXY);
      const insert =
        table === 'gxproxy2'
          ? db.prepare('INSERT INTO gxproxy2 (key, host, port, container_ids, container_interface) VALUES (?, ?, ?, ?, ?)')
          : db.prepare('INSERT INTO gxproxy (secret, key) VALUES (?, ?)');
      for (const [key, host, port] of sessions) {
        if (table === 'gxproxy2') insert.run(key, host, port, '["c0ffee"]', null);
        else insert.run(key, `${host}:${port}`);
      }
    })();
  } finally {
    db.close();
  }
}

/** Galaxy's current JSON map: `{"<cookie>": {"host", "port", "container_ids", "container_interface"}}`. */
export function galaxyJson(sessions: Iterable<[string, string, number]>): string {
  const map: Record<string, unknown> = {};
  for (const [key, host, port] of sessions) map[key] = { host, port, container_ids: ['c0ffee'], container_interface: null };
  return JSON.stringify(map);
}

/** The oldest JSON map: `{"<host>:<port>": "<cookie>"}`. */
export function oldestGalaxyJson(sessions: Iterable<[string, string, number]>): string {
  const map: Record<string, string> = {};
  for (const [key, host, port] of sessions) map[`${host}:${port}`] = key;
  return JSON.stringify(map);
}

/**
 * Galaxy's JSON write: open with truncation, write, close (not atomic). With
 * `midway`, the first half is written, `midway` is awaited (a reader can see
 * the half-written file meanwhile), then the rest.
 */
export async function truncateAndWrite(path: string, text: string, midway?: () => Promise<void>): Promise<void> {
  const fd = openSync(path, 'w');
  try {
    const half = Math.floor(text.length / 2);
    writeSync(fd, text.slice(0, half));
    await midway?.();
    writeSync(fd, text.slice(half));
  } finally {
    closeSync(fd);
  }
}
