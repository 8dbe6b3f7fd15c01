import { timingSafeEqual } from 'node:crypto';
import { reportInSlices, toRoute, type Route } from './route-table.js';

/**
 * Interactive Tools entry points (Galaxy's `gxitproxy` rows), indexed for the
 * router: O(1) by key, the token compared in constant time.
 */

/** One `gxitproxy` row, already validated (see the session-map row format). */
export interface EntryPointRow {
  readonly key: string;
  readonly keyType: string;
  readonly token: string;
  readonly host: string;
  readonly port: number;
  /** `info.requires_path_in_url`: the container gets the prefixed path unchanged. */
  readonly requiresPathInUrl: boolean;
  /** `info.requires_path_in_header_named`: the header that carries `<prefix>/<key>/<token>`. */
  readonly requiresPathInHeaderNamed: string | undefined;
}

/** An entry point as the router uses it. */
export interface EntryPoint {
  readonly key: string;
  readonly keyType: string;
  /** The row's token: the credential, compared with `tokenMatches` only. */
  readonly token: string;
  /** The row's host exactly as Galaxy wrote it (forward mode passes it on). */
  readonly host: string;
  readonly port: number;
  readonly target: Route;
  readonly requiresPathInUrl: boolean;
  readonly requiresPathInHeaderNamed: string | undefined;
  readonly tokenBytes: Buffer;
}

function toEntryPoint(row: EntryPointRow, previous: EntryPoint | undefined): EntryPoint {
  if (previous !== undefined && sameRow(previous, row)) return previous;
  const target = previous !== undefined && previous.host === row.host && previous.port === row.port ? previous.target : toRoute(row);
  return {
    key: row.key,
    keyType: row.keyType,
    token: row.token,
    host: row.host,
    port: row.port,
    target,
    requiresPathInUrl: row.requiresPathInUrl,
    requiresPathInHeaderNamed: row.requiresPathInHeaderNamed,
    tokenBytes: Buffer.from(row.token, 'utf8'),
  };
}

function sameRow(a: EntryPoint, b: EntryPointRow): boolean {
  return (
    a.keyType === b.keyType &&
    a.token === b.token &&
    a.host === b.host &&
    a.port === b.port &&
    a.requiresPathInUrl === b.requiresPathInUrl &&
    a.requiresPathInHeaderNamed === b.requiresPathInHeaderNamed
  );
}

/** Compared with a token of a key that is not in the table, so that a miss costs what a compare costs. */
const NO_TOKEN = Buffer.alloc(32);

/**
 * True when `candidate` is `expected`, in time that depends only on their
 * lengths: timingSafeEqual on equal-length buffers; for different lengths a
 * compare of `expected` with itself, so the content is never looked at early.
 */
export function tokenMatches(expected: Buffer, candidate: Buffer): boolean {
  if (expected.length !== candidate.length) {
    timingSafeEqual(expected, expected);
    return false;
  }
  return timingSafeEqual(expected, candidate);
}

/**
 * The entry point among `entries` (one key, any key types) whose token is
 * `token`, or undefined. Every entry is compared, whichever matches.
 */
export function matchToken(entries: readonly EntryPoint[] | undefined, token: string): EntryPoint | undefined {
  const candidate = Buffer.from(token, 'utf8');
  if (entries === undefined) {
    tokenMatches(NO_TOKEN, candidate);
    return undefined;
  }
  let found: EntryPoint | undefined;
  for (const entry of entries) {
    if (tokenMatches(entry.tokenBytes, candidate) && found === undefined) found = entry;
  }
  return found;
}

/**
 * The entry points in use, by key. `(key, key_type)` is the identity, as in
 * Galaxy's primary key: rows that differ only in key type are both kept.
 * Replaced whole or patched in one synchronous step, so a request always sees
 * one consistent table. Entry objects of unchanged rows are reused.
 */
export class EntryPointTable {
  private byKey = new Map<string, readonly EntryPoint[]>();
  private count = 0;
  /**
   * Told of each entry point that leaves the table (its row deleted, or its
   * token changed), for the browser pages' "stopped" memory: at once by
   * apply, in slices after a whole replacement (see reportInSlices). Unset,
   * an update costs nothing more.
   */
  onRemoved: ((entry: EntryPoint) => void) | undefined;

