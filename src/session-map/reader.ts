import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { MapUpdate } from './differ.js';
import { SessionMapError, type MapStore, type StoreKind } from './store.js';
import { storeKindFor } from './stores.js';
import { UpdateProducer, type ProducerHandover, type ReadReply, type ReadRequest } from './update.js';
/** Reads the session map and says how the route table must change. */
export interface MapReader {
  /**
   * Resolves with the update, `undefined` when the map has not changed since
   * the last read, or rejects with SessionMapError. `full` forces a read and a rebuild.
   */
  read(full: boolean): Promise<MapUpdate | undefined>;
  close(): void;
}

/** Reads on the calling thread: for small maps, `--check`, and when no thread can be started. */
export class InlineMapReader implements MapReader {
  private readonly producer: UpdateProducer;

  /** `kind`: the store kind, when not the one `spec` names by default (tests tune it). */
  constructor(spec: string, kind: StoreKind = storeKindFor(spec)) {
    this.producer = new UpdateProducer(spec, kind);
  }

  /** What a reader thread needs to carry on from here (UpdateProducer.handOver). */
  handOver(): ProducerHandover | undefined {
    return this.producer.handOver();
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
 * The reader thread's young generation, in MiB (three semi-spaces' worth,
 * see V8's resourceLimits). A whole read of 100,000 rows makes short-lived
 * garbage by the megabyte: by default V8 grows the thread's young generation
 * to 48 MiB for it and keeps it, for a heap of 14 MiB of live data. Small
 * semi-spaces cost the thread more, shorter scavenges, none of the main
 * thread's time.
 */
const THREAD_YOUNG_GENERATION_MB = 6;

function newWorker(workerData: unknown): Worker {
  const options = { workerData, resourceLimits: { maxYoungGenerationSizeMb: THREAD_YOUNG_GENERATION_MB } };
  if (SCRIPT_EXTENSION === '.js') return new Worker(WORKER_SCRIPT, options);
  // Running from source (the tests): Node 20 does not give threads the main
  // thread's loader hooks, so the thread registers tsx before loading the script.
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(WORKER_SCRIPT.href)}); })`;
  return new Worker(bootstrap, { ...options, eval: true });
}

/** How a WorkerMapReader's thread comes and goes. */
export interface ReaderThreadOptions {
  /**
   * The thread ends once no read has found a change for this long (and none
   * awaits its check, see UpdateProducer.handOver); the next change starts
   * another. Infinity: it never ends.
   */
  readonly idleMs: number;
  /** Asked to read when the thread has been idle for `idleMs`: that read ends it. */
  readonly onIdle: () => void;
  /** Told when a thread has started or ended (tests, logs). */
  readonly onThread?: (running: boolean) => void;
}

/**
 * Reads on a worker thread, so that neither SQLite's read nor JSON.parse of a
 * large map blocks request serving. The thread keeps its own connection and
 * the last read, and sends back only what changed.
 *
 * A thread holds tens of MiB (its own V8 heap, the last read, the store's
 * ledger), while a session map changes a few times an hour. So a thread that
 * has read no change for `idleMs` ends: its last read of the map hands it what
 * it knows (UpdateProducer.handOver), which waits here as plain data, with the
 * map's version as this thread saw it just before that read. Later reads
 * compare the version first, on this thread (a stat and one pragma), and start
 * a thread with that state only when the map may have changed; the new thread's
 * first read is a read of changes, as if the thread had never gone. A change
 * committed while the thread ends is in its last read or moves the version.
 *
 * Should the thread fail, reads fall back to the calling thread
 * (`onThreadFailed` says so once).
 */
export class WorkerMapReader implements MapReader {
  private worker: Worker | undefined;
  private fallback: InlineMapReader | undefined;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (r: ReadReply) => void; reject: (e: Error) => void }>();
  /** While no thread runs: what the last one handed over, and the map's version before its last read. */
  private parked: { readonly state: ProducerHandover; readonly version: string | undefined } | undefined;
  /** Opened on this thread for `version()` only, while no thread runs. */
  private versions: MapStore | undefined;
  private idle: NodeJS.Timeout | undefined;
  /** The idle time is up: the next read is the thread's last. */
  private ending = false;
  /** The store cannot hand over what it knows (a database store): its thread stays. */
  private stays = false;

  /** Starts the thread at once, so that it is ready by the next change; `state` is where it carries on from. */
  constructor(
    private readonly path: string,
    state: ProducerHandover | undefined,
    private readonly onThreadFailed: (err: Error) => void = () => {},
    private readonly thread: ReaderThreadOptions = { idleMs: Infinity, onIdle: () => {} },
  ) {
    this.worker = this.startWorker(state);
  }

  /** True while a reader thread runs (it ends when idle, and starts again on the next change). */
  get threadRunning(): boolean {
    return this.worker !== undefined;
  }

  async read(full: boolean): Promise<MapUpdate | undefined> {
    if (this.fallback !== undefined) return this.fallback.read(full);
    const parked = this.parked;
    if (this.worker === undefined && parked !== undefined) {
      if (!full && parked.version !== undefined && (await this.version()) === parked.version) return undefined;
      // Another read may have started the thread while this one looked at the version.
      if (this.worker === undefined && this.parked === parked) {
        this.parked = undefined;
        this.versions?.close();
        this.versions = undefined;
        this.worker = this.startWorker(parked.state);
      }
    }
    const worker = this.worker;
    if (worker === undefined) return this.read(full); // failed meanwhile: the fallback reads
    const end = this.ending;
    this.ending = false;
    // Taken before the thread's last read: a commit after it moves the version.
    const version = end ? await this.version() : undefined;
    const id = ++this.nextId;
    const reply = await new Promise<ReadReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, full, end } satisfies ReadRequest);
    });
    if ('failure' in reply) throw new SessionMapError(reply.failure, this.path, reply.message);
    if (reply.stays === true) this.stays = true;
    if (reply.handover !== undefined && this.worker === worker) {
      this.parked = { state: reply.handover, version };
      this.stopWorker(worker);
    } else if (reply.update !== undefined || end) {
      // A change, or a thread that could not end yet: idle from now.
      this.armIdle();
    }
    return reply.update;
  }

  close(): void {
    clearTimeout(this.idle);
    this.versions?.close();
    this.versions = undefined;
    this.parked = undefined;
    const worker = this.worker;
    this.worker = undefined;
    this.fallback?.close();
    if (worker !== undefined) void worker.terminate().catch(() => {});
    this.failPending(new SessionMapError('unreadable', this.path, `session map ${this.path}: reader closed`));
  }

  /** The map's version as seen from this thread; undefined (read) when it cannot be told. */
  private async version(): Promise<string | undefined> {
    try {
      return await (this.versions ??= storeKindFor(this.path).open(this.path)).version();
    } catch {
      return undefined;
    }
  }

  private armIdle(): void {
    clearTimeout(this.idle);
    if (!Number.isFinite(this.thread.idleMs) || this.stays) return;
    this.idle = setTimeout(() => {
      this.ending = true;
      this.thread.onIdle();
    }, this.thread.idleMs);
    this.idle.unref();
  }

  private stopWorker(worker: Worker): void {
    clearTimeout(this.idle);
    this.worker = undefined;
    void worker.terminate().catch(() => {});
    this.thread.onThread?.(false);
  }

  private startWorker(state: ProducerHandover | undefined): Worker {
    const worker = newWorker({ path: this.path, state });
    worker.unref();
    worker.on('message', (reply: ReadReply) => {
      const waiter = this.pending.get(reply.id);
      if (waiter === undefined) return;
      this.pending.delete(reply.id);
      waiter.resolve(reply);
    });
    const failed = (err: Error): void => {
      if (this.worker !== worker) return; // ended or closed on purpose, or already handled
      this.worker = undefined;
      clearTimeout(this.idle);
      const fallback = (this.fallback = new InlineMapReader(this.path));
      this.onThreadFailed(err);
      // A fresh reader remembers no previous read, so its first update is a
      // full rebuild: the table cannot drift from the map.
      const waiting = [...this.pending.values()];
      this.pending.clear();
      for (const w of waiting) fallback.read(false).then((update) => w.resolve({ id: 0, update }), w.reject);
    };
    worker.on('error', failed);
    worker.on('exit', (code) => failed(new Error(`session map reader thread exited with code ${code}`)));
    this.armIdle();
    this.thread.onThread?.(true);
    return worker;
  }

  private failPending(err: Error): void {
    for (const w of this.pending.values()) w.reject(err);
    this.pending.clear();
  }
}
