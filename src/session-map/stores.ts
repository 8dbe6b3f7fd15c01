import { fileStores } from './file-store.js';
import { postgresStores } from './postgres/store.js';
import { isPostgresUrl, parsePostgresUrl } from './postgres/url.js';
import type { StoreKind } from './store.js';

/**
 * Which kind of store a `--sessions` value names. Every store kind is listed
 * here and nowhere else; a new kind is a module behind StoreKind plus one
 * line in this function.
 */
export function storeKindFor(spec: string): StoreKind {
  return isPostgresUrl(spec) ? postgresStores : fileStores;
}

/** How logs, `--check` and `/health` name the map: the path, or a URL without its password. */
export function storeLabel(spec: string): string {
  return isPostgresUrl(spec) ? parsePostgresUrl(spec).label : spec;
}
