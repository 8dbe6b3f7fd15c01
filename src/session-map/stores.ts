import { fileStores } from './file-store.js';
import type { StoreKind } from './store.js';

/**
 * Which kind of store a `--sessions` value names. Every store kind is listed
 * here and nowhere else; a new kind is a module behind StoreKind plus one
 * line in this function.
 */
export function storeKindFor(_spec: string): StoreKind {
  return fileStores;
}
