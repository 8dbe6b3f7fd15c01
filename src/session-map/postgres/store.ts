import type pg from 'pg';
import { DEFAULT_KEY_TYPE, forEachLine, GALAXY_DEFAULT_INFO, KEY_TYPE_MARK, rawEntryPointIdentity } from '../rows.js';
import { ChangeCheck, MAX_DIFF_ENTRIES, SessionMapError, VERIFY_AFTER_MS, type SessionMapFailure, type ChangeWatch, type ChangeWatchOptions, type MapAnswer, type MapStore, type StoreKind } from '../store.js';
import { acquire, ConnectionLost, detection, HAS_COUNTER, PgConnection, POSTGRES_TUNING, release, type PostgresStatus, type PostgresTuning } from './connection.js';
import { COUNTER } from './trigger.js';

/**
 * Galaxy's Interactive Tools map in PostgreSQL (`interactivetoolsproxy_map`,
 * table `gxitproxy`), behind the map-store seam.
 *
 * Over the one connection per map and thread (connection.ts, shared
 * with the change watch below):
 * - every notification on channel `gxitproxy` (gx-it-proxy's README trigger
 *   or ours, `--install-trigger`) and every poll (`pollIntervalMs`, 0: LISTEN
 *   only) asks for a read; `version()` answers with our trigger's one-row
 *   change counter when it is installed, so that a poll reads one row when
 *   nothing changed;
 * - the first read, and the first after a reconnection (notifications sent
 *   meanwhile are lost), reads the whole table in one statement whose one
 *   value the server builds (the row lines of rows.ts): no per-row parsing
 *   of six values;
 * - every later read reads what changed (readChanges): the rows written
 *   since by their row versions, and, when the count says rows were deleted,
 *   the rows of the buckets that lost some;
 * - every answer after the first is the changes against the store's cache
 *   (what it last answered), a whole read included: a SIGHUP, or more than
 *   MAX_DIFF_ENTRIES changed rows, is answered whole;
 * - on any loss the last good map stays in use (reads fail as
 *   `disconnected`, which the reporter keeps quiet about: the connection
 *   warns once per outage).
 *
 * Nothing here writes to the database: only `--install-trigger` does
 * (trigger.ts).
 */


/** The format of a read, as logs and /health name it. */
const POSTGRES_FORMAT = 'postgresql gxitproxy';
/**
 * The whole table as raw entry-point row lines (rows.ts: `key TAB key_type
 * TAB token TAB host TAB port TAB info LF`, Galaxy's key type and default
 * info in their short forms), built by the server in key order into one
 * text: the proxy receives it as the socket delivers it (requests are served
 * meanwhile) and parses one value, not six per row. A value holding a tab or
 * newline becomes \x01, which no row check accepts; newlines in `info` (the
 * last field) become spaces.
 */
const field = (c: string): string => `CASE WHEN ${c} ~ '[\t\n]' THEN chr(1) ELSE coalesce(${c}, '') END`;
const ENTRY_POINT_FIELDS = [
  field('key'),
  `CASE key_type WHEN '${DEFAULT_KEY_TYPE}' THEN chr(${KEY_TYPE_MARK.charCodeAt(0)}) ELSE ${field('key_type')} END`,
  field('token'),
  field('host'),
  `coalesce(port::text, '')`,
  `CASE info WHEN '${GALAXY_DEFAULT_INFO}' THEN '' ELSE replace(coalesce(info, ''), E'\n', ' ') END`,
];
const ROW_LINE = `${ENTRY_POINT_FIELDS.join(" || E'\\t' || ")} || E'\\n'`;
/**
 * Where the snapshot of a read stands in the server's transaction history:
 * every transaction older than it had ended, so its rows were in that read.
 * (txid_* rather than pg_* names: PostgreSQL 12 has only these.)
 */
