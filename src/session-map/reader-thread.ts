/**
 * The reader thread (see WorkerMapReader): reads the session map on request
 * and answers with the update for the route table; on its last read, also
 * with what the next thread needs to carry on (UpdateProducer.handOver). No
 * logging here: failures go back to the main thread, which reports them.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isPostgresUrl } from './postgres-url.js';
import { SessionMapError, type StoreKind } from './store.js';
import { UpdateProducer, type ProducerHandover, type ReadReply, type ReadRequest } from './update.js';

const { path, state } = workerData as { path: string; state: ProducerHandover | undefined };
// Only the module of the map's own kind: the PostgreSQL client is a third of a thread's start-up.
const kind: StoreKind = isPostgresUrl(path)
  ? (await import('./postgres-store.js')).postgresStores
  : (await import('./file-store.js')).fileStores;
const producer = new UpdateProducer(path, kind, state);

/** Reads one at a time, in the order asked (a store's read may be asynchronous). */
let queue = Promise.resolve();
parentPort!.on('message', ({ id, full, end }: ReadRequest) => {
  queue = queue.then(() => answer(id, full, end));
});

async function answer(id: number, full: boolean, end: boolean): Promise<void> {
  let reply: ReadReply;
  try {
    const update = await producer.produce(full);
    const handover = end ? producer.handOver() : undefined;
    if (handover !== undefined) reply = { id, update, handover };
    else reply = end && !producer.canHandOver ? { id, update, stays: true } : { id, update };
    if (handover !== undefined) producer.close();
  } catch (err) {
    const failure = err instanceof SessionMapError ? err.failure : 'unreadable';
    const message = err instanceof SessionMapError ? err.message : `session map ${path}: ${String(err)}`;
    reply = { id, failure, message };
  }
  parentPort!.postMessage(reply);
}
