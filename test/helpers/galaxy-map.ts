import { closeSync, openSync, unlinkSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';

/** A temp directory removed in t.after. */
export function tempDir(prefix = 'gie-test-'): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Writes the session map exactly as Galaxy does (lib/galaxy/web/proxy):
 * exclusive `<map>.lock`, open, CREATE TABLE (error ignored), DELETE, INSERT,
 * commit, close, remove the lock. A fresh connection per write, like Galaxy.
 */
export class GalaxySqliteWriter {
  constructor(readonly path: string) {}

  private withLock<T>(fn: (db: Database.Database) => T): T {
    const lock = `${this.path}.lock`;
    const fd = openSync(lock, 'wx');
    try {
      const db = new Database(this.path);
      try {
        try {
          db.exec(
            'CREATE TABLE gxproxy2 (key text PRIMARY KEY, host text, port integer, container_ids text, container_interface text)',
          );
        } catch {
          // "table gxproxy2 already exists": Galaxy ignores it too.
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
