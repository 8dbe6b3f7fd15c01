import { fileStores } from './file/file-store.js';
import { postgresStores } from './postgres/store.js';
import { isPostgresUrl, parsePostgresUrl } from './postgres/url.js';
import type { StoreKind } from './store.js';
import type { ReaderThreadData } from './producer.js';

/** The store kinds, by the name the reader thread is told (it loads only that one's module). */
const KINDS: Record<ReaderThreadData['kind'], StoreKind> = { file: fileStores, postgres: postgresStores };

/**
 * Which kind of store a `--sessions` value names. Every store kind is listed
 * here, and in reader-thread.ts, which imports only the kind it reads (not
 * this module: the PostgreSQL client would take a third of the thread's
 * start-up for a file map); a new kind is a module behind StoreKind plus one
 * entry in KINDS and one line there.
 */
export function storeKindFor(spec: string): StoreKind {
  return KINDS[storeKindName(spec)];
}

/** The name of the store kind a `--sessions` value names, as the reader thread is told it. */
export function storeKindName(spec: string): ReaderThreadData['kind'] {
  return isPostgresUrl(spec) ? 'postgres' : 'file';
}

/** How logs, `--check` and `/health` name the map: the path, or a URL without its password. */
export function storeLabel(spec: string): string {
  return isPostgresUrl(spec) ? parsePostgresUrl(spec).label : spec;
}
