/**
 * The reader thread (see WorkerMapReader): reads the session map on request
 * and answers with the update for the route table. No logging here: failures
 * go back to the main thread, which reports them.
 */
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { READER_NICE, UpdateProducer, type ReaderThreadData, type ReadReply, type ReadRequest } from './producer.js';
import { SessionMapError, type StoreKind } from './store.js';

lowerPriority();

/**
 * Lowers this thread's priority READER_NICE below the process's own: on
 * Linux setpriority() on a thread id changes that thread only
 * (/proc/thread-self names it). Where that cannot be done (another system,
 * a sandbox) the thread runs as it is.
 */
function lowerPriority(): void {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, Math.min(19, getPriority(tid) + READER_NICE));
  } catch {
    // Not Linux, or not allowed: nothing to do.
  }
}

const { spec: path, kind: kindName } = workerData as ReaderThreadData;
// Only the module of the map's own kind: the PostgreSQL client alone takes
// a third of a thread's start-up, and memory.
const kind: StoreKind = kindName === 'postgres' ? (await import('./postgres/store.js')).postgresStores : (await import('./file/file-store.js')).fileStores;
const producer = new UpdateProducer(kind.open(path));

/** Reads one at a time, in the order asked (a store's read may be asynchronous). */
let queue = Promise.resolve();
parentPort!.on('message', ({ id, full }: ReadRequest) => {
  queue = queue.then(() => answer(id, full));
});

/**
 * V8's `gc`, when the process exposed it to new contexts (the CLI does, see
 * src/cli/run.ts); this thread's own heap only. Absent (in-process tests,
 * embedders), reads go on the same without it.
 */
const collect = (globalThis as { gc?: () => void }).gc;

/**
 * A read that took this long read the whole map (or a large part of it):
 * at 100,000 sessions several MiB of text and their garbage.
 */
const LONG_READ_MS = 20;

async function answer(id: number, full: boolean): Promise<void> {
  let reply: ReadReply;
  try {
    const started = performance.now();
    const update = await producer.produce(full);
    reply = { id, update };
    // Collected now, on this thread (requests do not wait), the memory of a
    // whole map (a rebuild: the start-up read, a SIGHUP) or of a long read
    // goes back at once instead of whenever V8 next collects this idle
    // thread's heap. (A store may also read the whole map and answer with
    // the changes: the time tells that one.)
    if (update?.kind === 'full' || performance.now() - started >= LONG_READ_MS) setImmediate(() => collect?.());
  } catch (err) {
    const failure = err instanceof SessionMapError ? err.failure : 'unreadable';
    const message = err instanceof SessionMapError ? err.message : `session map ${path}: ${String(err)}`;
    reply = { id, failure, message };
  }
  parentPort!.postMessage(reply);
}
