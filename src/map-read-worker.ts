/**
 * The reader thread (see WorkerMapReader): reads the session map on request
 * and answers with the update for the route table. No logging here: failures
 * go back to the main thread, which reports them.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SessionMapError } from './errors.js';
import type { DifferState } from './map-differ.js';
import { UpdateProducer, type ReadReply, type ReadRequest } from './map-reader.js';

const { path, state } = workerData as { path: string; state: DifferState | undefined };
const producer = new UpdateProducer(path, state);

parentPort!.on('message', ({ id, full }: ReadRequest) => {
  let reply: ReadReply;
  try {
    reply = { id, update: producer.produce(full) };
  } catch (err) {
    const failure = err instanceof SessionMapError ? err.failure : 'unreadable';
    const message = err instanceof SessionMapError ? err.message : `session map ${path}: ${String(err)}`;
    reply = { id, failure, message };
  }
  parentPort!.postMessage(reply);
});
