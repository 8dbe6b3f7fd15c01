import http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ClientRequest } from 'node:http';
import { ProxyTimeoutError } from './answers.js';

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

/**
 * `--proxy-timeout` for one request to a container: destroys `proxyReq` with
 * ProxyTimeoutError (→ 504) when the container takes longer than `ms`
 * to accept the connection, or to start its answer once the whole request
 * has been sent. The time spent streaming a client's upload does not count
 * (a 1 GB upload may take an hour), and once the answer has started nothing
 * is timed: a download or a WebSocket may last as long as it flows.
 */
export function armProxyTimeout(proxyReq: ClientRequest, ms: number): void {
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => proxyReq.destroy(new ProxyTimeoutError(ms)), ms);
  };
  const disarm = (): void => {
    clearTimeout(timer);
    timer = undefined;
  };
  let answered = false;
  const done = (): void => {
    answered = true;
    disarm();
  };
  proxyReq.once('response', done);
  proxyReq.once('upgrade', done);
  proxyReq.once('close', done);
  // Sent in full (request line, headers, body): the container has all it needs.
  proxyReq.once('finish', () => {
    if (!answered) arm();
  });
  // Connecting counts; a pooled connection is already connected.
  const watchConnect = (socket: Socket): void => {
    if (!socket.connecting) return;
    arm();
    socket.once('connect', () => {
      if (!proxyReq.writableFinished) disarm();
    });
  };
  if (proxyReq.socket !== null) watchConnect(proxyReq.socket as Socket);
  else proxyReq.once('socket', watchConnect);
}
