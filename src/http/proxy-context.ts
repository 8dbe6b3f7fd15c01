import type { Duplex } from 'node:stream';
import type httpProxy from 'http-proxy';
import type { Logger } from '../log.js';
import type { ProxyObserver } from '../observer.js';
import type { BrowserPages } from '../pages/browser-pages.js';
import type { Router } from '../routing/router.js';
import type { WebSocketActivity } from '../routing/activity.js';
import type { ConnectionTracker } from './connection-tracker.js';
import type { ProxyDeadlines } from './container-pool.js';
import type { CorsPolicy } from './headers.js';

/**
 * What the request path, the upgrade path and http-proxy's event handlers
 * share: built once per server by createGieProxy, read by handlers that are
 * each made once (no closure per request beyond the ones Node's events need).
 */
export interface ProxyContext {
  readonly proxy: httpProxy;
  readonly router: Router;
  readonly log: Logger;
  readonly observer: ProxyObserver;
  readonly tracker: ConnectionTracker;
  /** The open WebSockets, followed for who is active (`/routes`). */
  readonly webSockets: WebSocketActivity;
  readonly cors: CorsPolicy;
  /** --verbose: one line per request. */
  readonly verbose: boolean;
  /** Requests are timed: --verbose, or an observer that wants each request. */
  readonly observeRequests: boolean;
  /** X-Forwarded-For is ours to add: clients on a unix socket have no address for http-proxy's xfwd. */
  readonly socketXfwd: boolean;
  /** --proxy-timeout's clock on the requests to containers; undefined when it is 0 (off). */
  readonly deadlines: ProxyDeadlines | undefined;
  readonly webSocketIdleTimeoutMs: number;
  /** --reverseProxy: redirects to http://localhost/ get the proxy's port. */
  readonly reverseProxy: boolean;
  readonly port: number;
  /** The `Keep-Alive` hint Node would give on our connections to clients. */
  readonly keepAliveHint: string;
  /** Client sockets past the 101: an error can no longer be answered with a status line. */
  readonly upgraded: WeakSet<Duplex>;
  /** The HTML pages for browsers' refused or failed navigations; undefined: plain answers for everyone. */
  readonly pages: BrowserPages | undefined;
}

/**
 * Log messages of the HTTP side that admins (and tests) match on, beside the
 * answers' messages in ANSWERS.
 */
export const HTTP_LOG = Object.freeze({
  /** One line per request with --verbose. */
  request: 'request',
  webSocketClosed: 'websocket closed',
  responseCut: 'container closed the connection mid-response; the response was cut',
  retried: 'pooled connection closed by the container; request sent again',
  clientSocketError: 'client socket error',
});

/**
 * A client-side error as log fields: its code and message only. (Under `err`
 * the logger's serializer would take it for a non-error value; parser errors
 * also carry the raw request bytes, cookies included, which must not be logged.)
 */
export function brief(err: NodeJS.ErrnoException): { code?: string; detail: string } {
  return { code: err.code, detail: err.message };
}