const HORIZON = `txid_snapshot_xmin(txid_current_snapshot())::text`;
/** The whole table, with its horizon and row count (one statement: one snapshot). */
const ROWS_QUERY = `SELECT ${HORIZON} AS horizon, count(*)::int AS n,
  coalesce(string_agg(${ROW_LINE}, '' ORDER BY key, key_type), '') AS rows
FROM gxitproxy`;
/**
 * The rows written since a read with horizon $1: a row inserted or updated
 * by a transaction that had not ended by then has an xmin at or after the
 * horizon, i.e. at most as old (age(), in transactions) as the horizon. Both
 * ages count from the same point, so the comparison is exact. A deletion
 * leaves no row to find: the count shows it (see readChanges).
 */
const CHANGED_QUERY = `SELECT ${HORIZON} AS horizon, count(*)::int AS n,
  coalesce(string_agg(${ROW_LINE}, '') FILTER (WHERE age(xmin) <= age(($1::bigint % 4294967296)::text::xid)), '') AS rows
FROM gxitproxy`;

interface RowsRead {
  horizon: string;
  n: number;
  rows: string;
}
/**
 * Rows per bucket, a bucket being the last two characters of the key
 * (Galaxy's keys are random: about 1,300 buckets of alphanumerics). When
 * rows were deleted, the buckets whose count fell say where: only their rows
 * are read again (see readDeletions).
 */
const BUCKET = 'right(key, 2)';
const BUCKET_COUNTS = `SELECT ${BUCKET} AS b, count(*)::int AS n FROM gxitproxy GROUP BY 1`;
const BUCKET_ROWS = `SELECT coalesce(string_agg(${ROW_LINE}, ''), '') AS rows FROM gxitproxy WHERE ${BUCKET} = ANY($1::text[])`;

/**
 * The bucket of a raw row's identity, as BUCKET has it. A key the raw row
 * cannot hold (a tab or newline in it: the row has a stand-in) lands in a
 * bucket the server does not have: its real bucket and this one both differ,
 * and both are read.
 */
function bucketOf(id: string): string {
  const tab = id.indexOf('\t');
  const end = tab < 0 ? id.length : tab;
  const from = Math.max(0, end - 2);
  // Two characters unless a surrogate pair is involved (right() counts code points).
  for (let i = from; i < end; i++) {
    const c = id.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) return [...id.slice(0, end)].slice(-2).join('');
  }
  return id.slice(from, end);
}

/**
 * What a store remembers of its last read, to read only what changed since:
 * the rows by identity, the identities by bucket, and the row count and
 * horizon of that read.
 */
interface Cache {
  /** The connection it was read over: another one (a reconnection) reads in full. */
  readonly epoch: number;
  horizon: string;
  count: number;
  /** Raw row (with its LF) by identity, as last answered. */
  readonly rows: Map<string, string>;
  readonly buckets: Map<string, Set<string>>;
}

function newCache(epoch: number, read: RowsRead, rows: Map<string, string>): Cache {
  const buckets = new Map<string, Set<string>>();
  for (const id of rows.keys()) bucketAdd(buckets, id);
  return { epoch, horizon: read.horizon, count: read.n, rows, buckets };
}

function bucketAdd(buckets: Map<string, Set<string>>, id: string): void {
  const b = bucketOf(id);
  let ids = buckets.get(b);
  if (ids === undefined) buckets.set(b, (ids = new Set()));
  ids.add(id);
}

function bucketDelete(buckets: Map<string, Set<string>>, id: string): void {
  const b = bucketOf(id);
  const ids = buckets.get(b);
  if (ids?.delete(id) === true && ids.size === 0) buckets.delete(b);
}

/** Raw rows (each with its LF) by identity. */
function rowsById(text: string): Map<string, string> {
  const rows = new Map<string, string>();
  forEachLine(text, 0, Infinity, (line) => rows.set(rawEntryPointIdentity(line), `${line}\n`));
  return rows;
}

