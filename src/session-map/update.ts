import { performance } from 'node:perf_hooks';
import { MapDiffer, type MapUpdate } from './differ.js';
import type { SessionMapFailure } from './store.js';
import type { MapStore, StoreKind } from './store.js';
import type { ProducerHandover } from './handover.js';

export type { ProducerHandover } from './handover.js';

/**
 * How long changes read on their own (MapStore.readChanges) may stand before
 * a whole read checks them: the bound on how long a change in a store's blind
 * spot (an SQLite UPDATE in place in the same interval as other changes) can
 * go unrouted (PostgreSQL's reads of changes have no known blind spot and
 * are checked the same way). A whole read of 100,000 SQLite rows takes about half a second
 * of the reader thread, so this costs under 1 % of a core while Galaxy writes,
 * and nothing while it does not.
 */
export const VERIFY_AFTER_MS = 60_000;

/**
 * One step of keeping the route table in line with the map, wherever it runs
 * (the main thread or the reader thread): ask the store whether the map may
 * have changed, read it if so, and let the differ say what changed.
 */
export class UpdateProducer {
  private readonly store: MapStore;
  private readonly differ: MapDiffer;
  /** Store version of the last successful read; a read happens only when it moves. */
  private readVersion: string | undefined;
  /** When the first change read on its own since the last whole read was read (performance.now()). */
  private unverifiedSince: number | undefined;
  private readonly verifyAfterMs: number;
  /** Whole reads made so far (for the reader thread's garbage collection after each). */
  wholeReads = 0;

  /**
   * Opens the store `spec` names, of `kind` (stores.ts says which; the reader
   * thread imports only that kind's module); `handedOver` is what another
   * producer handed over; `verifyAfterMs` (tests) replaces VERIFY_AFTER_MS.
   */
  constructor(spec: string, kind: StoreKind, handedOver?: ProducerHandover, verifyAfterMs = VERIFY_AFTER_MS) {
    this.store = kind.open(spec, handedOver?.store);
    this.differ = new MapDiffer(handedOver?.differ);
    this.verifyAfterMs = verifyAfterMs;
  }

  /**
   * What a producer on another thread needs to carry on from here (the reader
   * thread, from the main thread's reads): the differ's last read, so that
   * its first update is a diff, not a rebuild; and what the store knows, so
   * that its first read after a change is a read of changes, not a whole
   * read. The store's part is left out when it has nothing to hand over (a
   * database store), or when changes read on their own still await the whole
   * read that checks them (VERIFY_AFTER_MS; the next producer would not know
   * it is due): the next producer then starts with a whole read, and its
   * diff against the differ's last read is whatever was missed.
   */
  handOver(): ProducerHandover {
    return { differ: this.differ.state(), store: this.unverifiedSince === undefined ? this.store.handOver?.() : undefined };
  }

  /**
   * The update for the route table, or `undefined` when the store says
   * nothing changed since the last read (`full` reads and rebuilds anyway).
   * Rejects with SessionMapError.
   */
  async produce(full: boolean): Promise<MapUpdate | undefined> {
    // Version first: a change after this point only causes one more read.
    const version = await this.store.version();
    const verify = this.unverifiedSince !== undefined && performance.now() - this.unverifiedSince >= this.verifyAfterMs;
    if (!full && !verify && version !== undefined && version === this.readVersion) return undefined;
    this.readVersion = undefined;
    let update: MapUpdate | undefined;
    if (!full && !verify && this.store.readChanges !== undefined) {
      // A store that can tell what changed is asked first; it says when it cannot.
      const changes = await this.store.readChanges();
      update = changes === undefined ? undefined : this.differ.changes(changes);
      if (update !== undefined) this.unverifiedSince ??= performance.now();
    }
    if (update === undefined) {
      // A whole read: after changes read on their own, its diff is whatever they missed.
      this.wholeReads++;
      update = this.differ.next(await this.store.read(), full);
      this.unverifiedSince = undefined;
    }
    this.readVersion = version;
    return update;
  }

  close(): void {
    this.store.close();
  }
}

/** Messages between the main thread and the reader thread. */
export interface ReadRequest {
  readonly id: number;
  readonly full: boolean;
}
export type ReadReply =
  | { readonly id: number; readonly update: MapUpdate | undefined }
  | { readonly id: number; readonly failure: SessionMapFailure; readonly message: string };
