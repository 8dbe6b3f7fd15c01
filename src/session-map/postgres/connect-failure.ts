import type { PostgresLocation } from './url.js';

/**
 * Why a connection attempt to the map's database failed, as an admin must
 * hear it: a permanent cause (the login or the database is refused, no
 * password, TLS cannot be had) names the cause and the fix, and is retried
 * slowly, since only an admin's change ends it; anything else (refused or
 * reset connections, time-outs, a server starting or shutting down, too
 * many clients) is an outage, retried fast and warned about as before.
 * Classified on what an attempt finally ended with (after libpq's second
 * try, for sslmode prefer and allow).
 */

/** A permanent cause, as the `error` line, /health and `--check` name it. */
export type RefusalReason =
  | 'password-failed' // 28P01
  | 'no-role' // 28000: role "x" does not exist
  | 'no-user-name' // 28000: no user name in the start-up packet
  | 'no-hba-entry' // 28000: no pg_hba.conf line for this host, user, database (and encryption)
  | 'auth-failed' // 28000: peer, ident, cert… authentication, or pg_hba.conf `reject`
  | 'no-database' // 3D000
  | 'no-connect-privilege' // 42501 at connection
  | 'no-password' // the server asks for one and none is to be found (or the password file is unusable)
  | 'tls-unavailable' // sslmode require/verify-*: the server has no TLS
  | 'tls-certificate'; // the server's certificate cannot be verified

/** A permanent cause and what to do about it (the text holds no password). */
export interface ConnectRefusal {
  readonly reason: RefusalReason;
  /** The cause and the fix, in one sentence or two. */
  readonly message: string;
}

/** What the proxy knows of its own connection settings, to say where they came from. */
export interface ConnectContext {
  /** The role connected as, when the proxy knows it (pg falls back to the OS user). */
  readonly user: string | undefined;
  /** Where the user name came from: the URL, PGUSER, or libpq's default (the user the proxy runs as). */
  readonly userFrom: string;
  /** Where the password comes from: `the URL`, `PGPASSWORD` or `the password file <path>`. */
  readonly passwordFrom: string;
  readonly database: string | undefined;
  /** libpq's sslmode as given (URL, else PGSSLMODE); undefined: libpq's default, prefer. */
  readonly sslmode: string | undefined;
}

/** Certificate checks Node's TLS reports by these codes. */
const CERTIFICATE_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

const quoted = (name: string | undefined): string => (name === undefined ? 'the role' : `"${name}"`);

/**
 * The permanent cause of a failed connection attempt, or undefined for an
 * outage (retry fast). `err` is what the attempt ended with.
 */
export function classifyConnectFailure(err: Error, context: ConnectContext): ConnectRefusal | undefined {
  const code = (err as { code?: unknown }).code;
  const text = err.message;
  if (code === 'ERR_GIE_POSTGRES_PASSWORD' || code === 'ERR_GIE_PGPASS_UNUSABLE') {
    // Its message says where the proxy looked and what to add (url.ts, pgpass.ts).
    return { reason: 'no-password', message: text };
  }
  if (typeof code === 'string' && CERTIFICATE_CODES.has(code)) return { reason: 'tls-certificate', message: certificateFix(code, text) };
  if (text === 'The server does not support SSL connections') {
    return {
      reason: 'tls-unavailable',
      message: `${text}, and sslmode=${context.sslmode ?? 'require'} demands TLS: turn ssl on in the server's postgresql.conf (with a certificate), or use sslmode=prefer or disable in --sessions`,
    };
  }
  switch (code) {
    case '28P01':
      return { reason: 'password-failed', message: passwordFix(text, context) };
    case '28000':
      return loginRefused(text, context);
    case '3D000': {
      const db = /database "(.*)" does not exist/.exec(text)?.[1] ?? context.database ?? '';
      return {
        reason: 'no-database',
        message: `${text}: create it (createdb ${shellWord(db)}) or name Galaxy's database in --sessions (Galaxy's interactivetoolsproxy_map)`,
      };
    }
    case '42501':
      return {
        reason: 'no-connect-privilege',
        message: `${text}: GRANT CONNECT ON DATABASE ${context.database ?? '<database>'} TO ${context.user ?? '<role>'}`,
      };
    default:
      return undefined;
  }
}

/** 28000: who was refused, and why. */
function loginRefused(text: string, context: ConnectContext): ConnectRefusal {
  const role = /role "(.*)" does not exist/.exec(text)?.[1];
  if (role !== undefined) {
    return {
      reason: 'no-role',
      message: `${text} (the user name comes from ${context.userFrom}): create it (createuser ${shellWord(role)}) or name another user in the URL`,
    };
  }
  if (/no PostgreSQL user name specified/i.test(text)) {
    return { reason: 'no-user-name', message: `${text}: name a user in the URL (postgresql://user@host/database) or in PGUSER` };
  }
  if (/no pg_hba\.conf entry/.test(text)) {
    const tls = /no encryption/.test(text)
      ? `; if the server takes this connection only over TLS (hostssl), use sslmode=require (or verify-full with sslrootcert) instead of sslmode=${context.sslmode ?? 'prefer'}`
      : '';
    return {
      reason: 'no-hba-entry',
      message: `${text} (the user name comes from ${context.userFrom}): add a line for this host, user and database to the server's pg_hba.conf and reload it (pg_ctl reload)${tls}`,
    };
  }
  return {
    reason: 'auth-failed',
    message: `${text} (user ${quoted(context.user)}, from ${context.userFrom}): fix the server's pg_hba.conf line for this connection and reload it, or connect as a user it lets in`,
  };
}

/** 28P01: where the password came from, so the admin knows which one to fix. */
function passwordFix(text: string, context: ConnectContext): string {
  const role = /for user "(.*)"/.exec(text)?.[1] ?? context.user;
  const name = role === undefined ? '<role>' : shellWord(role);
  return `${text} (the password came from ${context.passwordFrom}; the user name from ${context.userFrom}): give the role's password there, or set it with ALTER ROLE ${name} PASSWORD '…'; the server says the same when the role does not exist (createuser --pwprompt ${name})`;
}

/** A certificate that cannot be verified: which setting to change. */
function certificateFix(code: string, text: string): string {
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return `the server's certificate is not for the host name in --sessions (${text}): connect by a name the certificate holds, or use sslmode=verify-ca`;
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return `the server's certificate cannot be used (${code}: ${text}): renew the server's certificate`;
  }
  return `the server's certificate cannot be verified (${code}: ${text}): give the CA that signed it as sslrootcert=/path/root.crt in --sessions (or PGSSLROOTCERT, or ~/.postgresql/root.crt), or use sslmode=require to encrypt without checking it`;
}

/** A name as a shell word, quoted when it must be. */
function shellWord(name: string): string {
  return /^[A-Za-z0-9_.-]+$/.test(name) ? name : `'${name.replaceAll("'", "'\\''")}'`;
}

/** Where the settings of `location` come from, as the messages above say it. */
export function connectContext(location: PostgresLocation): ConnectContext {
  const from = location.origins.user;
  const userFrom = from === 'url' ? 'the URL' : from === 'default' ? "the operating-system user the proxy runs as (libpq's default)" : from;
  return { user: location.config.user, userFrom, passwordFrom: location.passwordFrom, database: location.config.database, sslmode: location.sslmode };
}