/**
 * The cache brought up to a whole read (`read`), in place, and what that
 * changed: each row gone or different as it was (`removed`), each new or
 * different row as it is (`inserted`). A row as it was keeps its string, and
 * the bucket sets follow without being built again; the read's own rows are
 * not kept (no second map of every entry point, little garbage).
 */
function refresh(cache: Cache, epoch: number, read: RowsRead): { cache: Cache; removed: string[]; inserted: string[] } {
  const { rows, buckets } = cache;
  const removed: string[] = [];
  const inserted: string[] = [];
  const sizeBefore = rows.size;
  let matched = 0;
  forEachLine(read.rows, 0, Infinity, (line) => {
    const id = rawEntryPointIdentity(line);
    const was = rows.get(id);
    if (was === undefined) {
      rows.set(id, `${line}\n`);
      bucketAdd(buckets, id);
      inserted.push(`${line}\n`);
      return;
    }
    matched++;
    if (was.length !== line.length + 1 || !was.startsWith(line)) {
      rows.set(id, `${line}\n`);
      removed.push(was);
      inserted.push(`${line}\n`);
    }
  });
  if (matched !== sizeBefore || rows.size !== read.n) {
    // Rows gone since (or identities this side cannot tell apart): keep only those of this read.
    const ids = new Set<string>();
    forEachLine(read.rows, 0, Infinity, (line) => ids.add(rawEntryPointIdentity(line)));
    for (const [id, line] of rows) {
      if (!ids.has(id)) {
        removed.push(line);
        rows.delete(id);
        bucketDelete(buckets, id);
      }
    }
  }
  return { cache: { epoch, horizon: read.horizon, count: read.n, rows, buckets }, removed, inserted };
}

/**
 * Takes rows written since (`upserts`, by identity) and rows gone (`gone`)
 * into the cache, and returns them as changes: each removed or replaced row
 * as it was, each new or replacing row as it is.
 */
function edit(cache: Cache, upserts: ReadonlyMap<string, string>, gone: readonly string[]): { removed: string; inserted: string } {
  const removed: string[] = [];
  const inserted: string[] = [];
  for (const id of gone) {
    const line = cache.rows.get(id);
    if (line === undefined) continue;
    removed.push(line);
    cache.rows.delete(id);
    bucketDelete(cache.buckets, id);
  }
  for (const [id, line] of upserts) {
    const before = cache.rows.get(id);
    if (before === line) continue;
    if (before === undefined) bucketAdd(cache.buckets, id);
    else removed.push(before);
    inserted.push(line);
    cache.rows.set(id, line);
  }
  return { removed: removed.join(''), inserted: inserted.join('') };
}

/** Entry points of `upserts` the cache does not hold. */
function newIn(cache: Cache, upserts: ReadonlyMap<string, string>): string[] {
  const added: string[] = [];
  for (const id of upserts.keys()) if (!cache.rows.has(id)) added.push(id);
  return added;
}

/** The map store: reads and versions through the shared connection. */
export class PostgresMapStore implements MapStore {
  private connection: PgConnection | undefined;
  /** What the store last answered; undefined: the next answer is whole. */
  private cache: Cache | undefined;
  /** When changes read on their own are next checked by a whole read (no blind spot is known; checked all the same). */
  private readonly check: ChangeCheck;
  /** Whole reads, reads of the rows written since the last read, and of the buckets that lost rows. */
  readonly reads = { full: 0, changes: 0, deletions: 0 };

  /** `verifyAfterMs` (tests) replaces VERIFY_AFTER_MS. */
  constructor(
    private readonly spec: string,
    private readonly tuning: PostgresTuning,
    verifyAfterMs = VERIFY_AFTER_MS,
  ) {
    this.check = new ChangeCheck(verifyAfterMs);
  }

  get label(): string {
    return this.acquired().label;
  }

