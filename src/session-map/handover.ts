import type { DifferState } from './differ.js';

/**
 * What a producer hands to the next one on another thread (see
 * UpdateProducer.handOver): the differ's last read and the store's own
 * (MapStore.handOver). Plain data that can be posted between threads.
 */
export interface ProducerHandover {
  readonly differ: DifferState | undefined;
  readonly store: unknown;
}

/**
 * A handover with the differ's text held once: after a whole read the
 * differ's last read and the SQLite store's ledger are the same text, which
 * posting to a thread would otherwise copy twice (8 MiB each at 100,000
 * sessions). Any string of the store's part equal to the differ's rows is
 * replaced by a mark, and put back on the other side.
 */
export type SharedHandover = ProducerHandover & { readonly shared: true };

/** Stands for the differ's rows in the store's part (a map's text ends with a LF; this does not). */
const SAME_ROWS = '\u0000the differ rows';

export function shareRows(h: ProducerHandover): SharedHandover {
  const rows = h.differ?.rows;
  return { differ: h.differ, store: rows === undefined ? h.store : replaceStrings(h.store, (s) => (s === rows ? SAME_ROWS : s)), shared: true };
}

export function unshareRows(h: SharedHandover): ProducerHandover {
  const rows = h.differ?.rows;
  return { differ: h.differ, store: rows === undefined ? h.store : replaceStrings(h.store, (s) => (s === SAME_ROWS ? rows : s)) };
}

/** `value` with every string in it (through plain objects and arrays) mapped by `map`. */
function replaceStrings(value: unknown, map: (s: string) => string): unknown {
  if (typeof value === 'string') return map(value);
  if (Array.isArray(value)) return value.map((v) => replaceStrings(v, map));
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replaceStrings(v, map)]));
  }
  return value; // typed arrays, numbers, ...
}
