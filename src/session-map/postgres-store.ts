import { readFileSync } from 'node:fs';
import net from 'node:net';
import pg from 'pg';
import { SessionMapError } from '../errors.js';
import type { Logger } from '../log.js';
import { MapDiffer, type MapUpdate } from '../map-differ.js';
import type { MapReader } from '../map-reader.js';
import { rowLine, SkipCounter } from '../map-rows.js';
import type { MapRead } from '../session-map.js';
import type { PostgresLocation } from './postgres-url.js';

/**
 * Galaxy's Interactive Tools map in PostgreSQL (`interactivetoolsproxy_map`,
 * table `gxitproxy`), read over one long-lived connection that:
 *
 * - LISTENs on channel `gxitproxy` (gx-it-proxy's README trigger and ours
 *   both notify there) and re-reads on every notification;
 * - polls every `pollIntervalMs` (0: LISTEN only): the one-row change counter
 *   when our trigger is installed (`--install-trigger`), else a digest of the
 *   table computed by the server; a full read only when it moved;
 * - reads the rows in one read-only snapshot through a cursor, a few thousand
 *   at a time, so the event loop keeps serving requests between chunks;
 * - sends a cheap query every `heartbeatMs` when nothing else ran, each query
 *   bounded by a time-out, so that a dead or silently dropped connection is
 *   noticed within seconds (TCP keep-alive too);
 * - on any loss (restart, crash, terminated backend, a dead network) keeps
 *   the last good map, warns once, reconnects with jittered, capped
 *   exponential backoff, LISTENs again and then re-reads everything, since
 *   notifications sent while it was away are lost.
 *
 * It never writes to Galaxy's table; `installTrigger` is the one write, and
 * only an admin's explicit `--install-trigger` runs it.
 */

/** Tuning; the CLI exposes only `pollIntervalMs` (`--pollingInterval`). */
export interface PostgresStoreOptions {
  /** Look for changes this often even without a notification; 0: rely on LISTEN only. */
  readonly pollIntervalMs: number;
  /** A query at least this often, so that a dead connection is noticed. */
  readonly heartbeatMs: number;
  /** Longest a query may take, server side (`statement_timeout`) and client side. */
  readonly statementTimeoutMs: number;
  /** Longest a connection attempt may take. */
  readonly connectTimeoutMs: number;
  /** First reconnect delay; it doubles per failed attempt, up to `backoffMaxMs`, with jitter. */
  readonly backoffMinMs: number;
  readonly backoffMaxMs: number;
  /** Rows per FETCH from the cursor. */
  readonly fetchRows: number;
}

export const POSTGRES_DEFAULTS: PostgresStoreOptions = Object.freeze({
  pollIntervalMs: 5000,
  heartbeatMs: 2000,
  statementTimeoutMs: 5000,
  connectTimeoutMs: 5000,
  backoffMinMs: 200,
  backoffMaxMs: 5000,
  fetchRows: 5000,
});

/** The channel gx-it-proxy LISTENs on; both triggers notify there. */
export const CHANNEL = 'gxitproxy';

/** What `/health` and `/metrics` show about the database connection. */
export interface PostgresStoreState {
  readonly kind: 'postgresql';
  /** The URL without its password. */
  readonly label: string;
  readonly connected: boolean;
  /** When the map was last read completely from the database (ms since epoch). */
  readonly lastSyncAt: number | undefined;
  /** How changes are looked for when polling: our counter, or a digest of the whole table. */
  readonly changeDetection: 'counter' | 'table-digest' | undefined;
  readonly notifications: number;
  /** Successful connections after the first. */
  readonly reconnects: number;
  /** Since when the connection has been down (ms since epoch), while it is. */
  readonly downSince: number | undefined;
}

/** Called on every state change that `/metrics` may count. */
export interface PostgresStoreObserver {
  notified?(): void;
  reconnected?(): void;
  connectionChanged?(connected: boolean): void;
}

/** The format of a read, as logs and /health name it. */
export const POSTGRES_FORMAT = 'postgresql gxitproxy';

const READ_COLUMNS = 'key, key_type, token, host, port, info';
/** Cheap "did anything change" for a table without our trigger: computed by the server, one row back. */
const DIGEST = `SELECT count(*)::text || ':' || coalesce(sum(hashtextextended(concat_ws(E'\\x1f', key, key_type, token, host, port::text, info), 0)::numeric), 0)::text AS digest FROM gxitproxy`;
const COUNTER = 'SELECT version::text AS version FROM gxitproxy_version';
const HAS_COUNTER = `SELECT to_regclass('gxitproxy_version') IS NOT NULL AS counter`;

