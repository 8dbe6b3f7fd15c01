import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, chownSync, chmodSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import pg from 'pg';
import { freePort } from './ports.js';
import { TcpRelay } from './tcp-relay.js';
import { makeCa, makeServerCert } from './tls-certs.js';

/** Debian's PostgreSQL 15 binaries (`apt-get install -y postgresql`). */
export const PG_BIN = '/usr/lib/postgresql/15/bin';
export const PG_INSTALL = 'apt-get install -y postgresql';

/** The superuser every throw-away cluster is made with. */
export const PG_SUPERUSER = 'postgres';

/** True when Debian's PostgreSQL 15 server binaries are installed. */
export function postgresInstalled(): boolean {
  try {
    accessSync(join(PG_BIN, 'pg_ctl'), constants.X_OK);
    accessSync(join(PG_BIN, 'initdb'), constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Skips the test where PostgreSQL is absent (with the install command), and
 * fails it in CI (.ci/run installs it). Returns false when skipped.
 */
export function requirePostgres(t: TestContext): boolean {
  if (postgresInstalled()) return true;
  const reason = `PostgreSQL 15 is not installed (${PG_INSTALL})`;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI must have it: see .ci/run`);
  t.skip(reason);
  return false;
}

export interface ClusterOptions {
  /** Also listen on 127.0.0.1 (a free port), for URLs with a host name and for the relay. */
  readonly tcp?: boolean;
  /**
   * Authentication for TCP connections (`trust` by default). With
   * `scram-sha-256` a password is needed over TCP; the unix socket stays `trust`.
   */
  readonly hostAuth?: 'trust' | 'scram-sha-256';
  /**
   * The port (and so the socket file `.s.PGSQL.PORT`); default a free one. A
   * fixed 5432 with `extraSocketDirs: ['/var/run/postgresql']` is what a URL
   * without host and port reaches, as libpq's defaults have it.
   */
  readonly port?: number;
  /** More socket directories beside the temp dir (e.g. libpq's default, /var/run/postgresql). */
  readonly extraSocketDirs?: readonly string[];
  /** Extra `-c name=value` server settings. */
  readonly settings?: Readonly<Record<string, string>>;
  /**
   * `ssl = on` with a server certificate for localhost and 127.0.0.1, signed
   * by a CA made for this cluster (`caFile`), all made with openssl at start.
   */
  readonly tls?: boolean;
  /**
   * pg_hba.conf lines for TCP in place of initdb's (`hostAuth` is then
   * unused), such as `hostssl all all 127.0.0.1/32 scram-sha-256`; the unix
   * socket stays `trust` (the helper's own connections).
   */
  readonly hba?: readonly string[];
}

/** How a shutdown is asked for (`pg_ctl stop -m …`). */
export type StopMode = 'smart' | 'fast' | 'immediate';

const running = new Set<PgCluster>();
process.on('exit', () => {
  // A test process that dies must not leave a postmaster behind.
  for (const cluster of running) cluster.destroySync();
});
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  // Killed (a time-out, Ctrl-C): stop the clusters, then die of the same signal.
  process.once(signal, () => {
    for (const cluster of running) cluster.destroySync();
    process.kill(process.pid, signal);
  });
}

/**
 * A throw-away PostgreSQL cluster in a temp dir: initdb as the `postgres`
 * user when run as root (initdb refuses root), `trust` on the unix socket,
 * `fsync=off`, socket in the same dir, optionally 127.0.0.1 on a free port.
 * One per test file: `const cluster = new PgCluster(); after(() => cluster.destroy());`
 * then `await cluster.ready(t)` in each test (starts it once, skips without PostgreSQL).
 */
export class PgCluster {
  /** The temp dir: data in `data/`, the socket and the server log beside it. */
  dir = '';
  dataDir = '';
  logFile = '';
  /** Port of the socket file (`.s.PGSQL.PORT`) and of 127.0.0.1 with `tcp`. */
  port = 0;
  /** With `tls`: the CA certificate that signed the server's (a client's `sslrootcert`). */
  caFile = '';
  private starting: Promise<void> | undefined;
  private admin: pg.Pool | undefined;

  constructor(readonly options: ClusterOptions = {}) {}

  /** Starts the cluster on first call (initdb + start, about two seconds); false when the test was skipped. */
  async ready(t: TestContext): Promise<boolean> {
    if (!requirePostgres(t)) return false;
    await (this.starting ??= this.init());
    return true;
  }

  /** The unix socket directory (libpq's `host=`). */
  get socketDir(): string {
    return this.dir;
  }

  /** A URL for database `db` through the unix socket, in the form Galaxy's training material uses. */
  url(db: string, user = PG_SUPERUSER): string {
    return `postgresql://${encodeURIComponent(user)}@/${encodeURIComponent(db)}?host=${encodeURIComponent(this.dir)}&port=${this.port}`;
  }

  /** A URL for database `db` over TCP on 127.0.0.1 (needs `tcp`). */
  tcpUrl(db: string, user = PG_SUPERUSER, password?: string, port = this.port): string {
    const auth = password === undefined ? encodeURIComponent(user) : `${encodeURIComponent(user)}:${encodeURIComponent(password)}`;
    return `postgresql://${auth}@127.0.0.1:${port}/${encodeURIComponent(db)}`;
  }

  /** Connection settings for `pg` through the unix socket. */
  config(db: string, user = PG_SUPERUSER): pg.ClientConfig {
    return { host: this.dir, port: this.port, database: db, user };
  }

  /** Runs SQL as the superuser in database `db` (a pooled connection, kept until destroy). */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[] = [], db = 'postgres'): Promise<pg.QueryResult<R>> {
    if (db !== 'postgres') {
      const client = new pg.Client(this.config(db));
      await client.connect();
      try {
        return await client.query<R>(sql, params);
      } finally {
        await client.end();
      }
    }
    if (this.admin === undefined) {
      this.admin = new pg.Pool({ ...this.config('postgres'), max: 2 });
      // An idle pooled connection cut by a fault test must not crash the test process.
      this.admin.on('error', () => {});
    }
    return this.admin.query<R>(sql, params);
  }

  /** A fresh, empty database with a unique name; returns its name. */
  async createDatabase(prefix = 'gxit'): Promise<string> {
    const name = `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
    await this.query(`CREATE DATABASE ${name}`);
    return name;
  }

  /** Creates a login role with a password (for the `scram-sha-256` host auth). */
  async createRole(name: string, password: string, superuser = false): Promise<void> {
    await this.query(`CREATE ROLE ${name} LOGIN ${superuser ? 'SUPERUSER' : ''} PASSWORD '${password.replaceAll("'", "''")}'`);
  }

  /** `pg_ctl start` (waits until it accepts connections). */
  start(): void {
    this.pgCtl(['start', '-w', '-t', '30', '-l', this.logFile, '-o', this.serverOptions()]);
    running.add(this);
  }

  /** `pg_ctl stop -m MODE`: `fast` is an orderly restart's first half, `immediate` a crash. */
  async stop(mode: StopMode = 'fast'): Promise<void> {
    await this.endAdmin();
    this.pgCtl(['stop', '-w', '-t', '30', '-m', mode]);
    running.delete(this);
  }

  /** `pg_ctl restart -m MODE`. */
  async restart(mode: StopMode = 'fast'): Promise<void> {
    await this.endAdmin();
    this.pgCtl(['restart', '-w', '-t', '30', '-m', mode, '-l', this.logFile, '-o', this.serverOptions()]);
    running.add(this);
  }

  /**
   * `pg_terminate_backend` on every other client backend of database `db`
   * (what an admin or an idle-session killer does); resolves with how many.
   */
  async terminateBackends(db: string): Promise<number> {
    const { rows } = await this.query<{ done: boolean }>(
      `SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity
        WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
      [db],
    );
    return rows.filter((r) => r.done).length;
  }

  /** Stops the server at once and removes the temp dir. */
  async destroy(): Promise<void> {
    await this.endAdmin();
    this.destroySync();
  }

  /** For the exit handler: no awaiting there. */
  destroySync(): void {
    if (this.dir === '') return;
    if (running.has(this)) {
      spawnSync(join(PG_BIN, 'pg_ctl'), ['-D', this.dataDir, 'stop', '-w', '-m', 'immediate'], { stdio: 'ignore', ...this.asOwner() });
      running.delete(this);
    }
    rmSync(this.dir, { recursive: true, force: true });
    this.dir = '';
  }

  private async init(): Promise<void> {
    this.dir = mkdtempSync(join(tmpdir(), 'pg-'));
    this.dataDir = join(this.dir, 'data');
    this.logFile = join(this.dir, 'server.log');
    const owner = this.owner();
    if (owner !== undefined) chownSync(this.dir, owner.uid, owner.gid);
    this.port = this.options.port ?? (await freePort());
    const hostAuth = this.options.hostAuth ?? 'trust';
    this.run(join(PG_BIN, 'initdb'), ['-D', this.dataDir, '-U', PG_SUPERUSER, '--auth-local=trust', `--auth-host=${hostAuth}`, '--no-sync', '-E', 'UTF8', '--locale=C']);
    if (this.options.tcp === true) {
      // initdb's pg_hba.conf only admits 127.0.0.1/32 and ::1 over TCP: what the tests use.
      writeFileSync(join(this.dataDir, 'postgresql.auto.conf'), "listen_addresses = '127.0.0.1'\n");
    }
    if (this.options.hba !== undefined) {
      writeFileSync(join(this.dataDir, 'pg_hba.conf'), ['local all all trust', ...this.options.hba, ''].join('\n'));
    }
    if (this.options.tls === true) {
      // The CA beside the data dir (clients read it); the server's key inside, the owner's only (the server insists).
      const ca = makeCa(this.dir, 'ca');
      this.caFile = ca.certFile;
      const server = makeServerCert(this.dataDir, ca);
      chmodSync(server.keyFile, 0o600);
      if (owner !== undefined) {
        for (const file of [server.certFile, server.keyFile]) chownSync(file, owner.uid, owner.gid);
      }
    }
    this.start();
  }

  private serverOptions(): string {
    const settings: Record<string, string> = {
      // fsync only: a commit still reaches the OS before it returns, so a
      // crash of the server (stop -m immediate) loses nothing committed.
      fsync: 'off',
      max_connections: '200',
      shared_preload_libraries: 'pg_stat_statements',
      ...(this.options.tcp === true ? {} : { listen_addresses: "''" }),
      ...(this.options.tls === true ? { ssl: 'on', ssl_cert_file: 'server.crt', ssl_key_file: 'server.key' } : {}),
      ...this.options.settings,
    };
    const flags = Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`);
    return [`-k '${[this.dir, ...(this.options.extraSocketDirs ?? [])].join(',')}'`, `-p ${this.port}`, ...flags].join(' ');
  }

  private pgCtl(args: string[]): void {
    this.run(join(PG_BIN, 'pg_ctl'), ['-D', this.dataDir, ...args]);
  }

  private run(file: string, args: string[]): void {
    try {
      execFileSync(file, args, { stdio: ['ignore', 'pipe', 'pipe'], ...this.asOwner() });
    } catch (err) {
      const e = err as { stderr?: Buffer; stdout?: Buffer };
      throw new Error(`${file} ${args.join(' ')} failed: ${e.stderr?.toString() ?? ''}${e.stdout?.toString() ?? ''}`, { cause: err });
    }
  }

  /** As root, the cluster runs as `postgres` (initdb refuses root); otherwise as whoever runs the tests. */
  private owner(): { uid: number; gid: number } | undefined {
    if (process.getuid?.() !== 0) return undefined;
    const uid = Number(execFileSync('id', ['-u', PG_SUPERUSER]).toString().trim());
    const gid = Number(execFileSync('id', ['-g', PG_SUPERUSER]).toString().trim());
    return { uid, gid };
  }

  private asOwner(): { uid?: number; gid?: number; cwd: string } {
    const owner = this.owner();
    // cwd: the owner must be able to enter it (root's cwd may be closed to it).
    return owner === undefined ? { cwd: tmpdir() } : { ...owner, cwd: tmpdir() };
  }

  private async endAdmin(): Promise<void> {
    const admin = this.admin;
    this.admin = undefined;
    await admin?.end().catch(() => {});
  }
}

/** The ways a map's database goes away under a proxy, as the outage tests make them. */
export const PG_FAULTS = ['pg_ctl restart -m fast', 'pg_ctl stop -m immediate (a crash), then start', 'pg_terminate_backend', 'a network that drops every packet'] as const;
export type PgFault = (typeof PG_FAULTS)[number];

/**
 * A URL for database `db` through which `fault` can be made: the unix socket,
 * or for the network fault a TCP relay (closed in t.after) that can black-hole.
 */
export async function urlForFault(t: { after: (fn: () => unknown) => void }, cluster: PgCluster, db: string, fault: PgFault): Promise<{ url: string; relay?: TcpRelay }> {
  if (fault !== 'a network that drops every packet') return { url: cluster.url(db) };
  const relay = new TcpRelay(cluster.port);
  await relay.start();
  t.after(() => relay.close());
  return { url: cluster.tcpUrl(db, PG_SUPERUSER, undefined, relay.port), relay };
}

/**
 * Makes `fault` happen; `whileDown` runs while the server is stopped (the
 * crash and restart cases), before it starts again.
 */
export async function injectFault(cluster: PgCluster, fault: PgFault, db: string, relay: TcpRelay | undefined, whileDown: () => Promise<void> | void = () => {}): Promise<void> {
  switch (fault) {
    case 'pg_ctl restart -m fast':
      await cluster.stop('fast');
      await whileDown();
      cluster.start();
      break;
    case 'pg_ctl stop -m immediate (a crash), then start':
      await cluster.stop('immediate');
      await whileDown();
      cluster.start();
      break;
    case 'pg_terminate_backend':
      if ((await cluster.terminateBackends(db)) < 1) throw new Error('no backend of the proxy to terminate');
      break;
    case 'a network that drops every packet':
      relay?.blackHole();
      break;
  }
}
