import { readFileSync } from 'node:fs';
import net from 'node:net';
import type pg from 'pg';

/**
 * `pg`, loaded on first use: a proxy on a file map never pays for it (its
 * import takes a noticeable part of a start-up).
 */
let pgModule: Promise<typeof pg> | undefined;
function loadPg(): Promise<typeof pg> {
  return (pgModule ??= import('pg').then((m) => m.default));
}
import type { Logger } from '../log.js';
import { DEFAULT_KEY_TYPE, forEachLine, GALAXY_DEFAULT_INFO, KEY_TYPE_MARK, rawEntryPointIdentity } from './rows.js';
import { SessionMapError, type ChangeWatch, type ChangeWatchOptions, type MapRead, type MapStore, type StoreKind } from './store.js';
import { parsePostgresUrl, type PostgresLocation } from './postgres-url.js';

/**
 * Galaxy's Interactive Tools map in PostgreSQL (`interactivetoolsproxy_map`,
 * table `gxitproxy`), behind the map-store seam.
 *
 * One long-lived connection per map and process (shared by the store and its
 * change watch) that:
 * - LISTENs on channel `gxitproxy`, where gx-it-proxy's README trigger and
 *   ours (`--install-trigger`) notify; every notification asks for a read;
 * - answers `version()` with the one-row change counter when our trigger is
 *   installed, else with a digest of the table computed by the server, so a
 *   poll (`pollIntervalMs`, 0: LISTEN only) moves one row over the wire, and
 *   the table itself only when it changed;
 * - reads the table in one statement whose one value the server builds (the
 *   row lines of rows.ts), received while requests are served: no reader
 *   thread needed, and no per-row parsing in JavaScript;
 * - sends a cheap query every `heartbeatMs` when nothing else ran, and
 *   bounds every query on the client side as well, so that a dead or
 *   silently dropped connection is noticed within seconds (TCP keep-alive too);
 * - on any loss (restart, crash, terminated backend, a dead network) keeps
 *   the last good map (reads fail as `disconnected`, which the reporter keeps
 *   quiet about: this module warns once per outage), reconnects with
 *   jittered, capped exponential backoff, LISTENs again, and then has the map
 *   read again in full, since notifications sent meanwhile are lost.
 *
 * Nothing here writes to the database except `installTrigger`, which only
 * an admin's explicit `--install-trigger` runs.
 */

/** Connection tuning (not flags: the defaults suit any deployment; tests shorten them). */
export interface PostgresTuning {
  /** A query at least this often, so that a dead connection is noticed. */
  readonly heartbeatMs: number;
  /** Longest a query may take, server side (`statement_timeout`) and, plus a second, client side. */
  readonly statementTimeoutMs: number;
  /** Longest a connection attempt may take. */
  readonly connectTimeoutMs: number;
  /** First reconnect delay; it doubles per failed attempt, up to `backoffMaxMs`, with jitter. */
  readonly backoffMinMs: number;
  readonly backoffMaxMs: number;
}

export const POSTGRES_TUNING: PostgresTuning = Object.freeze({
  heartbeatMs: 2000,
  statementTimeoutMs: 5000,
  connectTimeoutMs: 5000,
  backoffMinMs: 200,
  backoffMaxMs: 5000,
});

/**
 * How long a read waits for a connection (the first one, or the next one
 * during an outage, tried at once) before it reports the map unreadable.
 */
const CONNECT_WAIT_MS = 1500;

/** The channel gx-it-proxy LISTENs on; both triggers notify there. */
export const CHANNEL = 'gxitproxy';

/** The format of a read, as logs and /health name it. */
export const POSTGRES_FORMAT = 'postgresql gxitproxy';

/** Log messages of the database connection that admins (and tests) match on. */
export const PG_LOG = Object.freeze({
  connected: 'session map database connected',
  unreachable: 'session map database unreachable; routing nothing until it answers, retrying',
  lost: 'session map database connection lost; keeping the last good map and reconnecting',
  back: 'session map database reconnected; reading the map again',
});

