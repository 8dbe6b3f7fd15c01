import http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** How long an idle pooled connection to a container is kept, unless it announces less. */
const POOLED_SOCKET_IDLE_MS = 15_000;

const kIdleHint = Symbol('gie.idleHint');
type HintedSocket = Socket & { [kIdleHint]?: number };

/**
 * Notes a container's `Keep-Alive: timeout=N` on its connection. The proxy
 * strips that header (it describes the container's connection, not the
 * client's) before the pool would read it, so it is kept here instead.
 */
export function noteKeepAliveHint(socket: Socket | null, header: string | string[] | undefined): void {
  if (socket === null || typeof header !== 'string') return;
  const seconds = /^\s*timeout=(\d+)/i.exec(header)?.[1];
  // Like Node's agent: let the pool drop the connection a second before the
  // container would, so that a request never goes out on a closing one.
  if (seconds !== undefined) (socket as HintedSocket)[kIdleHint] = Number(seconds) * 1000 - 1000;
}

/**
 * The keep-alive pool to the containers (the legacy proxy opened a connection
 * per request). LIFO reuses the warmest connection and lets the rest expire;
 * an idle connection is dropped before the container's announced time-out.
 */
export class ContainerAgent extends http.Agent {
  constructor() {
    super({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256, timeout: POOLED_SOCKET_IDLE_MS, scheduling: 'lifo' });
  }

  override keepSocketAlive(duplex: Duplex): boolean {
    // @types/node declares void; Node returns whether the socket may be pooled.
    if (!(super.keepSocketAlive(duplex) as unknown as boolean)) return false;
    const socket = duplex as HintedSocket;
    const hint = socket[kIdleHint];
    if (hint === undefined) return true;
    if (hint <= 0) return false;
    if (hint < (socket.timeout ?? Infinity)) socket.setTimeout(hint);
    return true;
  }
}