  /**
   * `epoch:counter` with our trigger, else undefined (then every notification
   * and poll reads what changed: see readChanges()). The epoch makes the
   * first check after a reconnect a read.
   */
  async version(): Promise<string | undefined> {
    const connection = this.acquired();
    const client = await connection.ready();
    try {
      const counter = (await connection.query<{ counter: boolean }>(client, HAS_COUNTER)).rows[0]?.counter === true;
      connection.changeDetection = detection(counter);
      let version: string | undefined;
      if (counter && !this.check.due) version = `${connection.epoch}:c${(await connection.query<{ version: string }>(client, COUNTER)).rows[0]?.version ?? ''}`;
      connection.lastSyncAt = Date.now();
      return version;
    } catch (err) {
      throw this.readError(err);
    }
  }

  /**
   * The whole table (`whole`), or what changed since the last answer: read
   * on their own (readChanges) over the same connection, else from a whole
   * read compared with the cache (the first read after a reconnection, a
   * periodic check).
   */
  async read(whole: boolean): Promise<MapAnswer> {
    const connection = this.acquired();
    const client = await connection.ready();
    const cache = this.cache;
    if (!whole && cache !== undefined && cache.epoch === connection.epoch && !this.check.due) {
      const changes = await this.readChanges(connection, client, cache);
      if (changes !== undefined) {
        this.check.changesRead(changes);
        connection.lastSyncAt = Date.now();
        return { kind: 'changes', format: POSTGRES_FORMAT, routing: 'entry-point', ...changes };
      }
    }
    return this.readWhole(connection, client, whole);
  }

  /** The whole table, in one statement (one snapshot): answered whole, or as the changes against the cache. */
  private async readWhole(connection: PgConnection, client: pg.Client, whole: boolean): Promise<MapAnswer> {
    try {
      const read = (await connection.query<RowsRead>(client, ROWS_QUERY)).rows[0] ?? { horizon: '0', n: 0, rows: '' };
      this.reads.full++;
      this.check.wholeRead();
      connection.lastSyncAt = Date.now();
      connection.tableMissing = false;
      const before = this.cache;
      if (before === undefined) {
        this.cache = newCache(connection.epoch, read, rowsById(read.rows));
      } else {
        // Brought up to the read in place even when answered whole: cheaper than building it anew.
        const { cache, removed, inserted } = refresh(before, connection.epoch, read);
        this.cache = cache;
        if (!whole && removed.length + inserted.length <= MAX_DIFF_ENTRIES) {
          return { kind: 'changes', format: POSTGRES_FORMAT, routing: 'entry-point', removed: removed.join(''), inserted: inserted.join('') };
        }
      }
      // (key, key_type) is the table's primary key: identities cannot repeat.
      return { kind: 'whole', format: POSTGRES_FORMAT, routing: 'entry-point', rows: read.rows, uniqueKeys: true, skipped: new Map() };
    } catch (err) {
      throw this.readError(err);
    }
  }

  /**
   * What changed since the last answer: the rows written since (CHANGED_QUERY),
   * and when the count says rows were deleted too, the rows of the buckets
   * that lost some (readDeletions). Undefined when only a whole read can
   * tell (deletions that do not add up).
   */
  private async readChanges(connection: PgConnection, client: pg.Client, cache: Cache): Promise<{ removed: string; inserted: string } | undefined> {
    try {
      const changed = (await connection.query<RowsRead>(client, CHANGED_QUERY, undefined, [cache.horizon])).rows[0];
      this.reads.changes++;
      if (changed === undefined) return undefined;
      const upserts = rowsById(changed.rows);
      if (changed.n !== cache.count + newIn(cache, upserts).length) {
        // Rows were deleted: find them by bucket.
        return await this.readDeletions(connection, client, cache);
      }
      const changes = edit(cache, upserts, []);
      cache.horizon = changed.horizon;
      cache.count = changed.n;
      return changes;
    } catch (err) {
      // Only a statement fails, before edit() takes anything into the cache: the last answer stands.
      throw this.readError(err);
    }
  }

