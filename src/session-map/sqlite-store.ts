import { existsSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { SessionMapError, type SessionMapFailure } from './store.js';
import { DEFAULT_KEY_TYPE, GALAXY_DEFAULT_INFO, KEY_TYPE_MARK, LastRowWins, splitHostPort } from './rows.js';
import type { FileMap, MapRead, MapRouting } from './store.js';

/**
 * How long one read may wait for Galaxy's writer. better-sqlite3 waits by
 * blocking the thread, so this is kept short: a busy read is retried later
 * by the reloader instead of stalling requests.
 */
const BUSY_TIMEOUT_MS = 50;

/**
 * The whole current table as one string of row lines, built by SQLite itself:
 * about four times faster than fetching 100,000 rows as JavaScript arrays, so
 * the read (and the shared lock it holds against Galaxy's writer) stays short.
 * A tab inside a value needs no care: whatever follows the second tab is the
 * port, which then is not a number, so the row is skipped. A newline would
 * split a row in two, so the row count is compared (see `readCurrentTable`).
 */
const ROWS_GXPROXY2 = `SELECT count(*), group_concat(ifnull(key, '') || char(9) || ifnull(host, '') || char(9) || ifnull(port, '') || char(10), '') FROM gxproxy2`;

/** The same, slower, with every value holding a newline replaced by the \x01 that no check accepts. */
const ROWS_GXPROXY2_SANITISED = `SELECT count(*), group_concat(${['key', 'host', 'port']
  .map((c) => `CASE WHEN instr(ifnull(${c}, ''), char(10)) THEN char(1) ELSE ifnull(${c}, '') END`)
  .join(" || char(9) || ")} || char(10), '') FROM gxproxy2`;

/** True when `key` has a one-column unique index (Galaxy's PRIMARY KEY): keys cannot repeat. */
const KEY_IS_UNIQUE = `SELECT count(*) FROM pragma_index_list('gxproxy2') AS il
  WHERE il."unique" AND (SELECT group_concat(name) FROM pragma_index_info(il.name)) = 'key'`;

/**
 * Every gxitproxy row as raw row lines (rows.ts), built by SQLite itself. The
 * two values nearly every row holds, Galaxy's key type and Galaxy's default
 * `info`, are written in their short forms: a third of the text to build,
 * hand over and compare at 100,000 entry points.
 */
function gxitproxyRowsSql(value: (column: string) => string): string {
  const keyType = `CASE key_type WHEN '${DEFAULT_KEY_TYPE}' THEN '${KEY_TYPE_MARK}' ELSE ${value('key_type')} END`;
  const info = `CASE info WHEN '${GALAXY_DEFAULT_INFO}' THEN '' ELSE replace(ifnull(info, ''), char(10), ' ') END`;
  const fields = [value('"key"'), keyType, value('token'), value('host'), value('port'), info];
  return `SELECT count(*), group_concat(${fields.join(' || char(9) || ')} || char(10), '') FROM gxitproxy`;
}

const GXITPROXY_ROWS_SQL = gxitproxyRowsSql((c) => `ifnull(${c}, '')`);

/** The same with every value that holds a newline replaced by \x01, which no check accepts. */
const GXITPROXY_ROWS_SANITISED_SQL = gxitproxyRowsSql((c) => `CASE WHEN instr(ifnull(${c}, ''), char(10)) THEN char(1) ELSE ifnull(${c}, '') END`);

/** True when (key, key_type) has a unique index (Galaxy's PRIMARY KEY): identities cannot repeat. */
const GXITPROXY_IDENTITY_IS_UNIQUE_SQL = `SELECT count(*) FROM pragma_index_list('gxitproxy') AS il
  WHERE il."unique" AND (SELECT group_concat(name) FROM pragma_index_info(il.name)) IN ('key,key_type', 'key_type,key')`;

const TABLES = `SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('gxproxy2', 'gxproxy', 'gxitproxy')`;

/**
 * Galaxy's SQLite session map: table `gxproxy2` (Galaxy 17.05 and later) or,
 * when only that exists, the older `gxproxy (key 'host:port', secret cookie)`;
 * or, in a file with neither, Galaxy's Interactive Tools map `gxitproxy`.
 * Nothing here writes, so the journal mode Galaxy's file has is never changed.
 *
 * The connection is read-only and kept open between reads so that
 * `PRAGMA data_version` tells cheaply whether anything was committed, in
 * rollback-journal and WAL mode alike. It is reopened when the file is
 * replaced, deleted or re-created (see `fileIdentity`).
 */
export class SqliteSessionMap implements FileMap {
  private db: Database.Database | undefined;
  private fileId: string | undefined;

  constructor(readonly path: string) {}

  version(): string | undefined {
    try {
      const id = fileIdentity(this.path);
      if (id === undefined) {
        this.close();
        return undefined;
      }
      return `${id}:${this.connection(id).pragma('data_version', { simple: true }) as number}`;
    } catch {
      this.close();
      return undefined; // let read() produce the real error
    }
  }

  read(): MapRead {
    try {
      const id = fileIdentity(this.path);
      if (id === undefined) {
        this.close();
        throw new SessionMapError('missing', this.path, `session map ${this.path} does not exist`);
      }
      const db = this.connection(id);
      // One read transaction, so the table list and the rows agree.
      return db.transaction(() => {
        const tables = db.prepare(TABLES).pluck().all() as string[];
        if (tables.includes('gxproxy2')) return readWholeTable(db, CURRENT_TABLE);
        if (tables.includes('gxproxy')) return readOlderTable(db);
        if (tables.includes('gxitproxy')) return readWholeTable(db, ENTRY_POINT_TABLE);
        throw new SessionMapError('no-table', this.path, `session map ${this.path} has no gxproxy2, gxproxy or gxitproxy table yet`);
      }).deferred();
    } catch (err) {
      throw this.translate(err);
    }
  }

  close(): void {
    this.db?.close();
    this.db = undefined;
    this.fileId = undefined;
  }

  private connection(id: string): Database.Database {
    if (this.db !== undefined && id === this.fileId) return this.db;
    this.close();
    this.db = new Database(this.path, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
    this.fileId = id;
    return this.db;
  }

  private translate(err: unknown): SessionMapError {
    if (err instanceof SessionMapError) return err;
    const code = (err as { code?: string }).code ?? '';
    const message = (err as Error).message ?? String(err);
    let failure: SessionMapFailure = 'unreadable';
    let hint = '';
    if (/no such table/i.test(message)) failure = 'no-table';
    else if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) failure = 'busy';
    else if (code.startsWith('SQLITE_NOTADB') || code.startsWith('SQLITE_CORRUPT')) failure = 'corrupt';
    else if (code.startsWith('SQLITE_CANTOPEN') && !existsSync(this.path)) failure = 'missing';
    else if (code.startsWith('SQLITE_READONLY')) {
      // A WAL-mode database cannot be read unless its -shm file exists or can be created.
      hint = ` (in WAL mode SQLite needs ${this.path}-shm: give the proxy write access to the map's directory, or switch the map back to PRAGMA journal_mode=DELETE)`;
    }
    if (failure !== 'busy' && failure !== 'no-table') this.close();
    return new SessionMapError(failure, this.path, `session map ${this.path}: ${message}${hint}`, { cause: err });
  }
}

/** How a table whose rows SQLite itself turns into row lines is read. */
interface WholeTable {
  readonly format: string;
  readonly routing: MapRouting;
  /** `count(*)` and the row lines in one statement (fast; a newline in a value splits a row). */
  readonly rows: string;
  /** The same with values holding a newline made unusable (slower; used when the count shows a split). */
  readonly sanitised: string;
  /** Whether the identity has a unique index. */
  readonly unique: string;
}

/** Galaxy 17.05 and later: `gxproxy2`. */
const CURRENT_TABLE: WholeTable = {
  format: 'sqlite gxproxy2',
  routing: 'cookie',
  rows: ROWS_GXPROXY2,
  sanitised: ROWS_GXPROXY2_SANITISED,
  unique: KEY_IS_UNIQUE,
};

/** Galaxy's Interactive Tools map (19.09 and later): `gxitproxy`, keyed by (key, key_type). */
const ENTRY_POINT_TABLE: WholeTable = {
  format: 'sqlite gxitproxy',
  routing: 'entry-point',
  rows: GXITPROXY_ROWS_SQL,
  sanitised: GXITPROXY_ROWS_SANITISED_SQL,
  unique: GXITPROXY_IDENTITY_IS_UNIQUE_SQL,
};

function readWholeTable(db: Database.Database, table: WholeTable): MapRead {
  let [count, rows] = db.prepare(table.rows).raw(true).get() as [number, string | null];
  if (countLines(rows ?? '') !== count) [count, rows] = db.prepare(table.sanitised).raw(true).get() as [number, string | null];
  return {
    format: table.format,
    routing: table.routing,
    rows: rows ?? '',
    uniqueKeys: (db.prepare(table.unique).pluck().get() as number) > 0,
    skipped: new Map(),
  };
}

function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/** Older Galaxy: `gxproxy (key text, secret text)`, key `host:port`, secret the cookie value. */
function readOlderTable(db: Database.Database): MapRead {
  // Older Galaxy only ever inserted: a cookie registered again has several rows, the last one counts.
  const rows = new LastRowWins();
  for (const [secret, hostPort] of db.prepare('SELECT secret, key FROM gxproxy ORDER BY rowid').raw(true).iterate() as Iterable<[unknown, unknown]>) {
    const { host, port } = splitHostPort(hostPort);
    rows.add(secret, host, port);
  }
  return { format: 'sqlite gxproxy', routing: 'cookie', rows: rows.rows(), uniqueKeys: true, skipped: new Map() };
}

/**
 * Identity of the file on disk, or undefined when it does not exist (other
 * stat errors, such as a directory without search permission, are thrown).
 * Device and inode tell a replaced file; birth and change times tell a file
 * deleted and re-created under a recycled inode number (the change time also
 * moves on every rollback-journal commit, which only costs a reopen).
 */
function fileIdentity(path: string): string | undefined {
  const st = statSync(path, { bigint: true, throwIfNoEntry: false });
  return st === undefined ? undefined : `${st.dev}:${st.ino}:${st.birthtimeNs}:${st.ctimeNs}`;
}
