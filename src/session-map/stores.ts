import { fileStores } from './file/file-store.js';
import { postgresStores } from './postgres/store.js';
import { isPostgresUrl, parsePostgresUrl } from './postgres/url.js';
import type { StoreKind } from './store.js';

/**
 * Which kind of store a `--sessions` value names. Every store kind is listed
 * here, and in reader-thread.ts, which imports only the kind it reads (not
 * this module: the PostgreSQL client would take a third of the thread's
 * start-up for a file map); a new kind is a module behind StoreKind plus one
 * line in this function and one there.
 */
export function storeKindFor(spec: string): StoreKind {
  return isPostgresUrl(spec) ? postgresStores : fileStores;
}

/** How logs, `--check` and `/health` name the map: the path, or a URL without its password. */
export function storeLabel(spec: string): string {
  return isPostgresUrl(spec) ? parsePostgresUrl(spec).label : spec;
}