  /**
   * After deletions: in one snapshot (a read-only repeatable-read
   * transaction), the rows written since the last read, the row count of
   * every bucket, and the rows of the buckets whose count is not what the
   * cache and the new rows make; the cache's rows of those buckets that are
   * not there any more are gone. Undefined (the cache untouched) when the
   * result does not add up to the table's count.
   */
  private async readDeletions(connection: PgConnection, client: pg.Client, cache: Cache): Promise<{ removed: string; inserted: string } | undefined> {
    await connection.query(client, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    try {
      const changed = (await connection.query<RowsRead>(client, CHANGED_QUERY, undefined, [cache.horizon])).rows[0];
      if (changed === undefined) return undefined;
      const counts = (await connection.query<{ b: string; n: number }>(client, BUCKET_COUNTS)).rows;
      const upserts = rowsById(changed.rows);
      const added = newIn(cache, upserts);
      // What each bucket would hold without deletions: the cache's rows and the new ones.
      const expected = new Map<string, number>();
      for (const [b, ids] of cache.buckets) expected.set(b, ids.size);
      for (const id of added) {
        const b = bucketOf(id);
        expected.set(b, (expected.get(b) ?? 0) + 1);
      }
      const differing: string[] = [];
      for (const { b, n } of counts) {
        if (expected.get(b) !== n) differing.push(b);
        expected.delete(b);
      }
      // Buckets the cache has and the table no longer has at all.
      differing.push(...expected.keys());
      if (differing.length > 0) {
        const { rows } = (await connection.query<{ rows: string }>(client, BUCKET_ROWS, undefined, [differing])).rows[0] ?? { rows: '' };
        for (const [id, line] of rowsById(rows)) {
          if (!upserts.has(id)) {
            upserts.set(id, line);
            if (!cache.rows.has(id)) added.push(id);
          }
        }
      }
      const gone: string[] = [];
      for (const b of differing) for (const id of cache.buckets.get(b) ?? []) if (!upserts.has(id)) gone.push(id);
      // Checked against the table's count before the cache takes it.
      if (cache.rows.size - gone.length + added.length !== changed.n) return undefined;
      const changes = edit(cache, upserts, gone);
      cache.horizon = changed.horizon;
      cache.count = changed.n;
      this.reads.deletions++;
      return changes;
    } finally {
      await connection.query(client, 'COMMIT').catch(() => {});
    }
  }

  close(): void {
    if (this.connection !== undefined) release(this.spec, this.connection);
    this.connection = undefined;
  }

  private acquired(): PgConnection {
    return (this.connection ??= acquire(this.spec, this.tuning));
  }

  private readError(err: unknown): SessionMapError {
    if (err instanceof SessionMapError) return err;
    const { label } = this;
    const e = err as { code?: string; message?: string };
    if (e.code === '42P01') {
      if (this.connection !== undefined) this.connection.tableMissing = true;
      return new SessionMapError('no-table', label, `session map ${label}: table gxitproxy does not exist yet: Galaxy creates it when the first Interactive Tool starts, and the proxy then routes it without a restart; if one has started, --sessions names another database than Galaxy's interactivetoolsproxy_map`, { cause: err });
    }
    if (e.code === '42501') {
      return new SessionMapError('unreadable', label, `session map ${label}: ${e.message ?? 'permission denied'} (GRANT SELECT ON gxitproxy, and gxitproxy_version with our trigger, to the proxy's role)`, {
        cause: err,
      });
    }
    if (err instanceof ConnectionLost || e.code === '57P01' || e.code === 'ECONNRESET' || e.code === 'EPIPE' || /Connection terminated/i.test(e.message ?? '')) {
      return new SessionMapError('disconnected', label, `session map ${label}: the database connection was lost during the read`, { cause: err });
    }
    return new SessionMapError('unreadable', label, `session map ${label}: ${e.message ?? String(err)}`, { cause: err });
  }
}

/** How often a LISTEN-only watch (`--poll-interval 0`) looks for a table Galaxy has not created yet. */
const NO_TABLE_POLL_MS = 5000;

/** The change watch: notifications, the poll, reconnections; what /health shows of the connection. */
class PostgresWatch implements ChangeWatch {
  readonly watching = true;
  private readonly connection: PgConnection;
  private readonly poll: NodeJS.Timeout;
  private readonly listener: () => void;
  /** The next read asked for because the reader's connection was not up (see failed()). */
  private again: NodeJS.Timeout | undefined;
  /** Reads asked again in a row (their backoff). */
  private tries = 0;

