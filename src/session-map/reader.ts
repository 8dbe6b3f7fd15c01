import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { UpdateProducer, type MapUpdate, type ReaderThreadData, type ReadReply, type ReadRequest } from './producer.js';
import { SessionMapError, type StoreKind } from './store.js';
import { storeKindFor, storeKindName } from './stores.js';

/** Reads the session map and says how the route table must change. */
export interface MapReader {
  /**
   * Resolves with the update, `undefined` when the map has not changed since
   * the last read, or rejects with SessionMapError. `full` forces a read and a rebuild.
   */
  read(full: boolean): Promise<MapUpdate | undefined>;
  close(): void;
}

/** Reads on the calling thread: for tests, and when the reader thread failed. */
export class InlineMapReader implements MapReader {
  private readonly producer: UpdateProducer;

  /** `kind`: the store kind, when not the one `spec` names by default (tests tune it). */
  constructor(spec: string, kind: StoreKind = storeKindFor(spec)) {
    this.producer = new UpdateProducer(kind.open(spec));
  }

  read(full: boolean): Promise<MapUpdate | undefined> {
    return this.producer.produce(full);
  }

  close(): void {
    this.producer.close();
  }
}

/** The reader thread's script, beside this module (.js when built, .ts when run from source under tsx). */
const SCRIPT_EXTENSION = extname(fileURLToPath(import.meta.url));
const WORKER_SCRIPT = new URL(`./reader-thread${SCRIPT_EXTENSION}`, import.meta.url);

/**
 * The reader thread's young generation, in MiB (V8 makes three semi-spaces
 * of it). A whole read makes megabytes of short-lived garbage, for which V8
 * grows a thread's young generation to up to 48 MiB by default; held to this
 * size the thread collects it more often, in short scavenges of its own (a
 * whole read of 100,000 rows took as long), and a spawned proxy at 100,000
 * sessions peaked 4–7 MiB lower through a full re-read (README "Performance").
 */
export const THREAD_YOUNG_GENERATION_MB = 6;

function newWorker(workerData: unknown): Worker {
  const options = { workerData, resourceLimits: { maxYoungGenerationSizeMb: THREAD_YOUNG_GENERATION_MB } };
  if (SCRIPT_EXTENSION === '.js') return new Worker(WORKER_SCRIPT, options);
  // Running from source (the tests): Node 20 does not give threads the main
  // thread's loader hooks, so the thread registers tsx before loading the script.
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(WORKER_SCRIPT.href)}); })`;
  return new Worker(bootstrap, { ...options, eval: true });
}

/**
 * Reads on a worker thread, started with the daemon and kept for its life,
 * so that neither SQLite's read nor JSON.parse of a large map blocks request
 * serving. The thread opens its own store (a read-only connection), which
 * remembers what it last answered, and sends back only what changed. Should
 * the thread fail, reads fall back to a fresh inline reader on the calling
 * thread, whose first update is a rebuild (`onThreadFailed` says so once).
 */
export class WorkerMapReader implements MapReader {
  private worker: Worker | undefined;
  private fallback: InlineMapReader | undefined;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (u: MapUpdate | undefined) => void; reject: (e: Error) => void }>();

  /** Starts the thread at once, so that it is ready for the first read. */
  constructor(
    private readonly path: string,
    private readonly onThreadFailed: (err: Error) => void = () => {},
  ) {
    this.worker = this.startWorker();
  }

  read(full: boolean): Promise<MapUpdate | undefined> {
    const worker = this.worker;
    if (worker === undefined) return (this.fallback ??= new InlineMapReader(this.path)).read(full);
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, full } satisfies ReadRequest);
    });
  }

  close(): void {
    const worker = this.worker;
    this.worker = undefined;
    this.fallback?.close();
    if (worker !== undefined) void worker.terminate().catch(() => {});
    this.failPending(new SessionMapError('unreadable', this.path, `session map ${this.path}: reader closed`));
  }

  private startWorker(): Worker {
    // The thread imports only the module of the map's own kind: it is named here, where every kind is loaded anyway.
    const worker = newWorker({ spec: this.path, kind: storeKindName(this.path) } satisfies ReaderThreadData);
    worker.unref();
    worker.on('message', (reply: ReadReply) => {
      const waiter = this.pending.get(reply.id);
      if (waiter === undefined) return;
      this.pending.delete(reply.id);
      if ('update' in reply) waiter.resolve(reply.update);
      else waiter.reject(new SessionMapError(reply.failure, this.path, reply.message));
    });
    const failed = (err: Error): void => {
      if (this.worker !== worker) return; // closed on purpose, or already handled
      this.worker = undefined;
      const fallback = (this.fallback = new InlineMapReader(this.path));
      this.onThreadFailed(err);
      // A fresh reader remembers no previous read, so its first update is a
      // full rebuild: the table cannot drift from the map.
      const waiting = [...this.pending.values()];
      this.pending.clear();
      for (const w of waiting) fallback.read(false).then(w.resolve, w.reject);
    };
    worker.on('error', failed);
    worker.on('exit', (code) => failed(new Error(`session map reader thread exited with code ${code}`)));
    return worker;
  }

  private failPending(err: Error): void {
    for (const w of this.pending.values()) w.reject(err);
    this.pending.clear();
  }
}
