import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * libpq's connection service file (`service=name` in the URL, or
 * PGSERVICE), read as libpq 15 reads it (`parseServiceInfo`): the user's
 * file (PGSERVICEFILE, else `~/.pg_service.conf`) first, and only when the
 * service is not there the system's (`PGSYSCONFDIR/pg_service.conf`, else
 * the sysconfdir of Debian's and Ubuntu's libpq, /etc/postgresql-common).
 * Lines are `[name]` and `keyword=value`; blanks around a line and `#`
 * lines are ignored; within a service the first setting of a keyword wins.
 */

/** Where Debian's and Ubuntu's libpq look for the system's service file when PGSYSCONFDIR is not set. */
export const DEFAULT_SYSCONFDIR = '/etc/postgresql-common';

/** A service that is not defined, or a service file libpq would refuse; the message names the file and line. */
export class PgServiceError extends Error {
  override readonly name = 'PgServiceError';
  readonly code = 'ERR_GIE_PG_SERVICE';
}

/** The two files libpq reads, in its order. */
export function serviceFiles(env: NodeJS.ProcessEnv, home: string | undefined): string[] {
  const user = env.PGSERVICEFILE !== undefined && env.PGSERVICEFILE !== '' ? env.PGSERVICEFILE : home === undefined ? undefined : join(home, '.pg_service.conf');
  const sysconfdir = env.PGSYSCONFDIR !== undefined && env.PGSYSCONFDIR !== '' ? env.PGSYSCONFDIR : DEFAULT_SYSCONFDIR;
  return [...(user === undefined ? [] : [user]), join(sysconfdir, 'pg_service.conf')];
}

/**
 * The settings of service `name` in the text of one file, or undefined when
 * the file does not define it. Throws PgServiceError for a line libpq
 * refuses (no `=`, a nested `service=`, a keyword `known` does not hold).
 */
export function serviceSettings(text: string, name: string, file: string, known: (keyword: string) => boolean): Map<string, string> | undefined {
  let found: Map<string, string> | undefined;
  let inService = false;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i]).trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('[')) {
      // libpq stops at the end of the service it found.
      if (found !== undefined) break;
      inService = line === `[${name}]`;
      if (inService) found = new Map();
      continue;
    }
    if (!inService || found === undefined) continue;
    const eq = line.indexOf('=');
    const where = `${file}, line ${i + 1}`;
    if (eq < 0) throw new PgServiceError(`syntax error in service file ${where}: not keyword=value`);
    const keyword = line.slice(0, eq);
    if (keyword === 'service') throw new PgServiceError(`nested service specifications are not supported (service file ${where})`);
    if (!known(keyword)) throw new PgServiceError(`service file ${where}: ${JSON.stringify(keyword)} is not a libpq connection keyword`);
    if (!found.has(keyword)) found.set(keyword, line.slice(eq + 1));
  }
  return found;
}

/**
 * The settings of service `name`, from the first of `files` that defines
 * it. Throws PgServiceError when none does (libpq: "definition of service
 * not found") or a file is unreadable for another reason than not existing.
 */
export function lookUpService(name: string, files: readonly string[], known: (keyword: string) => boolean): Map<string, string> {
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new PgServiceError(`service file ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    const settings = serviceSettings(text, name, file, known);
    if (settings !== undefined) return settings;
  }
  throw new PgServiceError(`definition of service ${JSON.stringify(name)} not found (looked in ${files.join(', ')})`);
}
