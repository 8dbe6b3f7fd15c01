import net from 'node:net';
import type pg from 'pg';
import type { Logger } from '../../log.js';
import { SessionMapError } from '../store.js';
import { classifyConnectFailure, connectContext, type ConnectContext, type ConnectRefusal } from './connect-failure.js';
import type { PostgresLocation } from './url.js';
import { parsePostgresUrl } from './url.js';

/**
 * The one connection of a thread to one PostgreSQL map, shared by its store
 * and its change watch (store.ts): it connects in the background,
 * LISTENs on the channel both triggers notify, runs statements one at a time
 * with a time-out on both sides, sends a heartbeat when idle, and after any
 * loss keeps trying with jittered, capped exponential backoff, warning once
 * per outage. A permanent cause (connect-failure.ts: the login or the
 * database refused, no password, TLS not to be had) is no outage: it is
 * logged as one error naming the fix, shown in /health, and retried slowly,
 * so that the admin's fix is picked up without a restart. Each new
 * connection is a new epoch: the store reads the whole map again, since
 * notifications sent meanwhile are lost.
 */

/**
 * `pg`, loaded on first use: a proxy on a file map never pays for it (its
 * import takes a noticeable part of a start-up).
 */
let pgModule: Promise<typeof pg> | undefined;
export function loadPg(): Promise<typeof pg> {
  return (pgModule ??= import('pg').then((m) => m.default));
}

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
  /**
   * The same for a permanent cause (connect-failure.ts), which only an
   * admin ends: slow enough not to fill the server's log, quick enough that
   * a fix is picked up within a minute.
   */
  readonly refusedBackoffMinMs: number;
  readonly refusedBackoffMaxMs: number;
}

export const POSTGRES_TUNING: PostgresTuning = Object.freeze({
  heartbeatMs: 2000,
  statementTimeoutMs: 5000,
  connectTimeoutMs: 5000,
  backoffMinMs: 200,
  backoffMaxMs: 5000,
  refusedBackoffMinMs: 5000,
  refusedBackoffMaxMs: 60_000,
});

/**
 * How long a read waits for a connection (the first one, or the next one
 * during an outage, tried at once) before it reports the map unreadable.
 */
const CONNECT_WAIT_MS = 1500;

/** The channel gx-it-proxy LISTENs on; both triggers notify there. */
const CHANNEL = 'gxitproxy';

