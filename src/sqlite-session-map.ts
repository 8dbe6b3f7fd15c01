import { statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { SessionMapError, type SessionMapFailure } from './errors.js';
import { invalidTargetReason, SkipCounter, type SessionMapSnapshot, type SessionMapSource, type Target } from './session-map.js';

/**
 * How long one read may wait for Galaxy's writer. better-sqlite3 waits by
 * blocking the thread, so this is kept short: a busy read is retried later
 * by the reloader instead of stalling requests.
 */
const BUSY_TIMEOUT_MS = 50;

/**
 * Galaxy's SQLite session map (table `gxproxy2`, Galaxy 17.05 and later).
 *
 * The connection is read-only and kept open between reads so that
 * `PRAGMA data_version` can tell cheaply whether Galaxy committed anything;
 * it is reopened when the file is replaced (another inode) or deleted.
 */
export class SqliteSessionMap implements SessionMapSource {
  private db: Database.Database | undefined;
  private fileId: string | undefined;
  private readVersion: number | undefined;

  constructor(readonly path: string) {}

  hasChanged(): boolean {
    if (this.readVersion === undefined) return true;
    const id = this.currentFileId();
    if (id !== this.fileId) return true;
    try {
      return this.dataVersion() !== this.readVersion;
    } catch {
      return true; // let read() produce the real error
    }
  }

  read(): SessionMapSnapshot {
    const db = this.connection();
    try {
      // Version first: a commit between the two statements only causes one
      // extra reload, never a missed one.
      const version = this.dataVersion();
      const rows = db.prepare('SELECT key, host, port FROM gxproxy2').raw(true).all() as unknown[][];
      const routes = new Map<string, Target>();
      const skipped = new SkipCounter();
      for (const [key, host, port] of rows) {
        if (typeof key !== 'string' || key.length === 0) {
          skipped.add('missing key');
          continue;
        }
        const reason = invalidTargetReason(host, port);
        if (reason !== undefined) {
          skipped.add(reason);
          continue;
        }
        routes.set(key, { host: host as string, port: Number(port) });
      }
      this.readVersion = version;
      return { routes, format: 'sqlite gxproxy2', skipped: skipped.byReason };
    } catch (err) {
      this.readVersion = undefined;
      throw this.translate(err);
    }
  }

  close(): void {
    this.db?.close();
    this.db = undefined;
    this.fileId = undefined;
    this.readVersion = undefined;
  }

  private dataVersion(): number {
    return this.connection().pragma('data_version', { simple: true }) as number;
  }

  /** Identity of the file on disk, or undefined when it does not exist. */
  private currentFileId(): string | undefined {
    try {
      const st = statSync(this.path);
      return `${st.dev}:${st.ino}`;
    } catch {
      return undefined;
    }
  }

  private connection(): Database.Database {
    const id = this.currentFileId();
    if (id === undefined) {
      this.close();
      throw new SessionMapError('missing', this.path, `session map ${this.path} does not exist`);
    }
    if (this.db !== undefined && id === this.fileId) return this.db;
    this.close();
    try {
      this.db = new Database(this.path, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
      this.fileId = id;
      return this.db;
    } catch (err) {
      throw this.translate(err);
    }
  }

  private translate(err: unknown): SessionMapError {
    if (err instanceof SessionMapError) return err;
    const code = (err as { code?: string }).code ?? '';
    const message = (err as Error).message ?? String(err);
    let failure: SessionMapFailure = 'unreadable';
    if (/no such table/i.test(message)) failure = 'no-table';
    else if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) failure = 'busy';
    else if (code.startsWith('SQLITE_NOTADB') || code.startsWith('SQLITE_CORRUPT')) failure = 'corrupt';
    else if (code.startsWith('SQLITE_CANTOPEN') && this.currentFileId() === undefined) failure = 'missing';
    if (failure !== 'busy' && failure !== 'no-table') this.close();
    return new SessionMapError(failure, this.path, `session map ${this.path}: ${message}`, { cause: err });
  }
}