  /** The entry points for `key` (usually one), or undefined. O(1). */
  lookup(key: string): readonly EntryPoint[] | undefined {
    return this.byKey.get(key);
  }

  /** Number of entry points (rows), not keys. */
  get size(): number {
    return this.count;
  }

  /** Every entry point, for `--check` and health. */
  *entries(): IterableIterator<EntryPoint> {
    for (const list of this.byKey.values()) yield* list;
  }

  /** Swaps in a complete new set of rows. */
  replace(rows: Iterable<EntryPointRow>): void {
    const next = this.builder();
    for (const row of rows) next.add(row);
    this.install(next);
  }

  /** Starts a complete replacement, to be filled (possibly in slices) and then installed. */
  builder(): EntryPointTableBuilder {
    return new EntryPointTableBuilder(this.byKey);
  }

  /** Swaps in the table a builder made. */
  install(builder: EntryPointTableBuilder): void {
    const onRemoved = this.onRemoved;
    const next = builder.byKey;
    if (onRemoved !== undefined) {
      reportInSlices(this.byKey, (key, list) => list.some((entry) => !stillThere(next.get(key), entry)), (key, list) => {
        for (const entry of list) if (!stillThere(next.get(key), entry)) onRemoved(entry);
      });
    }
    this.byKey = builder.byKey;
    this.count = builder.count;
  }

  /**
   * Sets `upserts` and deletes `removals` (`[key, keyType]`) in one
   * synchronous step: a Galaxy commit costs what it changes.
   */
  apply(upserts: Iterable<EntryPointRow>, removals: Iterable<readonly [string, string]>): void {
    for (const [key, keyType] of removals) {
      const list = this.byKey.get(key);
      if (list === undefined) continue;
      const rest = list.filter((e) => e.keyType !== keyType);
      if (rest.length === list.length) continue;
      if (this.onRemoved !== undefined) for (const gone of list) if (gone.keyType === keyType) this.onRemoved(gone);
      this.count -= list.length - rest.length;
      if (rest.length === 0) this.byKey.delete(key);
      else this.byKey.set(key, rest);
    }
    for (const row of upserts) {
      const list = this.byKey.get(row.key) ?? [];
      const at = list.findIndex((e) => e.keyType === row.keyType);
      const entry = toEntryPoint(row, at < 0 ? undefined : list[at]);
      if (at >= 0 && list[at].token !== entry.token) this.onRemoved?.(list[at]);
      const next = [...list];
      if (at < 0) {
        next.push(entry);
        this.count++;
      } else {
        next[at] = entry;
      }
      this.byKey.set(row.key, next);
    }
  }
}

/** A complete next table, filled row by row; reuses the entry objects of unchanged rows. */
class EntryPointTableBuilder {
  readonly byKey = new Map<string, EntryPoint[]>();
  count = 0;

  constructor(private readonly previous: ReadonlyMap<string, readonly EntryPoint[]>) {}

  add(row: EntryPointRow): void {
    const entry = toEntryPoint(row, findType(this.previous.get(row.key), row.keyType));
    const list = this.byKey.get(row.key);
    if (list === undefined) {
      this.byKey.set(row.key, [entry]);
      this.count++;
      return;
    }
    const at = list.findIndex((e) => e.keyType === row.keyType);
    if (at < 0) {
      list.push(entry);
      this.count++;
    } else {
      list[at] = entry; // a repeated (key, key_type): the later row wins
    }
  }
}

/** True when `now` (a key's entries in a new table) holds `entry`'s key type with the same token. */
function stillThere(now: readonly EntryPoint[] | undefined, entry: EntryPoint): boolean {
  return now?.some((e) => e.keyType === entry.keyType && e.token === entry.token) === true;
}

function findType(list: readonly EntryPoint[] | undefined, keyType: string): EntryPoint | undefined {
  return list?.find((e) => e.keyType === keyType);
}