/** Log messages of the database connection that admins (and tests) match on. */
export const PG_LOG = Object.freeze({
  connected: 'session map database connected',
  unreachable: 'session map database unreachable; routing nothing until it answers, retrying',
  lost: 'session map database connection lost; keeping the last good map and reconnecting',
  back: 'session map database reconnected; reading the map again',
  refused: 'session map database refuses the connection for a reason only an admin can fix (see detail); retrying slowly',
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
  /**
   * While the last attempt failed for a permanent cause (connect-failure.ts):
   * which, and the cause and fix as the error line says them; null otherwise
   * (connected, or an outage).
   */
  readonly problem: { readonly reason: string; readonly message: string } | null;
}


/** Whether our trigger's change counter is there (the heartbeat asks too, for /health). */
export const HAS_COUNTER = `SELECT to_regclass('gxitproxy_version') IS NOT NULL AS counter`;

/** See PostgresStatus.changeDetection. */
type ChangeDetection = 'counter' | 'row-versions';

/** A connection that went away, or was given up on. */
export class ConnectionLost extends Error {
  override readonly name = 'ConnectionLost';
  readonly code = 'ERR_GIE_PG_CONNECTION_LOST';
}

/**
 * The one connection to one map: connects in the background from creation
 * until the last user releases it.
 */
export class PgConnection {
  private client: pg.Client | undefined;
  private socket: net.Socket | undefined;
  private connected = false;
  private closed = false;
  private everConnected = false;
  private attempt = 0;
  private downSince: number | undefined;
  /** What was last logged of the current failure (an outage, or a permanent cause): said once until it changes. */
  private reported: string | undefined;
  /** The permanent cause the last attempt failed for, if it did. */
  private problem: ConnectRefusal | undefined;
  /** Attempts failed in a row for a permanent cause (its backoff). */
  private refusedAttempts = 0;
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
  /** The last read found no table gxitproxy (Galaxy has not created it yet): a LISTEN-only watch polls for it. */
  tableMissing = false;
  users = 0;
  private log: Logger | undefined;
  readonly listeners = new Set<() => void>();

  constructor(
    readonly location: PostgresLocation,
    readonly tuning: PostgresTuning,
    private readonly context: ConnectContext = connectContext(location),
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
      problem: this.problem === undefined ? null : { reason: this.problem.reason, message: this.problem.message },
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
    if (client === undefined && this.problem !== undefined) {
      throw new SessionMapError('refused', this.label, `session map ${this.label}: ${this.problem.message}`);
    }
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
      // Whether our trigger's counter is there, for /health from the start:
      // the watch's connection makes no reads (the reader thread's does).
      this.changeDetection = detection((await this.query<{ counter: boolean }>(client, HAS_COUNTER)).rows[0]?.counter === true);
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
    this.reported = undefined;
    this.problem = undefined;
    this.refusedAttempts = 0;
  }

  private disconnected(reason: Error): void {
    this.connected = false;
    clearInterval(this.heartbeat);
    this.downSince ??= Date.now();
    this.lastReason = reason.message;
    this.lastReasonCode = (reason as { code?: string }).code ?? reason.name;
    this.problem = classifyConnectFailure(reason, this.context);
    this.refusedAttempts = this.problem === undefined ? 0 : this.refusedAttempts + 1;
    this.reportFailure();
  }

  /** From now on connection changes are logged here (the watch's logger); a failure already under way too. */
  attachLog(log: Logger): void {
    this.log = log;
    if (!this.connected && this.downSince !== undefined) this.reportFailure();
  }

  /**
   * The one line of a failure: an error naming the fix for a permanent
   * cause, a warning for an outage; again only when the cause changes.
   */
  private reportFailure(): void {
    if (this.log === undefined) return;
    const { problem } = this;
    const key = problem === undefined ? 'outage' : `${problem.reason}\n${problem.message}`;
    if (this.reported === key) return;
    this.reported = key;
    if (problem !== undefined) {
      this.log.error({ store: this.label, reason: problem.reason, detail: problem.message }, PG_LOG.refused);
      return;
    }
    const fields = { store: this.label, reason: this.lastReasonCode, detail: this.lastReason };
    this.log.warn(fields, this.everConnected ? PG_LOG.lost : PG_LOG.unreachable);
  }

  /**
   * Jittered exponential backoff: between half and all of min·2^(n-1),
   * capped; n counts the failed attempts, and for a permanent cause the
   * slow backoff counts those in a row.
   */
  private backoff(): number {
    const slow = this.problem !== undefined;
    const min = slow ? this.tuning.refusedBackoffMinMs : this.tuning.backoffMinMs;
    const max = slow ? this.tuning.refusedBackoffMaxMs : this.tuning.backoffMaxMs;
    const n = slow ? this.refusedAttempts : this.attempt;
    const ceiling = Math.min(max, min * 2 ** Math.min(Math.max(n - 1, 0), 20));
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

export function detection(counter: boolean): ChangeDetection {
  return counter ? 'counter' : 'row-versions';
}

/** The connections of this thread, one per map, shared by its store and its watch. */
const connections = new Map<string, PgConnection>();

export function acquire(spec: string, tuning: PostgresTuning): PgConnection {
  let connection = connections.get(spec);
  if (connection === undefined) {
    const location = parsePostgresUrl(spec);
    connection = new PgConnection(location, tuning, connectContext(location));
    connections.set(spec, connection);
  }
  connection.users++;
  return connection;
}

export function release(spec: string, connection: PgConnection): void {
  if (--connection.users > 0 || connections.get(spec) !== connection) return;
  connections.delete(spec);
  connection.close();
}