interface GxitproxyRow {
  key: unknown;
  key_type: unknown;
  token: unknown;
  host: unknown;
  port: unknown;
  info: unknown;
}

/** A connection that went away; carries what the warning says. */
class ConnectionLost extends Error {
  override readonly name = 'ConnectionLost';
}

export class PostgresMapStore {
  private client: pg.Client | undefined;
  private socket: net.Socket | undefined;
  private closed = false;
  private started = false;
  private connected = false;
  private everConnected = false;
  private attempt = 0;
  private downSince: number | undefined;
  private warnedOutage = false;
  private lastSyncAt: number | undefined;
  /** Counter or digest value that the last complete read saw. */
  private syncedMark: string | undefined;
  private changeDetection: 'counter' | 'table-digest' | undefined;
  private notifications = 0;
  private reconnects = 0;
  private lastQueryAt = 0;
  private heartbeat: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private lost: ((err: Error) => void) | undefined;
  /** The statement running on the connection, for the next to wait for. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly differ = new MapDiffer();

  /**
   * `changed` is called whenever the map may have changed and should be
   * read (through `reader`): a notification, a moved counter or digest, a
   * (re)connection.
   */
  constructor(
    readonly location: PostgresLocation,
    private readonly options: PostgresStoreOptions,
    private readonly log: Logger,
    private readonly changed: () => void,
    private readonly observer: PostgresStoreObserver = {},
  ) {}

  /** The name of the map in logs and errors (no password). */
  get label(): string {
    return this.location.label;
  }

  /** Connects in the background; failures are logged and retried, never thrown. */
  start(): void {
    if (this.started) return;
    this.started = true;
    void this.connectLoop();
  }

  state(): PostgresStoreState {
    return {
      kind: 'postgresql',
      label: this.label,
      connected: this.connected,
      lastSyncAt: this.lastSyncAt,
      changeDetection: this.changeDetection,
      notifications: this.notifications,
      reconnects: this.reconnects,
      downSince: this.connected ? undefined : this.downSince,
    };
  }

  /** Reads for the map reloader: the whole table, then the change the route table needs. */
  readonly reader: MapReader = {
    read: async (full: boolean): Promise<MapUpdate> => this.differ.next(await this.readAll(), full),
    close: () => {},
  };