/** What `/health` and `/metrics` show about the database connection. */
export interface PostgresStatus {
  readonly kind: 'postgresql';
  readonly connected: boolean;
  /** When the database last answered a change check or a read (ISO time, and ms since epoch for /metrics). */
  readonly lastSyncAt: string | null;
  readonly lastSyncAtMs: number | null;
  readonly lastSyncAgeSeconds: number | null;
  /**
   * How a poll looks for changes: our counter (one row), or the rows written
   * since the last read (without our trigger); null until the database answered.
   */
  readonly changeDetection: ChangeDetection | null;
  readonly notifications: number;
  /** Successful connections after the first. */
  readonly reconnects: number;
  /** Since when the connection has been down (ISO time), while it is. */
  readonly downSince: string | null;
}

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
const COUNTER = 'SELECT version::text AS version FROM gxitproxy_version';
const HAS_COUNTER = `SELECT to_regclass('gxitproxy_version') IS NOT NULL AS counter`;
/**
 * Rows per bucket, a bucket being the last two characters of the key
 * (Galaxy's keys are random: about 1,300 buckets of alphanumerics). When
 * rows were deleted, the buckets whose count fell say where: only their rows
 * are read again (see readDeletions).
 */
const BUCKET = 'right(key, 2)';
const BUCKET_COUNTS = `SELECT ${BUCKET} AS b, count(*)::int AS n FROM gxitproxy GROUP BY 1`;
const BUCKET_ROWS = `SELECT coalesce(string_agg(${ROW_LINE}, ''), '') AS rows FROM gxitproxy WHERE ${BUCKET} = ANY($1::text[])`;

/** The bucket of a raw row's identity, as BUCKET has it (a key that is not text as it stands lands in a bucket of its own: a whole read). */
function bucketOf(id: string): string {
  const tab = id.indexOf('\t');
  const key = tab < 0 ? id : id.slice(0, tab);
  const tail = key.slice(-2);
  // Two characters unless a surrogate pair is involved (right() counts characters).
  return /[\ud800-\udfff]/.test(tail) ? [...key].slice(-2).join('') : tail;
}

/** See PostgresStatus.changeDetection. */
export type ChangeDetection = 'counter' | 'row-versions';

/** A connection that went away, or was given up on. */
class ConnectionLost extends Error {
  override readonly name = 'ConnectionLost';
  readonly code = 'ERR_GIE_PG_CONNECTION_LOST';
}

/**
 * The one connection to one map: connects in the background from creation
 * until the last user releases it.
 */
class PgConnection {
  private client: pg.Client | undefined;
  private socket: net.Socket | undefined;
  private connected = false;
  private closed = false;
  private everConnected = false;
  private attempt = 0;
  private downSince: number | undefined;
  private warned = false;
  /** Why the last connection ended or failed, for error messages. */
  private lastReason: string | undefined;
  private lastReasonCode: string | undefined;
  private notifications = 0;
  private reconnects = 0;
  private lastQueryAt = 0;
  private heartbeat: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  /** Ends the wait before the next connection attempt (see ready()). */
  private wake: (() => void) | undefined;
  /** Reads waiting for the connection to come up. */
  private readonly waiting = new Set<() => void>();
  private lost: ((err: Error) => void) | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** Bumped by every successful connection: a version from another epoch never matches. */
  epoch = 0;
  changeDetection: ChangeDetection | undefined;
  /** When a change check or a read last succeeded (ms since epoch). */
  lastSyncAt: number | undefined;
  users = 0;
  private log: Logger | undefined;
  readonly listeners = new Set<() => void>();

  constructor(
    readonly location: PostgresLocation,
    readonly tuning: PostgresTuning,
  ) {
    void this.connectLoop();
  }

  get label(): string {
    return this.location.label;
  }

