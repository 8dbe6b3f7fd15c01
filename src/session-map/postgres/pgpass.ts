import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * libpq's password file (`~/.pgpass`, or `PGPASSFILE`), read the way libpq
 * reads it (PostgreSQL 15, `passwordFromFile`): lines
 * `host:port:database:user:password`, `*` matching anything in the first
 * four fields, `\:` and `\\` escaping (in the password as well), `#` lines ignored, the first match
 * wins; a connection over the default socket directory (or with no host)
 * matches `localhost`; a file that is not a plain file, or that the group or
 * others may read, is not used.
 *
 * Unlike `pg`'s own look-up (the `pgpass` package), nothing is written to
 * stderr and no deprecation warning is raised: what goes wrong is told in
 * the error the connection fails with (no password found, the file's
 * permissions), which the store logs once.
 */

/** Where the server looks by default (Debian's libpq, and upstream's), as libpq names them in the file: `localhost`. */
const DEFAULT_SOCKET_DIRS = new Set(['/var/run/postgresql', '/run/postgresql', '/tmp']);

/** What a password is looked up for (pg's connection parameters, defaults applied). */
export interface PgpassTarget {
  readonly host?: string;
  readonly port?: number | string;
  readonly database?: string;
  readonly user?: string;
}

/**
 * The file libpq would read: `PGPASSFILE`, else `.pgpass` in the home
 * directory (HOME, else `home`: the user's entry in the password database,
 * as libpq falls back to it); undefined without any.
 */
export function pgpassPath(env: NodeJS.ProcessEnv, home?: string): string | undefined {
  if (env.PGPASSFILE !== undefined && env.PGPASSFILE !== '') return env.PGPASSFILE;
  if (env.HOME !== undefined && env.HOME !== '') return join(env.HOME, '.pgpass');
  if (home !== undefined && home !== '') return join(home, '.pgpass');
  return undefined;
}

/** The password file exists but is not used, as libpq would not use it. */
export class PgpassUnusableError extends Error {
  override readonly name = 'PgpassUnusableError';
  readonly code = 'ERR_GIE_PGPASS_UNUSABLE';
}

/** Splits one line into its fields, undoing `\:` and `\\` (the password too: it ends at the next unescaped colon, as in libpq). */
function fields(line: string): string[] {
  const out: string[] = [];
  let current = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\' && i + 1 < line.length) {
      current += line[++i];
    } else if (c === ':') {
      out.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  out.push(current);
  return out;
}

/** The password for `target` in the text of a password file, or undefined. */
export function pgpassLookup(text: string, target: PgpassTarget): string | undefined {
  const host = target.host === undefined || target.host === '' || DEFAULT_SOCKET_DIRS.has(target.host) ? 'localhost' : target.host;
  const wanted = [host, String(target.port ?? 5432), target.database ?? '', target.user ?? ''];
  for (const raw of text.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '' || line.startsWith('#')) continue;
    const f = fields(line);
    if (f.length < 5) continue;
    if (wanted.every((value, i) => f[i] === '*' || f[i] === value)) return f[4];
  }
  return undefined;
}

/**
 * The password for `target` from the file at `path`: undefined when the file
 * does not exist or holds no matching line; throws PgpassUnusableError when
 * it exists but libpq would refuse it.
 */
export async function pgpassPassword(path: string, target: PgpassTarget): Promise<string | undefined> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch {
    return undefined;
  }
  if (!info.isFile()) throw new PgpassUnusableError(`password file ${path} is not a plain file, so it is not used`);
  if ((info.mode & 0o077) !== 0) {
    const mode = (info.mode & 0o777).toString(8).padStart(4, '0');
    throw new PgpassUnusableError(`password file ${path} may be read by others (mode ${mode}), so it is not used, as libpq would not use it: chmod 0600 ${path}`);
  }
  return pgpassLookup(await readFile(path, 'utf8'), target);
}
