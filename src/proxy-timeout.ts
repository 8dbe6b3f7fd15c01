import type { ClientRequest } from 'node:http';
import type { Socket } from 'node:net';
import { ProxyTimeoutError } from './errors.js';

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