  status(): PostgresStatus {
    return {
      kind: 'postgresql',
      connected: this.connected,
      lastSyncAt: this.lastSyncAt === undefined ? null : new Date(this.lastSyncAt).toISOString(),
      lastSyncAtMs: this.lastSyncAt ?? null,
      lastSyncAgeSeconds: this.lastSyncAt === undefined ? null : Math.round(Date.now() - this.lastSyncAt) / 1000,
      changeDetection: this.changeDetection ?? null,
      notifications: this.notifications,
      reconnects: this.reconnects,
      downSince: this.connected || this.downSince === undefined ? null : new Date(this.downSince).toISOString(),
    };
  }

  /**
   * The connected client, or a `disconnected` SessionMapError. While there is
   * no connection, a read does not wait out the backoff: the next attempt is
   * made at once, and the read waits for it (bounded), so that a read asked
   * for because the database is back (the watch's connection came back
   * first, or the first attempt is under way) finds it.
   */
  async ready(): Promise<pg.Client> {
    if (!this.connected && !this.closed) {
      let timer: NodeJS.Timeout | undefined;
      let done: () => void = () => {};
      const up = new Promise<void>((resolve) => {
        done = resolve;
        this.waiting.add(resolve);
        timer = setTimeout(resolve, CONNECT_WAIT_MS);
      });
      this.wake?.();
      await up;
      clearTimeout(timer);
      this.waiting.delete(done);
    }
    const client = this.connected ? this.client : undefined;
    if (client === undefined) {
      const why = this.lastReason === undefined ? '' : `: ${this.lastReason}`;
      throw new SessionMapError('disconnected', this.label, `session map ${this.label}: not connected to the database${why}`);
    }
    return client;
  }

  /**
   * Runs statements one at a time (pg queues concurrent ones but warns on
   * stderr that it will stop), each bounded on the client side too: a
   * statement time-out cannot fire over a network that lost the packets, so
   * past it the connection is taken for dead and cut.
   */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    client: pg.Client,
    sql: string,
    limit = this.tuning.statementTimeoutMs + 1000,
    params?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    const run = this.queue.then(async () => {
      if (this.client !== client || !this.connected) throw new ConnectionLost('the connection was replaced');
      this.lastQueryAt = Date.now();
      let timer: NodeJS.Timeout | undefined;
      try {
        return await Promise.race([
          client.query<R>(sql, params),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
              const err = new ConnectionLost(`no answer from the database within ${limit} ms`);
              if (this.client === client) {
                this.lost?.(err);
                this.socket?.destroy();
              }
              reject(err);
            }, limit);
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
    });
    this.queue = run.catch(() => {});
    return run;
  }

  close(): void {
    this.closed = true;
    this.wake?.();
    clearInterval(this.heartbeat);
    this.lost?.(new ConnectionLost('closed'));
    const client = this.client;
    if (client !== undefined) this.drop(client, this.socket);
    this.connected = false;
    this.attemptEnded();
  }