  /** Disconnects and stops every timer. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopTimers();
    clearTimeout(this.retry);
    const client = this.client;
    this.client = undefined;
    this.connected = false;
    if (client !== undefined) {
      // end() waits for the server; over a dead network it would wait forever.
      const socket = this.socket;
      const timer = setTimeout(() => socket?.destroy(), 1000);
      await client.end().catch(() => {});
      clearTimeout(timer);
    }
  }

  /**
   * One complete read in one read-only snapshot: the change mark, then every
   * row through a cursor. Throws SessionMapError (`no-table` until Galaxy
   * creates its table, `unreadable` when the database cannot be reached).
   */
  async readAll(): Promise<MapRead> {
    const client = this.connected ? this.client : undefined;
    if (client === undefined) {
      throw new SessionMapError('unreadable', this.label, `session map ${this.label}: not connected to the database`);
    }
    const rows: string[] = [];
    const skipped = new SkipCounter();
    let mark: string | undefined;
    try {
      await this.query(client, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      try {
        const counter = (await this.query<{ counter: boolean }>(client, HAS_COUNTER)).rows[0]?.counter === true;
        this.changeDetection = counter ? 'counter' : 'table-digest';
        mark = await this.readMark(client, counter);
        await this.query(client, `DECLARE gxitproxy_rows NO SCROLL CURSOR FOR SELECT ${READ_COLUMNS} FROM gxitproxy`);
        for (;;) {
          const chunk = await this.query<GxitproxyRow>(client, `FETCH ${this.options.fetchRows} FROM gxitproxy_rows`);
          for (const row of chunk.rows) rows.push(rowLine(row.key, row.host, row.port));
          if (chunk.rows.length < this.options.fetchRows) break;
        }
      } finally {
        // A failed statement aborted the transaction: ROLLBACK ends it either way.
        await this.query(client, 'ROLLBACK').catch(() => {});
      }
    } catch (err) {
      throw this.readError(err);
    }
    this.syncedMark = mark;
    this.lastSyncAt = Date.now();
    return { format: POSTGRES_FORMAT, rows: rows.join(''), uniqueKeys: false, skipped: skipped.byReason };
  }

  private async readMark(client: pg.Client, counter: boolean): Promise<string | undefined> {
    if (counter) return `c${(await this.query<{ version: string }>(client, COUNTER)).rows[0]?.version ?? ''}`;
    if (this.options.pollIntervalMs === 0) return undefined; // nobody compares it
    return `d${(await this.query<{ digest: string }>(client, DIGEST)).rows[0]?.digest ?? ''}`;
  }

  private readError(err: unknown): SessionMapError {
    if (err instanceof SessionMapError) return err;
    const e = err as { code?: string; message?: string };
    if (e.code === '42P01') {
      return new SessionMapError('no-table', this.label, `session map ${this.label}: table gxitproxy does not exist yet (Galaxy creates it when the first Interactive Tool starts)`, { cause: err });
    }
    if (e.code === '42501') {
      return new SessionMapError('unreadable', this.label, `session map ${this.label}: permission denied: ${e.message ?? ''} (GRANT SELECT ON gxitproxy to the proxy's role)`, { cause: err });
    }
    return new SessionMapError('unreadable', this.label, `session map ${this.label}: ${e.message ?? String(err)}`, { cause: err });
  }

  private async connectLoop(): Promise<void> {
    while (!this.closed) {
      let reason: Error;
      try {
        reason = await this.connectOnce();
      } catch (err) {
        reason = err as Error;
      }
      if (this.closed) return;
      this.disconnected(reason);
      const delay = this.backoff();
      await new Promise<void>((resolve) => {
        this.retry = setTimeout(resolve, delay);
      });
    }
  }

  /** Connects, LISTENs, asks for a full read, then resolves with whatever ended the connection. */
  private async connectOnce(): Promise<Error> {
    this.attempt++;
    const { config } = this.location;
    let socket: net.Socket | undefined;
    const client = new pg.Client({
      ...config,
      application_name: config.application_name ?? 'galaxy-gie-proxy',
      keepAlive: true,
      keepAliveInitialDelayMillis: Math.max(1000, this.options.heartbeatMs),
      connectionTimeoutMillis: this.options.connectTimeoutMs,
      statement_timeout: this.options.statementTimeoutMs,
      idle_in_transaction_session_timeout: this.options.statementTimeoutMs * 2,
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
      this.observer.notified?.();
      this.changed();
    });
    this.client = client;
    this.queue = Promise.resolve();
    try {
      await client.connect();
      this.socket = socket;
      if (this.closed) throw new ConnectionLost('closed');
      // LISTEN before the read: a change committed in between is then either
      // in the read or notified afterwards, never lost.
      await this.query(client, `LISTEN ${CHANNEL}`);
    } catch (err) {
      this.drop(client, socket);
      return err as Error;
    }
    this.connected = true;
    this.connectedNow();
    this.changed();
    this.startTimers(client);
    const reason = await ended;
    this.drop(client, socket);
    return reason;
  }

  private connectedNow(): void {
    const wasDown = this.downSince;
    const first = !this.everConnected;
    this.everConnected = true;
    this.attempt = 0;
    this.downSince = undefined;
    this.observer.connectionChanged?.(true);
    if (first) {
      this.log.info({ store: this.label }, 'session map database connected');
    } else {
      this.reconnects++;
      this.observer.reconnected?.();
      this.log.info({ store: this.label, downMs: wasDown === undefined ? 0 : Date.now() - wasDown, warned: this.warnedOutage }, 'session map database reconnected; reading the map again');
    }
    this.warnedOutage = false;
  }

  private disconnected(reason: Error): void {
    const wasConnected = this.connected;
    this.connected = false;
    this.stopTimers();
    this.syncedMark = undefined;
    if (wasConnected) this.observer.connectionChanged?.(false);
    this.downSince ??= Date.now();
    if (this.warnedOutage) return;
    this.warnedOutage = true;
    const e = reason as { code?: string; message?: string };
    const fields = { store: this.label, reason: e.code ?? reason.name, detail: e.message ?? String(reason) };
    if (this.everConnected) this.log.warn(fields, 'session map database connection lost; keeping the last good map and reconnecting');
    else this.log.warn(fields, 'session map database unreachable; routing nothing until it answers, retrying');
  }

  /** Jittered exponential backoff: between half and all of min·2^attempt, capped. */
  private backoff(): number {
    const { backoffMinMs, backoffMaxMs } = this.options;
    const ceiling = Math.min(backoffMaxMs, backoffMinMs * 2 ** Math.min(this.attempt - 1, 20));
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  private startTimers(client: pg.Client): void {
    this.stopTimers();
    const { heartbeatMs, pollIntervalMs } = this.options;
    this.lastQueryAt = Date.now();
    if (heartbeatMs > 0) {
      this.heartbeat = setInterval(() => {
        if (Date.now() - this.lastQueryAt < heartbeatMs) return;
        // Answered in well under a millisecond by a live server: a short limit.
        this.query(client, 'SELECT 1', heartbeatMs + 1000).catch(() => {});
      }, heartbeatMs);
      this.heartbeat.unref();
    }
    if (pollIntervalMs > 0) {
      this.poll = setInterval(() => void this.pollOnce(client), pollIntervalMs);
      this.poll.unref();
    }
  }

  private stopTimers(): void {
    clearInterval(this.heartbeat);
    clearInterval(this.poll);
    this.heartbeat = undefined;
    this.poll = undefined;
  }

  /** The poll: a read when the change mark moved (or none was ever taken). */
  private async pollOnce(client: pg.Client): Promise<void> {
    if (!this.connected || this.client !== client) return;
    if (this.syncedMark === undefined) {
      this.changed();
      return;
    }
    try {
      const counter = this.syncedMark.startsWith('c');
      const mark = await this.readMark(client, counter);
      if (mark !== this.syncedMark) this.changed();
    } catch {
      // a lost connection is reported by the client's events; a missing
      // counter table (dropped trigger) makes the next read switch to digests
      this.syncedMark = undefined;
    }
  }

  /**
   * Runs statements one at a time: pg queues concurrent ones itself but warns
   * on stderr that it will stop doing so, and a time-out must only count the
   * statement's own time, not the wait behind a FETCH.
   */
  private query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    client: pg.Client,
    sql: string,
    limit = this.options.statementTimeoutMs + 1000,
  ): Promise<pg.QueryResult<R>> {
    const run = this.queue.then(() => this.timedQuery<R>(client, sql, limit));
    this.queue = run.catch(() => {});
    return run;
  }

  /**
   * Runs one statement, bounded on the client side too: a statement time-out
   * cannot fire over a network that lost the packets, so past it (plus a
   * margin) the connection is taken for dead and cut.
   */
  private async timedQuery<R extends pg.QueryResultRow>(client: pg.Client, sql: string, limit: number): Promise<pg.QueryResult<R>> {
    if (this.client !== client) throw new ConnectionLost('connection replaced');
    this.lastQueryAt = Date.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        client.query<R>(sql),
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
  }

  private drop(client: pg.Client, socket: net.Socket | undefined): void {
    if (this.client === client) {
      this.client = undefined;
      this.socket = undefined;
      this.lost = undefined;
    }
    client.removeAllListeners('notification');
    // Errors after this point belong to a connection we gave up on.
    client.on('error', () => {});
    socket?.destroy();
    void client.end().catch(() => {});
  }
}

/** The trigger SQL shipped in the package (see gxitproxy-trigger.sql). */
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

/**
 * Applies the trigger SQL (idempotent) as the URL's role and reports what is
 * there now. The one statement this package ever writes with; an admin step.
 * Throws an Error whose message names the store by its label only.
 */
export async function installTrigger(location: PostgresLocation, options: Pick<PostgresStoreOptions, 'connectTimeoutMs' | 'statementTimeoutMs'> = POSTGRES_DEFAULTS): Promise<TriggerReport> {
  const client = new pg.Client({
    ...location.config,
    application_name: location.config.application_name ?? 'galaxy-gie-proxy --install-trigger',
    connectionTimeoutMillis: options.connectTimeoutMs,
    statement_timeout: options.statementTimeoutMs,
  });
  client.on('error', () => {});
  try {
    await client.connect();
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
    await client.query('ROLLBACK').catch(() => {});
    throw new Error(`cannot install the trigger in ${location.label}: ${e.message ?? String(err)}${e.code === '42501' ? ' (run it as a role that may create tables and functions in this schema)' : ''}`, {
      cause: err,
    });
  } finally {
    await client.end().catch(() => {});
  }
}
