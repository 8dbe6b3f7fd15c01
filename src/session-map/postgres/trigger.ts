import { readFileSync } from 'node:fs';
import type pg from 'pg';
import { loadPg, POSTGRES_TUNING, type PostgresTuning } from './connection.js';
import type { PostgresLocation } from './url.js';

/**
 * The one write this package ever makes, an admin step (`--install-trigger`):
 * our statement-level trigger on Galaxy's `gxitproxy` and its change counter
 * (gxitproxy-trigger.sql, beside this module), applied idempotently.
 */

/** The change counter our trigger bumps once per Galaxy transaction. */
export const COUNTER = 'SELECT version::text AS version FROM gxitproxy_version';

/** The trigger SQL shipped in the package (gxitproxy-trigger.sql beside this module). */
function triggerSql(): string {
  return readFileSync(new URL('./gxitproxy-trigger.sql', import.meta.url), 'utf8');
}

/** What `--install-trigger` did. */
interface TriggerReport {
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
