/**
 * What the SQLite store's reads saw of a table whose identities cannot repeat
 * (`gxproxy2`, `gxitproxy`), by rowid: the raw rows of the last whole read, the
 * rows read since past its highest rowid, and the rows gone since. It lets a
 * read after a Galaxy commit fetch only the rows past the highest rowid and
 * still say which earlier rows that commit replaced or deleted (see
 * SqliteSessionMap.readChanges for the checks, and what they cannot see).
 *
 * It is the store's memory of what it last answered: a whole read after it
 * is answered as the changes against it (`changesTo`). The rows of the last
 * whole read are kept as the read's own text (one string, no copy), plus
 * three typed arrays.
 */
export class RowLedger {
  /** Offset of each row of `base` (one more entry: the end of the text). */
  private readonly starts: Uint32Array;
  /** Rows of `base` deleted or replaced since. */
  private readonly gone: Uint8Array;
  /**
   * Hashes of the identities in `base`, sorted: a new identity (a new session,
   * the usual commit) is told absent without searching the whole text.
   */
  private readonly hashes: Uint32Array;
  /** Rows read since the whole read (all past its highest rowid), by rowid, each with its LF. */
  private readonly added: Map<number, string> = new Map();
  /** Rows now in the table, as far as the reads can tell. */
  count: number;
  /** Highest rowid read so far (0 for an empty table). */
  max: number;

  /**
   * `base`: the raw rows of a whole read in rowid order, each ending in LF;
   * `rowids`: their rowids, ascending; `identityFields`: how many leading
   * fields of a row make its identity (1: `key`; 2: `key TAB key_type`).
   */
  constructor(
    /** The table read, and the file it was read from: the ledger holds only while both stay. */
    readonly table: string,
    readonly file: string,
    /**
     * The file change counter at the read (SQLite's count of commits, see
     * sqlite-store.ts); undefined in WAL mode, where SQLite keeps none: no
     * reads of changes then, only whole reads answered as changes.
     */
    public commits: number | undefined,
    private readonly base: string,
    private readonly rowids: Float64Array,
    readonly identityFields: 1 | 2,
  ) {
    this.starts = new Uint32Array(rowids.length + 1);
    this.hashes = new Uint32Array(rowids.length);
    let at = 0;
    for (let i = 0; i < rowids.length; i++) {
      this.starts[i] = at;
      this.hashes[i] = identityHash(base, at, identityFields);
      at = base.indexOf('\n', at) + 1;
      if (at === 0) throw new Error('ledger: fewer rows than rowids');
    }
    this.starts[rowids.length] = at;
    this.hashes.sort();
    this.gone = new Uint8Array(rowids.length);
    this.count = rowids.length;
    this.max = rowids.length === 0 ? 0 : rowids[rowids.length - 1];
  }

  /** The row now at `rowid` (with its LF), or undefined when there is none. */
  lineAt(rowid: number): string | undefined {
    const added = this.added.get(rowid);
    if (added !== undefined) return added;
    const i = this.indexOf(rowid);
    return i < 0 || this.gone[i] === 1 ? undefined : this.base.slice(this.starts[i], this.starts[i + 1]);
  }

  /** Every rowid now in the table, ascending. */
  *liveRowids(): IterableIterator<number> {
    for (let i = 0; i < this.rowids.length; i++) if (this.gone[i] === 0) yield this.rowids[i];
    yield* [...this.added.keys()].sort((a, b) => a - b);
  }

  /**
   * The rowid of the row whose identity is `identity` (a row's first
   * `identityFields` fields followed by a TAB), or undefined when no row has it.
   */
  rowidOf(identity: string): number | undefined {
    for (const [rowid, line] of this.added) if (line.startsWith(identity)) return rowid;
    if (search(this.hashes, this.hashes.length, identityHash(identity, 0, this.identityFields)) < 0) return undefined;
    // Rows of the base text start at offset 0 or after a LF.
    if (this.base.startsWith(identity) && this.gone[0] === 0) return this.rowids[0];
    const needle = `\n${identity}`;
    for (let at = this.base.indexOf(needle); at >= 0; at = this.base.indexOf(needle, at + 1)) {
      const i = this.startIndex(at + 1);
      if (i >= 0 && this.gone[i] === 0) return this.rowids[i];
    }
    return undefined;
  }

  /** Records a read of changes: `removed` rowids are gone, `inserted` rows (rowid, row) are new; the figures as read. */
  record(removed: readonly number[], inserted: readonly (readonly [number, string])[], count: number, max: number, commits: number | undefined): void {
    this.commits = commits;
    for (const rowid of removed) {
      if (this.added.delete(rowid)) continue;
      const i = this.indexOf(rowid);
      if (i >= 0) this.gone[i] = 1;
    }
    for (const [rowid, line] of inserted) this.added.set(rowid, line);
    this.count = count;
    this.max = max;
  }

  /**
   * The changes from the rows this ledger holds to those of `next` (a later
   * whole read of the same table), matched by rowid: each row gone or
   * different as it was (`removed`), each new or different row as it is
   * (`inserted`). Undefined when more than `max` rows changed.
   */
  changesTo(next: RowLedger, max: number): { removed: string; inserted: string } | undefined {
    const removed: string[] = [];
    const inserted: string[] = [];
    const live = this.liveRowids();
    let old = live.next();
    for (let i = 0; i <= next.rowids.length; i++) {
      const rowid = i < next.rowids.length ? next.rowids[i] : Infinity;
      // Rows of this ledger before `rowid` are gone.
      for (; !old.done && old.value < rowid; old = live.next()) removed.push(this.lineAt(old.value)!);
      if (rowid === Infinity) break;
      const line = next.base.slice(next.starts[i], next.starts[i + 1]);
      if (!old.done && old.value === rowid) {
        const was = this.lineAt(rowid)!;
        old = live.next();
        if (was === line) continue;
        removed.push(was);
      }
      inserted.push(line);
      if (removed.length + inserted.length > max) return undefined;
    }
    return removed.length + inserted.length > max ? undefined : { removed: removed.join(''), inserted: inserted.join('') };
  }

  /** Index of `rowid` among the base rows, or -1. */
  private indexOf(rowid: number): number {
    return search(this.rowids, this.rowids.length, rowid);
  }

  /** Index of the base row that starts at `offset`, or -1 when no row starts there. */
  private startIndex(offset: number): number {
    return search(this.starts, this.rowids.length, offset);
  }
}

/** FNV-1a of the identity (the first `fields` fields) of the row that starts at `at` in `text`. */
function identityHash(text: string, at: number, fields: 1 | 2): number {
  let h = 0x811c9dc5;
  let tabs = 0;
  for (let i = at; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 9 && ++tabs === fields) break;
    if (c === 10) break;
    h = Math.imul(h ^ c, 0x01000193);
  }
  return h >>> 0;
}

/** Index of `value` among the first `length` entries of ascending `sorted`, or -1. */
function search(sorted: Float64Array | Uint32Array, length: number, value: number): number {
  let lo = 0;
  let hi = length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = sorted[mid];
    if (v === value) return mid;
    if (v < value) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}
