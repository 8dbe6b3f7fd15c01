import pg from 'pg';

/**
 * Galaxy's Interactive Tools map writer for PostgreSQL
 * (`InteractiveToolPropagatorSQLAlchemy`, Galaxy ≥ 24.2, `interactivetoolsproxy_map:
 * postgresql://…`), statement for statement as SQLAlchemy 2.0 + psycopg2 send
 * them: one transaction per save with `gxitproxy.create(checkfirst=True)`
 * (the catalogue look-up, then CREATE TABLE when missing), the DELETE of the
 * key, the INSERT, COMMIT; a removal is the DELETE and COMMIT. Like
 * SQLAlchemy's pool, it keeps its connection open between writes.
 */

/** What `has_table` asks PostgreSQL (SQLAlchemy 2.0's PGDialect). */
const HAS_TABLE = `SELECT pg_catalog.pg_class.relname 
FROM pg_catalog.pg_class JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace 
WHERE pg_catalog.pg_class.relname = $1 AND pg_catalog.pg_class.relkind = ANY (ARRAY[$2, $3, $4, $5, $6]) AND pg_catalog.pg_table_is_visible(pg_catalog.pg_class.oid) AND pg_catalog.pg_namespace.nspname != $7`;

/** `CreateTable(gxitproxy)` compiled for PostgreSQL (`key` is not reserved there, so unquoted). */
export const GALAXY_CREATE_TABLE = `
CREATE TABLE gxitproxy (
\tkey VARCHAR(16) NOT NULL, 
\tkey_type TEXT NOT NULL, 
\ttoken VARCHAR(32), 
\thost TEXT, 
\tport INTEGER, 
\tinfo TEXT, 
\tPRIMARY KEY (key, key_type)
)

`;

const DELETE = 'DELETE FROM gxitproxy WHERE gxitproxy.key = $1 AND gxitproxy.key_type = $2';
const INSERT = 'INSERT INTO gxitproxy (key, key_type, token, host, port, info) VALUES ($1, $2, $3, $4, $5, $6)';

/** The trigger gx-it-proxy's README asks admins to install: one notification per row. */
export const README_TRIGGER = `
CREATE OR REPLACE FUNCTION notify_gxitproxy() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('gxitproxy', 'Table "gxitproxy" changed');
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER gxitproxy_notify AFTER INSERT OR UPDATE OR DELETE ON gxitproxy
FOR EACH ROW EXECUTE FUNCTION notify_gxitproxy();
`;

/** What Galaxy ≥ 23.1 stores in `info`. */
export const GALAXY_INFO = '{"requires_path_in_url": false, "requires_path_in_header_named": null}';

/** One row as Galaxy saves it. */
export interface EntryPoint {
  readonly key: string;
  readonly token: string;
  readonly host: string;
  readonly port: number;
  readonly keyType?: string;
  readonly info?: string | null;
}

export const KEY_TYPE = 'interactivetoolentrypoint';

export class GalaxyPgWriter {
  private readonly client: pg.Client;
  private connected: Promise<unknown> | undefined;

  constructor(config: pg.ClientConfig | string) {
    this.client = new pg.Client(config);
    // A fault test may cut this connection too; the next write then fails, as Galaxy's would.
    this.client.on('error', () => {});
  }

  /** `save()`: checkfirst create, DELETE, INSERT, COMMIT, in one transaction. */
  async save(entry: EntryPoint): Promise<void> {
    await this.transaction(async (c) => {
      await this.createCheckfirst(c);
      const keyType = entry.keyType ?? KEY_TYPE;
      await c.query(DELETE, [entry.key, keyType]);
      await c.query(INSERT, [entry.key, keyType, entry.token, entry.host, entry.port, entry.info === undefined ? GALAXY_INFO : entry.info]);
    });
  }

  /** `remove(key=…, key_type=…)`: DELETE, COMMIT. */
  async remove(key: string, keyType = KEY_TYPE): Promise<void> {
    await this.transaction(async (c) => {
      await c.query(DELETE, [key, keyType]);
    });
  }

  /** Only what `gxitproxy.create(checkfirst=True)` does (a table with no rows). */
  async createTable(): Promise<void> {
    await this.transaction((c) => this.createCheckfirst(c));
  }

  /**
   * Fills the map with `count` rows quickly (one multi-row INSERT per 5,000,
   * for the scale figures; not Galaxy's path): `key${i}` → host:port.
   */
  async bulkInsert(count: number, host: string, port: number, prefix = 'bulk'): Promise<void> {
    await this.transaction(async (c) => {
      await this.createCheckfirst(c);
      for (let from = 0; from < count; from += 5000) {
        const n = Math.min(5000, count - from);
        await c.query(
          `INSERT INTO gxitproxy (key, key_type, token, host, port, info)
           SELECT $1 || g, $2, 't' || g, $3, $4, $5 FROM generate_series($6::int, $7::int) AS g`,
          [prefix, KEY_TYPE, host, port, GALAXY_INFO, from, from + n - 1],
        );
      }
    });
  }

  /** Installs gx-it-proxy's README trigger (the table must exist). */
  async installReadmeTrigger(): Promise<void> {
    await this.transaction(async (c) => {
      await this.createCheckfirst(c);
      await c.query(README_TRIGGER);
    });
  }

  async close(): Promise<void> {
    if (this.connected === undefined) return;
    await this.client.end().catch(() => {});
  }

  private async transaction(body: (c: pg.Client) => Promise<void>): Promise<void> {
    await (this.connected ??= this.client.connect());
    // psycopg2 opens the transaction implicitly with the first statement.
    await this.client.query('BEGIN');
    try {
      await body(this.client);
      await this.client.query('COMMIT');
    } catch (err) {
      await this.client.query('ROLLBACK').catch(() => {});
      throw err;
    }
  }

  private async createCheckfirst(c: pg.Client): Promise<void> {
    const { rowCount } = await c.query(HAS_TABLE, ['gxitproxy', 'r', 'p', 'f', 'v', 'm', 'pg_catalog']);
    if (rowCount === 0) await c.query(GALAXY_CREATE_TABLE);
  }
}