  private async connectLoop(): Promise<void> {
    while (!this.closed) {
      let reason = await this.connectOnce().catch((err: Error) => err);
      // libpq's second try (sslmode prefer, the default, or allow), at once, when the first did not get in.
      const second = this.attempt > 0 && !this.closed ? this.location.secondTry?.(reason) : undefined;
      if (second !== undefined) {
        this.attempt--;
        reason = await this.connectOnce(second).catch((err: Error) => err);
      }
      this.attemptEnded();
      if (this.closed) return;
      this.disconnected(reason);
      const delay = this.backoff();
      await new Promise<void>((resolve) => {
        this.retry = setTimeout(resolve, delay);
        this.wake = () => {
          clearTimeout(this.retry);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** Connects (with `override`'s TLS setting, for libpq's second try) and LISTENs, then resolves with whatever ended the connection. */
  private async connectOnce(override?: { readonly ssl: pg.ClientConfig['ssl'] }): Promise<Error> {
    this.attempt++;
    const { config } = this.location;
    const { tuning } = this;
    let socket: net.Socket | undefined;
    const { Client } = await loadPg();
    const client = new Client({
      ...config,
      ...override,
      application_name: config.application_name ?? 'galaxy-gie-proxy',
      keepAlive: true,
      keepAliveInitialDelayMillis: Math.max(1000, tuning.heartbeatMs),
      connectionTimeoutMillis: tuning.connectTimeoutMs,
      statement_timeout: tuning.statementTimeoutMs,
      idle_in_transaction_session_timeout: tuning.statementTimeoutMs * 2,
      // Our own socket, so that a dead one can be cut at once (end() waits for the server).
      stream: () => (socket = new net.Socket()),
    });
    const ended = new Promise<Error>((resolve) => {
      this.lost = resolve;
      client.on('error', (err) => resolve(err));
      client.on('end', () => resolve(new ConnectionLost('the server closed the connection')));
    });
    client.on('notification', (msg) => {
      if (msg.channel !== CHANNEL) return;
      this.notifications++;
      this.tell();
    });
    this.client = client;
    this.queue = Promise.resolve();
    try {
      await client.connect();
      this.socket = socket;
      if (this.closed) throw new ConnectionLost('closed');
      this.connected = true;
      // LISTEN before any read: a change committed in between is then either
      // in the read or notified afterwards, never lost.
      await this.query(client, `LISTEN ${CHANNEL}`);
    } catch (err) {
      this.connected = false;
      this.drop(client, socket);
      return err as Error;
    }
    this.connectedNow();
    this.attemptEnded();
    this.startHeartbeat(client);
    this.tell();
    const reason = await ended;
    this.drop(client, socket);
    return reason;
  }

  /** An attempt to connect succeeded or failed: the reads waiting for it go on. */
  private attemptEnded(): void {
    for (const resolve of this.waiting) resolve();
    this.waiting.clear();
  }

  private tell(): void {
    for (const listener of this.listeners) listener();
  }

  private connectedNow(): void {
    const downMs = this.downSince === undefined ? 0 : Date.now() - this.downSince;
    const first = !this.everConnected;
    this.everConnected = true;
    this.attempt = 0;
    this.epoch++;
    this.downSince = undefined;
    if (first) {
      this.log?.info({ store: this.label }, PG_LOG.connected);
    } else {
      this.reconnects++;
      this.log?.info({ store: this.label, downMs }, PG_LOG.back);
    }
    this.warned = false;
  }

  private disconnected(reason: Error): void {
    this.connected = false;
    clearInterval(this.heartbeat);
    this.downSince ??= Date.now();
    this.lastReason = reason.message;
    this.lastReasonCode = (reason as { code?: string }).code ?? reason.name;
    this.warnOutage();
  }

  /** From now on connection changes are logged here (the watch's logger); an outage already under way too. */
  attachLog(log: Logger): void {
    this.log = log;
    if (!this.connected && this.downSince !== undefined) this.warnOutage();
  }

  /** The one warning of an outage. */
  private warnOutage(): void {
    if (this.warned || this.log === undefined) return;
    this.warned = true;
    const fields = { store: this.label, reason: this.lastReasonCode, detail: this.lastReason };
    this.log.warn(fields, this.everConnected ? PG_LOG.lost : PG_LOG.unreachable);
  }

  /** Jittered exponential backoff: between half and all of min·2^(attempt-1), capped. */
  private backoff(): number {
    const { backoffMinMs, backoffMaxMs } = this.tuning;
    const ceiling = Math.min(backoffMaxMs, backoffMinMs * 2 ** Math.min(Math.max(this.attempt - 1, 0), 20));
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  private startHeartbeat(client: pg.Client): void {
    clearInterval(this.heartbeat);
    const { heartbeatMs } = this.tuning;
    this.lastQueryAt = Date.now();
    if (heartbeatMs <= 0) return;
    this.heartbeat = setInterval(() => {
      if (Date.now() - this.lastQueryAt < heartbeatMs) return;
      // A live server answers in well under a millisecond: a short limit.
      // The heartbeat also says whether our trigger's counter is there (for
      // /health, whichever thread reads the map).
      this.query<{ counter: boolean }>(client, HAS_COUNTER, heartbeatMs + 1000)
        .then((r) => (this.changeDetection = detection(r.rows[0]?.counter === true)))
        .catch(() => {});
    }, heartbeatMs);
    this.heartbeat.unref();
  }

  private drop(client: pg.Client, socket: net.Socket | undefined): void {
    if (this.client === client) {
      this.client = undefined;
      this.socket = undefined;
      this.lost = undefined;
    }
    client.removeAllListeners('notification');
    // Errors from here on belong to a connection we gave up on.
    client.on('error', () => {});
    socket?.destroy();
    void client.end().catch(() => {});
  }
}

function detection(counter: boolean): ChangeDetection {
  return counter ? 'counter' : 'row-versions';
}

/** The connections of this thread, one per map, shared by its store and its watch. */
const connections = new Map<string, PgConnection>();

function acquire(spec: string, tuning: PostgresTuning): PgConnection {
  let connection = connections.get(spec);
  if (connection === undefined) {
    connection = new PgConnection(parsePostgresUrl(spec), tuning);
    connections.set(spec, connection);
  }
  connection.users++;
  return connection;
}

function release(spec: string, connection: PgConnection): void {
  if (--connection.users > 0 || connections.get(spec) !== connection) return;
  connections.delete(spec);
  connection.close();
}

/**
 * What a store remembers of its last read, to read only what changed since:
 * the rows by identity (in the order they came), the row count and the
 * horizon of that read, and the rows as one text (what the differ compares).
 */
interface Cache {
  /** The connection it was read over: another one (a reconnection) reads in full. */
  readonly epoch: number;
  horizon: string;
  count: number;
  readonly rows: Map<string, string>;
  text: string;
}

/**
 * The rows of a whole read (`rows`, in key order) in the order of the last
 * read's (`before`, where new entry points went last), then the entry points
 * not in it: the differ then lines the two reads up in one pass (the rows
 * are mostly the same; only their order would differ), and what is appended
 * later follows the same order.
 */
function inOrderOf(before: ReadonlyMap<string, string>, rows: ReadonlyMap<string, string>): Map<string, string> {
  const ordered = new Map<string, string>();
  for (const id of before.keys()) {
    const line = rows.get(id);
    if (line !== undefined) ordered.set(id, line);
  }
  for (const [id, line] of rows) if (!ordered.has(id)) ordered.set(id, line);
  return ordered;
}

/** The map store: reads and versions through the shared connection. */
export class PostgresMapStore implements MapStore {
  private connection: PgConnection | undefined;
  private cache: Cache | undefined;
  /** Reads of the whole table, and reads of only the rows written since the last read. */
  readonly reads = { full: 0, changes: 0, deletions: 0 };

  constructor(
    private readonly spec: string,
    private readonly tuning: PostgresTuning,
  ) {}

  get label(): string {
    return this.acquired().label;
  }

  /**
   * `epoch:counter` with our trigger, else undefined (then every notification
   * and poll reads what changed: see read()). The epoch makes the first check
   * after a reconnect a read.
   */
  async version(): Promise<string | undefined> {
    const connection = this.acquired();
    const client = await connection.ready();
    try {
      const counter = (await connection.query<{ counter: boolean }>(client, HAS_COUNTER)).rows[0]?.counter === true;
      connection.changeDetection = detection(counter);
      let version: string | undefined;
      if (counter) version = `${connection.epoch}:c${(await connection.query<{ version: string }>(client, COUNTER)).rows[0]?.version ?? ''}`;
      connection.lastSyncAt = Date.now();
      return version;
    } catch (err) {
      throw this.readError(err);
    }
  }

  /**
   * The whole map. After a first read in full (one statement: one snapshot),
   * only the rows written since are read (see CHANGED_QUERY); when the count
   * says rows were deleted as well, or `fresh` asks for it, or the
   * connection is not the one of the last read (a reconnection: the server
   * may even be another one), the whole table again.
   */
  async read(fresh = false): Promise<MapRead> {
    const connection = this.acquired();
    const client = await connection.ready();
    const cache = this.cache;
    try {
      if (!fresh && cache !== undefined && cache.epoch === connection.epoch) {
        const changed = (await connection.query<RowsRead>(client, CHANGED_QUERY, undefined, [cache.horizon])).rows[0];
        this.reads.changes++;
        if (changed !== undefined && this.applyChanges(cache, changed)) return this.mapRead(connection, cache.text);
        // Rows were deleted: find them by bucket, else read the whole table.
        if (await this.readDeletions(connection, client, cache)) return this.mapRead(connection, cache.text);
      }
      this.cache = undefined;
      const read = (await connection.query<RowsRead>(client, ROWS_QUERY)).rows[0];
      this.reads.full++;
      let text = read?.rows ?? '';
      let rows = new Map<string, string>();
      forEachLine(text, 0, Infinity, (line) => rows.set(rawEntryPointIdentity(line), `${line}\n`));
      if (cache !== undefined) {
        rows = inOrderOf(cache.rows, rows);
        text = [...rows.values()].join('');
      }
      const next: Cache = { epoch: connection.epoch, horizon: read?.horizon ?? '0', count: read?.n ?? 0, rows, text };
      this.cache = next;
      return this.mapRead(connection, next.text);
    } catch (err) {
      throw this.readError(err);
    }
  }

  /**
   * After deletions: in one snapshot (a read-only repeatable-read
   * transaction), the rows written since the last read, the row count of
   * every bucket, and the rows of the buckets whose count is not what the
   * cache and the new rows make; the cache then drops what those buckets no
   * longer hold. False (the cache untouched) when the result does not add up
   * to the table's count: the caller reads the whole table.
   */
  private async readDeletions(connection: PgConnection, client: pg.Client, cache: Cache): Promise<boolean> {
    await connection.query(client, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    try {
      const changed = (await connection.query<RowsRead>(client, CHANGED_QUERY, undefined, [cache.horizon])).rows[0];
      if (changed === undefined) return false;
      const counts = (await connection.query<{ b: string; n: number }>(client, BUCKET_COUNTS)).rows;
      const upserts = new Map<string, string>();
      forEachLine(changed.rows, 0, Infinity, (line) => upserts.set(rawEntryPointIdentity(line), `${line}\n`));
      const expected = new Map<string, number>();
      const count = (id: string): void => {
        const b = bucketOf(id);
        expected.set(b, (expected.get(b) ?? 0) + 1);
      };
      for (const id of cache.rows.keys()) count(id);
      for (const id of upserts.keys()) if (!cache.rows.has(id)) count(id);
      const differing = new Set<string>();
      for (const { b, n } of counts) {
        if (expected.get(b) !== n) differing.add(b);
        expected.delete(b);
      }
      // Buckets the cache has and the table no longer has at all.
      for (const b of expected.keys()) differing.add(b);
      const fetched = new Map<string, string>();
      if (differing.size > 0) {
        const { rows } = (await connection.query<{ rows: string }>(client, BUCKET_ROWS, undefined, [[...differing]])).rows[0] ?? { rows: '' };
        forEachLine(rows, 0, Infinity, (line) => fetched.set(rawEntryPointIdentity(line), `${line}\n`));
      }
      // What the cache becomes; checked against the count before it is taken.
      let size = cache.rows.size;
      const gone: string[] = [];
      for (const id of cache.rows.keys()) {
        if (differing.has(bucketOf(id)) && !fetched.has(id) && !upserts.has(id)) gone.push(id);
      }
      size -= gone.length;
      for (const id of new Set([...upserts.keys(), ...fetched.keys()])) if (!cache.rows.has(id)) size++;
      if (size !== changed.n) return false;
      for (const id of gone) cache.rows.delete(id);
      for (const [id, line] of upserts) cache.rows.set(id, line);
      for (const [id, line] of fetched) cache.rows.set(id, line);
      cache.text = [...cache.rows.values()].join('');
      cache.horizon = changed.horizon;
      cache.count = changed.n;
      this.reads.deletions++;
      return true;
    } finally {
      await connection.query(client, 'COMMIT').catch(() => {});
    }
  }

  /**
   * Brings the cache up to `changed`; false when that cannot be done (rows
   * were deleted: the count is short of what the cache plus the new rows make).
   */
  private applyChanges(cache: Cache, changed: RowsRead): boolean {
    const rows: [string, string][] = [];
    let added = 0;
    forEachLine(changed.rows, 0, Infinity, (line) => {
      const id = rawEntryPointIdentity(line);
      if (!cache.rows.has(id)) added++;
      rows.push([id, `${line}\n`]);
    });
    if (changed.n !== cache.count + added) return false;
    // In place: an entry point Galaxy saved again stays where it was; a new one goes last.
    const appended: string[] = [];
    let inPlace = false;
    for (const [id, line] of rows) {
      const before = cache.rows.get(id);
      if (before === line) continue;
      if (before === undefined) appended.push(line);
      else inPlace = true;
      cache.rows.set(id, line);
    }
    // New entry points only (the usual change): the text grows at its end, no rebuild of it.
    if (inPlace) cache.text = [...cache.rows.values()].join('');
    else if (appended.length > 0) cache.text += appended.join('');
    cache.horizon = changed.horizon;
    cache.count = changed.n;
    return true;
  }

  private mapRead(connection: PgConnection, rows: string): MapRead {
    connection.lastSyncAt = Date.now();
    // (key, key_type) is the table's primary key: identities cannot repeat.
    return { format: POSTGRES_FORMAT, routing: 'entry-point', rows, uniqueKeys: true, skipped: new Map() };
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
      return new SessionMapError('no-table', label, `session map ${label}: table gxitproxy does not exist yet (Galaxy creates it when the first Interactive Tool starts)`, { cause: err });
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

/** The change watch: notifications, the poll, reconnections; what /health shows of the connection. */
class PostgresWatch implements ChangeWatch {
  readonly watching = true;
  private readonly connection: PgConnection;
  private readonly poll: NodeJS.Timeout | undefined;
  private readonly listener: () => void;

  constructor(
    private readonly spec: string,
    options: ChangeWatchOptions,
    onMaybeChanged: () => void,
    tuning: PostgresTuning,
  ) {
    this.connection = acquire(spec, tuning);
    if (options.log !== undefined) this.connection.attachLog(options.log);
    this.listener = onMaybeChanged;
    this.connection.listeners.add(onMaybeChanged);
    if (options.pollIntervalMs > 0) {
      this.poll = setInterval(() => {
        if (this.connection.status().connected) onMaybeChanged();
      }, options.pollIntervalMs);
      this.poll.unref();
    }
  }

  status(): PostgresStatus {
    return this.connection.status();
  }

  /** A read on the reader thread (over its own connection) succeeded. */
  synced(): void {
    this.connection.lastSyncAt = Date.now();
  }

  close(): void {
    clearInterval(this.poll);
    this.connection.listeners.delete(this.listener);
    release(this.spec, this.connection);
  }
}

/**
 * The PostgreSQL store kind. A large map is read on the reader thread like
 * a file map (the thread opens a connection of its own), so that neither
 * a full read nor the comparison with the last one holds up requests.
 */
export function postgresStoreKind(tuning: PostgresTuning = POSTGRES_TUNING): StoreKind {
  return {
    open: (spec) => new PostgresMapStore(spec, tuning),
    watch: (spec, options, onMaybeChanged) => new PostgresWatch(spec, options, onMaybeChanged, tuning),
  };
}

/** The PostgreSQL store kind with the default tuning. */
export const postgresStores: StoreKind = postgresStoreKind();

/** The trigger SQL shipped in the package (gxitproxy-trigger.sql beside this module). */
export function triggerSql(): string {
  return readFileSync(new URL('./gxitproxy-trigger.sql', import.meta.url), 'utf8');
}

/** What `--install-trigger` did. */
export interface TriggerReport {
  readonly store: string;
  /** True when gxitproxy did not exist and was created (with Galaxy's columns). */
  readonly tableCreated: boolean;
  /** The change counter after the install. */
  readonly counter: string;
  /** Rows in gxitproxy now. */
  readonly rows: number;
  /** Other triggers on gxitproxy (gx-it-proxy's README one, say): harmless, but one is enough. */
  readonly otherTriggers: readonly string[];
}

/** `--install-trigger` failed; the message names the map by its label only. */
export class TriggerInstallError extends Error {
  override readonly name = 'TriggerInstallError';
  readonly code = 'ERR_GIE_INSTALL_TRIGGER';
}

/**
 * Applies the trigger SQL (idempotent) as the URL's role and reports what is
 * there now: the one write this package ever makes, an admin step.
 * Throws TriggerInstallError.
 */
export async function installTrigger(location: PostgresLocation, tuning: PostgresTuning = POSTGRES_TUNING): Promise<TriggerReport> {
  const { Client } = await loadPg();
  const open = async (override?: { readonly ssl: pg.ClientConfig['ssl'] }): Promise<pg.Client> => {
    const c = new Client({
      ...location.config,
      ...override,
      application_name: location.config.application_name ?? 'galaxy-gie-proxy --install-trigger',
      connectionTimeoutMillis: tuning.connectTimeoutMs,
      statement_timeout: tuning.statementTimeoutMs,
    });
    c.on('error', () => {});
    await c.connect().catch(async (err: unknown) => {
      await c.end().catch(() => {});
      throw err;
    });
    return c;
  };
  let client: pg.Client | undefined;
  try {
    // libpq's second try (sslmode prefer, the default, or allow).
    client = await open().catch((err: Error) => {
      const second = location.secondTry?.(err);
      if (second === undefined) throw err;
      return open(second);
    });
    const before = await client.query<{ exists: boolean }>(`SELECT to_regclass('gxitproxy') IS NOT NULL AS exists`);
    await client.query(triggerSql());
    const counter = await client.query<{ version: string }>(COUNTER);
    const rows = await client.query<{ n: string }>('SELECT count(*)::text AS n FROM gxitproxy');
    const others = await client.query<{ tgname: string }>(
      `SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass('gxitproxy') AND NOT tgisinternal AND tgname <> 'gxitproxy_changed' ORDER BY tgname`,
    );
    return {
      store: location.label,
      tableCreated: before.rows[0]?.exists !== true,
      counter: counter.rows[0]?.version ?? '0',
      rows: Number(rows.rows[0]?.n ?? 0),
      otherTriggers: others.rows.map((r) => r.tgname),
    };
  } catch (err) {
    const e = err as { code?: string; message?: string };
    await client?.query('ROLLBACK').catch(() => {});
    const hint = e.code === '42501' ? ' (run it as a role that may create tables and functions in the map\'s schema)' : '';
    throw new TriggerInstallError(`cannot install the trigger in ${location.label}: ${e.message ?? String(err)}${hint}`, { cause: err });
  } finally {
    await client?.end().catch(() => {});
  }
}

/** The `--install-trigger` report, for people. */
export function formatTriggerReport(report: TriggerReport): string {
  const lines = [
    `map:       ${report.store}`,
    `trigger:   gxitproxy_changed installed (statement level: one NOTIFY gxitproxy per transaction, bumps gxitproxy_version)`,
    `table:     gxitproxy ${report.tableCreated ? "created with Galaxy's columns (Galaxy had not created it yet)" : 'already there'}, ${report.rows} rows`,
    `counter:   gxitproxy_version = ${report.counter}`,
  ];
  if (report.otherTriggers.length > 0) {
    lines.push(`also:      other triggers on gxitproxy: ${report.otherTriggers.join(', ')} (harmless: identical notifications of a transaction are merged; you may drop them)`);
  }
  lines.push("next:      GRANT SELECT ON gxitproxy, gxitproxy_version TO the proxies' role, if it is not this one");
  return `${lines.join('\n')}\n`;
}
