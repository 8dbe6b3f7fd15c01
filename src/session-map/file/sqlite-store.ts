import { closeSync, existsSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { ChangeCheck, MAX_DIFF_ENTRIES, SessionMapError, VERIFY_AFTER_MS, type SessionMapFailure } from '../store.js';
import { changesSince, countLines, DEFAULT_KEY_TYPE, GALAXY_DEFAULT_INFO, KEY_TYPE_MARK, LastRowWins, splitHostPort } from '../rows.js';
import type { FileMap, MapAnswer, MapChanges, MapRead, MapRouting } from '../store.js';
import { RowLedger } from './sqlite-ledger.js';

/**
 * How long one read may wait for Galaxy's writer. better-sqlite3 waits by
 * blocking the thread, so this is kept short: a busy read is retried later
 * by the reloader instead of stalling requests.
 */
const BUSY_TIMEOUT_MS = 50;

/**
 * Rows per statement of a whole read. One statement for 100,000 rows makes
 * SQLite grow one buffer to 16 MiB, which the C allocator then keeps for good;
 * chunks of this size reuse a buffer of a few hundred KiB. All chunks are
 * read in one read transaction.
 */
export const WHOLE_READ_CHUNK = 4096;

/** SQLite's page cache for our connection, in KiB (a whole read passes through it; the OS caches the file). */
const PAGE_CACHE_KIB = 1024;

/** A column's text for a row line: NULL as empty (rows.ts then says why the row is skipped). */
const plain = (column: string): string => `ifnull(${column}, '')`;
/** The same, with a value holding a newline replaced by the \x01 that no check accepts. */
const sanitised = (column: string): string => `CASE WHEN instr(ifnull(${column}, ''), char(10)) THEN char(1) ELSE ifnull(${column}, '') END`;

/**
 * One gxproxy2 row as a raw row line (rows.ts), built by SQLite itself. A tab
 * inside a value needs no care: whatever follows the second tab is the port,
 * which then is not a number, so the row is skipped. A newline would split a
 * row in two, so whole reads compare the row count (see `readWholeTable`).
 */
function gxproxy2Line(value: (column: string) => string): string {
  return `${['key', 'host', 'port'].map(value).join(' || char(9) || ')} || char(10)`;
}

/** True when `key` has a one-column unique index (Galaxy's PRIMARY KEY): keys cannot repeat. */
const KEY_IS_UNIQUE = `SELECT count(*) FROM pragma_index_list('gxproxy2') AS il
  WHERE il."unique" AND (SELECT group_concat(name) FROM pragma_index_info(il.name)) = 'key'`;

/**
 * One gxitproxy row as a raw row line (rows.ts). The two values nearly every
 * row holds, Galaxy's key type and Galaxy's default `info`, are written in
 * their short forms: a third of the text to build, send and compare at
 * 100,000 entry points.
 */
function gxitproxyLine(value: (column: string) => string): string {
  const keyType = `CASE key_type WHEN '${DEFAULT_KEY_TYPE}' THEN '${KEY_TYPE_MARK}' ELSE ${value('key_type')} END`;
  const info = `CASE info WHEN '${GALAXY_DEFAULT_INFO}' THEN '' ELSE replace(ifnull(info, ''), char(10), ' ') END`;
  return `${[value('"key"'), keyType, value('token'), value('host'), value('port'), info].join(' || char(9) || ')} || char(10)`;
}

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
  /** A descriptor of the file for its header (commitCounter), opened and closed with the connection. */
  private headerFd: number | undefined;
  /** What the store last answered, for answers of changes; undefined: the next answer is whole. */
  private ledger: RowLedger | undefined;
  /**
   * The last answer's rows when it left no ledger (older Galaxy's `gxproxy`
   * table, WAL mode), which the next whole read is compared with (changesSince).
   */
  private lastRows: MapRead | undefined;
  /** When changes read on their own (the blind spot below) are next checked by a whole read. */
  private readonly check: ChangeCheck;
  /** Reads of the whole table, and of the changes alone (tests, benches). */
  readonly reads = { whole: 0, changes: 0 };

  /** `verifyAfterMs` (tests) replaces VERIFY_AFTER_MS. */
  constructor(
    readonly path: string,
    verifyAfterMs = VERIFY_AFTER_MS,
  ) {
    this.check = new ChangeCheck(verifyAfterMs);
  }

  version(): string | undefined {
    // Changes read on their own are due for their check: a read, whatever the file says.
    if (this.check.due) return undefined;
    try {
      const id = fileIdentity(this.path);
      if (id === undefined) {
        this.close();
        return undefined;
      }
      return `${id}:${this.connection(id).pragma('data_version', { simple: true }) as number}`;
    } catch {
      // The ledger stays: it holds while the file stays the same file (its `file` says).
      this.disconnect();
      return undefined; // let read() produce the real error
    }
  }

  /**
   * The whole table (`whole`), or what changed since the last answer. The
   * changes are read on their own when they can be (readTableChanges); otherwise
   * the whole table is read and answered as the changes against the ledger,
   * by rowid, unless more than MAX_DIFF_ENTRIES rows changed. Without a
   * ledger (older Galaxy's `gxproxy`; WAL mode, where SQLite keeps no commit
   * counter and every change is a whole read) the rows are compared with the
   * last answer's (changesSince). A table whose identities may repeat is
   * always answered whole.
   */
  read(whole: boolean): MapAnswer {
    const ledger = this.ledger;
    const last = this.lastRows;
    this.ledger = undefined; // until this read has succeeded
    this.lastRows = undefined;
    try {
      const id = this.existingFile();
      const db = this.connection(id);
      // One read transaction, so the table list and the rows agree.
      return db.transaction((): MapAnswer => {
        const table = this.table(db);
        if (table === 'gxproxy') {
          const read = readOlderTable(db);
          this.lastRows = read;
          return changesSince(last, read, whole);
        }
        const before = ledger?.table === table.name ? ledger : undefined;
        if (!whole && before !== undefined && !this.check.due && before.file === sameFile(id)) {
          const changes = readTableChanges(db, table, before, () => this.commitCounter());
          if (changes !== undefined) {
            this.ledger = before;
            this.reads.changes++;
            this.check.changesRead(changes);
            return changes;
          }
        }
        const { read, ledger: after } = readWholeTable(db, table, sameFile(id), () => this.commitCounter());
        this.reads.whole++;
        this.check.wholeRead();
        this.ledger = after;
        if (after === undefined) {
          this.lastRows = read;
          return changesSince(last, read, whole);
        }
        const changes = whole || before === undefined ? undefined : before.changesTo(after, MAX_DIFF_ENTRIES);
        return changes === undefined ? read : { kind: 'changes', format: read.format, routing: read.routing, ...changes };
      }).deferred();
    } catch (err) {
      const error = this.translate(err);
      // A busy database failed the read before it recorded anything: the last answer stands.
      if (error.failure === 'busy') {
        this.ledger = ledger;
        this.lastRows = last;
      }
      throw error;
    }
  }

  /** The file's identity; throws `missing` when there is no file. */
  private existingFile(): string {
    const id = fileIdentity(this.path);
    if (id === undefined) {
      this.close();
      throw new SessionMapError('missing', this.path, `session map ${this.path} does not exist`);
    }
    return id;
  }

  /** The table a read uses (inside the read transaction). */
  private table(db: Database.Database): WholeTable | 'gxproxy' {
    const tables = db.prepare(TABLES).pluck().all() as string[];
    if (tables.includes('gxproxy2')) return CURRENT_TABLE;
    if (tables.includes('gxproxy')) return 'gxproxy';
    if (tables.includes('gxitproxy')) return ENTRY_POINT_TABLE;
    throw new SessionMapError('no-table', this.path, `session map ${this.path} has no gxproxy2, gxproxy or gxitproxy table yet`);
  }

  close(): void {
    this.disconnect();
    this.ledger = undefined;
    this.lastRows = undefined;
  }

  /** Closes the connection but keeps the ledger: it stays good while the file stays the same file (its `file` says). */
  private disconnect(): void {
    this.db?.close();
    this.db = undefined;
    this.fileId = undefined;
    // Only now: closing any descriptor of the file drops every POSIX lock this
    // process holds on it, SQLite's shared lock of a read under way included.
    if (this.headerFd !== undefined) closeSync(this.headerFd);
    this.headerFd = undefined;
  }

  /**
   * The file change counter of a database in rollback-journal mode (Galaxy's
   * default): SQLite adds one to it for every transaction that changes the
   * file, so it counts Galaxy's commits. Undefined in WAL mode, where SQLite
   * does not keep it, and when the header cannot be read: no reads of changes
   * then. Called inside a read transaction, while the shared lock keeps
   * writers from changing the file, through a descriptor opened with the
   * connection and closed with it, never in between (see disconnect).
   */
  private commitCounter(): number | undefined {
    try {
      if (this.headerFd === undefined) return undefined;
      const header = Buffer.alloc(28);
      if (readSync(this.headerFd, header, 0, header.length, 0) !== header.length) return undefined;
      // Offsets 18 and 19: file format write and read versions, 1 for rollback journal, 2 for WAL.
      if (header[18] !== 1 || header[19] !== 1) return undefined;
      return header.readUInt32BE(24);
    } catch {
      return undefined;
    }
  }

  private connection(id: string): Database.Database {
    if (this.db !== undefined && id === this.fileId) return this.db;
    this.disconnect();
    this.db = new Database(this.path, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
    // The connection is opened again after each rollback-journal commit, so a
    // large page cache buys nothing but memory (SQLite's default: 16 MiB).
    this.db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
    this.fileId = id;
    this.headerFd = openSameFile(this.path, id);
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
  readonly name: string;
  readonly format: string;
  readonly routing: MapRouting;
  /**
   * `count(*)`, the row lines and the rowids of the next WHOLE_READ_CHUNK rows
   * from a rowid on, in rowid order (fast; a newline in a value splits a row).
   */
  readonly rows: string;
  /** The same with values holding a newline made unusable (slower; used when the count shows a split). */
  readonly sanitised: string;
  /** Whether the identity has a unique index. */
  readonly unique: string;
  /** How many leading fields of a row line make its identity. */
  readonly identityFields: 1 | 2;
  /** The statements of a read of changes (readTableChanges). */
  readonly count: string;
  readonly max: string;
  /** The row line at one rowid (values with a newline made unusable, as in every query below). */
  readonly lineAt: string;
  /** `count(*)` of the rows past a rowid. */
  readonly tailCount: string;
  /** `rowid TAB row line` for each row past a rowid (sorted by rowid afterwards). */
  readonly tail: string;
  /** Every rowid up to a rowid, comma-separated, in any order. */
  readonly rowidsUpTo: string;
}

function wholeTable(name: string, format: string, routing: MapRouting, line: (value: (c: string) => string) => string, unique: string, identityFields: 1 | 2): WholeTable {
  return {
    name,
    format,
    routing,
    rows: `SELECT count(*), group_concat(line, ''), group_concat(id) FROM (SELECT rowid AS id, ${line(plain)} AS line FROM ${name} WHERE rowid >= ? ORDER BY rowid LIMIT ${WHOLE_READ_CHUNK})`,
    sanitised: `SELECT count(*), group_concat(line, ''), group_concat(id) FROM (SELECT rowid AS id, ${line(sanitised)} AS line FROM ${name} WHERE rowid >= ? ORDER BY rowid LIMIT ${WHOLE_READ_CHUNK})`,
    unique,
    identityFields,
    count: `SELECT count(*) FROM ${name}`,
    max: `SELECT ifnull(max(rowid), 0) FROM ${name}`,
    lineAt: `SELECT ${line(sanitised)} FROM ${name} WHERE rowid = ?`,
    tailCount: `SELECT count(*) FROM ${name} WHERE rowid > ?`,
    tail: `SELECT group_concat(rowid || char(9) || ${line(sanitised)}, '') FROM ${name} WHERE rowid > ?`,
    rowidsUpTo: `SELECT group_concat(rowid) FROM ${name} WHERE rowid <= ?`,
  };
}

/** Galaxy 17.05 and later: `gxproxy2`. */
const CURRENT_TABLE = wholeTable('gxproxy2', 'sqlite gxproxy2', 'cookie', gxproxy2Line, KEY_IS_UNIQUE, 1);

/** Galaxy's Interactive Tools map (19.09 and later): `gxitproxy`, keyed by (key, key_type). */
const ENTRY_POINT_TABLE = wholeTable('gxitproxy', 'sqlite gxitproxy', 'entry-point', gxitproxyLine, GXITPROXY_IDENTITY_IS_UNIQUE_SQL, 2);

/** A whole read, and the ledger for reads of changes after it (when identities cannot repeat). */
function readWholeTable(
  db: Database.Database,
  table: WholeTable,
  fileId: string,
  counter: () => number | undefined,
): { read: MapRead; ledger: RowLedger | undefined } {
  const fast = db.prepare(table.rows).raw(true);
  const slow = db.prepare(table.sanitised).raw(true);
  const chunks: string[] = [];
  const rowidChunks: string[] = [];
  // Rowids are 64-bit and may be negative (an admin's explicit rowid): counted as BigInt.
  for (let from = -(2n ** 63n); ; ) {
    let [count, rows, rowids] = fast.get(from) as [number, string | null, string | null];
    if (count === 0) break;
    if (countLines(rows ?? '') !== count) [count, rows, rowids] = slow.get(from) as [number, string | null, string | null];
    chunks.push(rows ?? '');
    rowidChunks.push(rowids ?? '');
    if (count < WHOLE_READ_CHUNK) break;
    from = BigInt(rowids!.slice(rowids!.lastIndexOf(',') + 1)) + 1n;
  }
  const uniqueKeys = (db.prepare(table.unique).pluck().get() as number) > 0;
  const read: MapRead = { kind: 'whole', format: table.format, routing: table.routing, rows: flat(chunks.join('')), uniqueKeys, skipped: new Map() };
  // Read under the same shared lock as the rows (taken by the first SELECT): no commit can come between.
  const commits = counter();
  // Without a commit counter (WAL mode) no change can be read alone: the
  // store compares whole reads' rows instead, which costs less than a ledger.
  if (commits === undefined || !uniqueKeys) return { read, ledger: undefined };
  const rowids = parseRowids(rowidChunks.join(','));
  const ledger = rowids === undefined ? undefined : new RowLedger(table.name, fileId, commits, read.rows, rowids, table.identityFields);
  return { read, ledger };
}


/**
 * `text` as one flat string, not a tree of the pieces it was joined from:
 * every later look at it (indexOf, slices, the comparison with the next
 * read) would flatten it anyway, once per copy.
 */
function flat(text: string): string {
  // A search flattens the string in place (V8 keeps the flat form).
  text.indexOf('\u0000');
  return text;
}

/** Comma-separated rowids (group_concat) as numbers. */
function parseRowids(list: string | null): Float64Array | undefined {
  if (list === null || list === '') return new Float64Array(0);
  const parts = list.split(',');
  const out = new Float64Array(parts.length);
  for (let i = 0; i < parts.length; i++) {
    out[i] = Number(parts[i]);
    // Past 2^53 a rowid cannot be told exactly as a number: no ledger, whole reads.
    if (!Number.isSafeInteger(out[i])) return undefined;
  }
  return out;
}

/** Most rows a read of changes takes (past it, a whole read): what the route table takes as a diff at most. */
const MAX_CHANGED_ROWS = MAX_DIFF_ENTRIES;

/**
 * The changes since `ledger`, read without reading the whole table, and
 * recorded in it: Galaxy's writers DELETE a row and INSERT it again, so a new or
 * replaced row has a rowid past the highest one read so far. One read
 * transaction fetches those rows, `count(*)`, the highest rowid, the row at
 * the highest rowid read before and the file change counter (SQLite's count
 * of commits), and the ledger (sqlite-ledger.ts) says which earlier rows the
 * new ones replaced. Anything those figures do not account for gives
 * undefined, and the store reads the whole table:
 *
 * - rows deleted beyond the replaced ones are found by their rowids (a
 *   rowid-only scan), and must then account for the count exactly;
 * - more commits than rows added, replaced or deleted: a commit changed rows
 *   in place (an UPDATE), or did nothing the checks can see;
 * - a lower highest rowid, or another row at the old highest rowid
 *   (VACUUM renumbering, a rowid used again after the top row was deleted);
 * - WAL mode (SQLite keeps no change counter there), another file or table,
 *   a row whose identity cannot be told, more than MAX_CHANGED_ROWS rows.
 *
 * Blind spot, covered by the store's periodic whole read (ChangeCheck): one
 * transaction that both changes rows in place and adds or deletes rows
 * (Galaxy never writes one; an admin's script may).
 */
function readTableChanges(db: Database.Database, table: WholeTable, ledger: RowLedger, counter: () => number | undefined): MapChanges | undefined {
  const count = db.prepare(table.count).pluck().get() as number;
  const commits = counter();
  if (commits === undefined || ledger.commits === undefined || commits < ledger.commits) return undefined;
  const max = db.prepare(table.max).pluck().get() as number;
  if (max < ledger.max) return undefined;
  if ((db.prepare(table.lineAt).pluck().get(ledger.max) as string | undefined) !== ledger.lineAt(ledger.max)) return undefined;
  const tailCount = db.prepare(table.tailCount).pluck().get(ledger.max) as number;
  if (tailCount > MAX_CHANGED_ROWS) return undefined;
  const tail = tailCount === 0 ? [] : parseTail(db.prepare(table.tail).pluck().get(ledger.max) as string);
  if (tail === undefined || tail.length !== tailCount) return undefined;

  // The earlier row of each identity in the tail is gone: identities cannot repeat.
  const replaced: number[] = [];
  const seen = new Set<string>();
  for (const [, line] of tail) {
    const identity = identityOf(line, ledger.identityFields);
    if (identity === undefined || seen.has(identity)) return undefined;
    seen.add(identity);
    const rowid = ledger.rowidOf(identity);
    if (rowid !== undefined) replaced.push(rowid);
  }
  let removed = replaced;
  const expected = ledger.count + tail.length - replaced.length;
  if (count > expected) return undefined; // rows below the highest rowid that the ledger does not know
  if (count < expected) {
    // Other rows were deleted: which ones, by their rowids.
    const listed = parseRowids(db.prepare(table.rowidsUpTo).pluck().get(ledger.max) as string | null);
    if (listed === undefined) return undefined;
    const now = new Set(listed);
    removed = [];
    for (const rowid of ledger.liveRowids()) if (!now.has(rowid)) removed.push(rowid);
    if (removed.length > MAX_CHANGED_ROWS || ledger.count - removed.length + tail.length !== count) return undefined;
    const gone = new Set(removed);
    if (!replaced.every((r) => gone.has(r))) return undefined;
  } else {
    for (const rowid of replaced) if (db.prepare(table.lineAt).pluck().get(rowid) !== undefined) return undefined;
  }
  // Each of Galaxy's commits adds, replaces or deletes a row. A commit that
  // shows in none of them changed rows in place (an UPDATE): a whole read.
  // No commit and nothing shown: nothing changed (the file's times moved, or
  // the store was asked again after a read that already saw the commit).
  const shown = tail.length + removed.length - replaced.length;
  if (commits - ledger.commits > shown) return undefined;

  const removedRows = removed.map((rowid) => ledger.lineAt(rowid) ?? '').join('');
  ledger.record(removed, tail, count, max, commits);
  return { kind: 'changes', format: table.format, routing: table.routing, removed: removedRows, inserted: tail.map(([, line]) => line).join('') };
}

/** `rowid TAB row LF` lines as [rowid, row with its LF]; undefined when one is not of that form. */
function parseTail(text: string | null): [number, string][] | undefined {
  const rows: [number, string][] = [];
  let at = 0;
  const all = text ?? '';
  while (at < all.length) {
    const tab = all.indexOf('\t', at);
    const end = all.indexOf('\n', at);
    if (tab < 0 || end < tab) return undefined;
    const rowid = Number(all.slice(at, tab));
    if (!Number.isSafeInteger(rowid)) return undefined;
    rows.push([rowid, all.slice(tab + 1, end + 1)]);
    at = end + 1;
  }
  // A whole read lists rows in rowid order; so must the rows read as changes.
  return rows.sort((a, b) => a[0] - b[0]);
}

/** A row's identity fields with the TAB after them, or undefined when they cannot identify a row (empty, unusable). */
function identityOf(line: string, fields: 1 | 2): string | undefined {
  const first = line.indexOf('\t');
  const end = fields === 1 ? first : line.indexOf('\t', first + 1);
  if (first <= 0 || end < 0) return undefined;
  const identity = line.slice(0, end + 1);
  // eslint-disable-next-line no-control-regex -- the unusable-value mark \x01 (rows.ts); KEY_TYPE_MARK \x02 is an identity
  return /[\u0000\u0001\n]/.test(identity) ? undefined : identity;
}

/** Older Galaxy: `gxproxy (key text, secret text)`, key `host:port`, secret the cookie value. */
function readOlderTable(db: Database.Database): MapRead {
  // Older Galaxy only ever inserted: a cookie registered again has several rows, the last one counts.
  const rows = new LastRowWins();
  for (const [secret, hostPort] of db.prepare('SELECT secret, key FROM gxproxy ORDER BY rowid').raw(true).iterate() as Iterable<[unknown, unknown]>) {
    const { host, port } = splitHostPort(hostPort);
    rows.add(secret, host, port);
  }
  return { kind: 'whole', format: 'sqlite gxproxy', routing: 'cookie', rows: rows.rows(), uniqueKeys: true, skipped: new Map() };
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

/** A read-only descriptor of `path` if it is still the file `id` names (it may have been replaced since); else undefined. */
function openSameFile(path: string, id: string): number | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const st = fstatSync(fd, { bigint: true });
    if (`${st.dev}:${st.ino}:${st.birthtimeNs}` === sameFile(id)) return fd;
  } catch {
    // no counter: every change is then a whole read
  }
  // Not the connection's file. Closing a descriptor of another file drops no lock of ours.
  if (fd !== undefined) closeSync(fd);
  return undefined;
}

/** The part of a file identity that stays while the file is the same file (commits move the change time). */
function sameFile(id: string): string {
  return id.slice(0, id.lastIndexOf(':'));
}
