import type { EntryPointRow } from '../routing/entry-point-table.js';

/**
 * Galaxy's Interactive Tools map (`gxitproxy`) in the row form the reader,
 * the differ and the reloader share. Two forms:
 *
 * - a **raw** row, as a store reads it: `key TAB key_type TAB token TAB host
 *   TAB port TAB info LF` (info last, so a tab inside it cannot shift the
 *   other fields);
 * - a **routable** row, checked and normalised: `key TAB key_type TAB token
 *   TAB host TAB port TAB flags LF`, flags being `1` or `0`
 *   (requires_path_in_url) followed by the requires_path_in_header_named
 *   header name, if any.
 *
 * The identity of a row is `key TAB key_type` (Galaxy's primary key).
 */

/** Every gxitproxy row as raw row lines, built by SQLite itself (see the cookie tables' query). */
export const GXITPROXY_ROWS_SQL = `SELECT count(*), group_concat(${['"key"', 'key_type', 'token', 'host', 'port']
  .map((c) => `ifnull(${c}, '')`)
  .join(" || char(9) || ")} || char(9) || replace(ifnull(info, ''), char(10), ' ') || char(10), '') FROM gxitproxy`;

/** The same with every value that holds a newline replaced by \x01, which no check accepts. */
export const GXITPROXY_ROWS_SANITISED_SQL = `SELECT count(*), group_concat(${['"key"', 'key_type', 'token', 'host', 'port']
  .map((c) => `CASE WHEN instr(ifnull(${c}, ''), char(10)) THEN char(1) ELSE ifnull(${c}, '') END`)
  .join(" || char(9) || ")} || char(9) || replace(ifnull(info, ''), char(10), ' ') || char(10), '') FROM gxitproxy`;

/** True when (key, key_type) has a unique index (Galaxy's PRIMARY KEY): identities cannot repeat. */
export const GXITPROXY_IDENTITY_IS_UNIQUE_SQL = `SELECT count(*) FROM pragma_index_list('gxitproxy') AS il
  WHERE il."unique" AND (SELECT group_concat(name) FROM pragma_index_info(il.name)) IN ('key,key_type', 'key_type,key')`;

const CONTROL = /[\u0000-\u001f\u007f]/;
// RFC 9110 token: what a header name may be.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Skip reasons for entry-point rows (host and port reasons come from the shared target check). */
export const ENTRY_POINT_SKIP = Object.freeze({
  missingKey: 'missing key',
  malformedKey: 'malformed key',
  missingToken: 'missing token',
  malformedToken: 'malformed token',
  infoNotJson: 'info is not valid JSON',
  infoUnusable: 'info has unusable values',
});

/**
 * Checks one raw row (without its LF). Returns the identity and the routable
 * value (`token TAB host TAB port TAB flags`), or the reason it is skipped.
 * `targetProblem` is the check every map format shares for host and port.
 */
export function checkEntryPointRow(
  line: string,
  targetProblem: (host: string, port: string) => string | undefined,
): { id: string; value: string } | { problem: string } {
  const t1 = line.indexOf('\t');
  const t2 = t1 < 0 ? -1 : line.indexOf('\t', t1 + 1);
  const t3 = t2 < 0 ? -1 : line.indexOf('\t', t2 + 1);
  const t4 = t3 < 0 ? -1 : line.indexOf('\t', t3 + 1);
  const t5 = t4 < 0 ? -1 : line.indexOf('\t', t4 + 1);
  if (t5 < 0) return { problem: ENTRY_POINT_SKIP.malformedKey }; // cannot happen for rows the store made
  const key = line.slice(0, t1);
  const keyType = line.slice(t1 + 1, t2);
  const token = line.slice(t2 + 1, t3);
  const host = line.slice(t3 + 1, t4);
  const port = line.slice(t4 + 1, t5);
  if (key === '') return { problem: ENTRY_POINT_SKIP.missingKey };
  if (CONTROL.test(key) || CONTROL.test(keyType)) return { problem: ENTRY_POINT_SKIP.malformedKey };
  if (token === '') return { problem: ENTRY_POINT_SKIP.missingToken };
  if (CONTROL.test(token)) return { problem: ENTRY_POINT_SKIP.malformedToken };
  const target = targetProblem(host, port);
  if (target !== undefined) return { problem: target };
  const flags = infoFlags(line.slice(t5 + 1));
  if (flags === ENTRY_POINT_SKIP.infoNotJson || flags === ENTRY_POINT_SKIP.infoUnusable) return { problem: flags };
  return { id: `${key}\t${keyType}`, value: `${token}\t${host}\t${port}\t${flags}` };
}

/**
 * The flags field of a routable row from Galaxy's `info` column: `1`/`0` for
 * requires_path_in_url, then the header name of requires_path_in_header_named.
 * NULL info (Galaxy before 23.1) means neither. Returns a skip reason when the
 * text is not JSON or its values are not what Galaxy writes (a boolean or
 * null; a header name or null).
 */
export function infoFlags(info: string): string {
  if (info === '') return '0';
  let parsed: unknown;
  try {
    parsed = JSON.parse(info);
  } catch {
    return ENTRY_POINT_SKIP.infoNotJson;
  }
  if (parsed === null) return '0';
  if (typeof parsed !== 'object' || Array.isArray(parsed)) return ENTRY_POINT_SKIP.infoUnusable;
  const { requires_path_in_url: inUrl, requires_path_in_header_named: header } = parsed as Record<string, unknown>;
  if (inUrl !== undefined && inUrl !== null && typeof inUrl !== 'boolean') return ENTRY_POINT_SKIP.infoUnusable;
  let name = '';
  if (typeof header === 'string') {
    if (header !== '' && !HEADER_NAME.test(header)) return ENTRY_POINT_SKIP.infoUnusable;
    name = header;
  } else if (header !== undefined && header !== null && header !== false) {
    return ENTRY_POINT_SKIP.infoUnusable;
  }
  return `${inUrl === true ? '1' : '0'}${name}`;
}

/** One routable row line (with or without its LF) back to the row the entry-point table takes. */
export function parseRoutableEntryPoint(line: string): EntryPointRow {
  if (line.endsWith('\n')) line = line.slice(0, -1);
  const [key = '', keyType = '', token = '', host = '', port = '', flags = '0'] = line.split('\t');
  const header = flags.slice(1);
  return {
    key,
    keyType,
    token,
    host,
    port: Number(port),
    requiresPathInUrl: flags.charCodeAt(0) === 49 /* 1 */,
    requiresPathInHeaderNamed: header === '' ? undefined : header,
  };
}

/** An identity (`key TAB key_type`) as the table's removal pair. */
export function splitIdentity(id: string): readonly [string, string] {
  const tab = id.indexOf('\t');
  return tab < 0 ? [id, ''] : [id.slice(0, tab), id.slice(tab + 1)];
}
