import { MapDiffer, type DifferState, type MapUpdate } from './differ.js';
import type { SessionMapFailure } from './store.js';
import type { MapStore, StoreKind } from './store.js';
import { storeKindFor } from './stores.js';

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

  /** Opens the store `spec` names; `state` is a differ state handed over from another producer. */
  constructor(spec: string, state?: DifferState, kind: StoreKind = storeKindFor(spec)) {
    this.store = kind.open(spec);
    this.differ = new MapDiffer(state);
  }

  /** The last read, for a producer on another thread to carry on from. */
  state(): DifferState | undefined {
    return this.differ.state();
  }

  /**
   * The update for the route table, or `undefined` when the store says
   * nothing changed since the last read (`full` reads and rebuilds anyway).
   * Rejects with SessionMapError.
   */
  async produce(full: boolean): Promise<MapUpdate | undefined> {
    // Version first: a change after this point only causes one more read.
    const version = await this.store.version();
    if (!full && version !== undefined && version === this.readVersion) return undefined;
    this.readVersion = undefined;
    const update = this.differ.next(await this.store.read(full), full);
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