  constructor(
    private readonly spec: string,
    options: ChangeWatchOptions,
    onMaybeChanged: () => void,
    private readonly tuning: PostgresTuning,
  ) {
    this.connection = acquire(spec, tuning);
    if (options.log !== undefined) this.connection.attachLog(options.log);
    this.listener = onMaybeChanged;
    this.connection.listeners.add(onMaybeChanged);
    // Without a poll (LISTEN only), still a look now and then while the table is not there:
    // Galaxy's CREATE TABLE notifies nobody, and no trigger can be on a table not yet made.
    const polling = options.pollIntervalMs > 0;
    this.poll = setInterval(
      () => {
        if (this.connection.status().connected && (polling || this.connection.tableMissing)) onMaybeChanged();
      },
      polling ? options.pollIntervalMs : NO_TABLE_POLL_MS,
    );
    this.poll.unref();
  }

  status(): PostgresStatus {
    return this.connection.status();
  }

  /** The watch's connection LISTENs (at connect), or a bounded wait for it ended (the connection's own). */
  async ready(): Promise<void> {
    await this.connection.ready().catch(() => {});
  }

  /** A read on the reader thread (over its own connection) succeeded. */
  synced(): void {
    this.connection.lastSyncAt = Date.now();
    this.connection.tableMissing = false;
    this.tries = 0;
    clearTimeout(this.again);
    this.again = undefined;
  }

  /**
   * A read failed. No table yet: the LISTEN-only watch looks for it (see the
   * poll). Disconnected: the reader thread's connection had not got in, or
   * had not yet been told why not (a read waits for it only so long, and its
   * attempt may hang for a connect time-out after this one's got in or was
   * refused), and it tells nobody when it does. So while this connection is
   * up, or refused for a permanent cause, the read is asked again, with
   * backoff, until one gets through or says the cause (then /health gives
   * the reader's own answer); an outage of this connection ends in its
   * return, which asks for a read anyway.
   */
  failed(failure: SessionMapFailure): void {
    if (failure === 'no-table') this.connection.tableMissing = true;
    if (failure !== 'disconnected' || this.again !== undefined || !this.answers()) return;
    const { backoffMinMs, backoffMaxMs } = this.tuning;
    const delay = Math.min(backoffMaxMs, backoffMinMs * 2 ** Math.min(this.tries++, 20));
    this.again = setTimeout(() => {
      this.again = undefined;
      if (this.answers()) this.listener();
    }, delay);
    this.again.unref();
  }

  /** This connection is up, or was refused for a permanent cause: the server answers. */
  private answers(): boolean {
    const { connected, problem } = this.connection.status();
    return connected || problem !== null;
  }

  close(): void {
    clearInterval(this.poll);
    clearTimeout(this.again);
    this.connection.listeners.delete(this.listener);
    release(this.spec, this.connection);
  }
}

/**
 * The PostgreSQL store kind. The map is read on the reader thread like a
 * file map (the thread opens a connection of its own), so that neither a
 * whole read nor the comparison with the cache holds up requests.
 */
export function postgresStoreKind(tuning: PostgresTuning = POSTGRES_TUNING): StoreKind {
  return {
    open: (spec) => new PostgresMapStore(spec, tuning),
    watch: (spec, options, onMaybeChanged) => new PostgresWatch(spec, options, onMaybeChanged, tuning),
  };
}

/** The PostgreSQL store kind with the default tuning. */
export const postgresStores: StoreKind = postgresStoreKind();
