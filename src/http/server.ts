import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Server } from 'node:net';
import type { Duplex } from 'node:stream';
import httpProxy from 'http-proxy';
import type { Logger } from '../log.js';
import type { ProxyObserver } from '../observer.js';
import type { BrowserPages } from '../pages/browser-pages.js';
import type { Router } from '../routing/router.js';
import { ANSWERS, answerOnSocket, caseForClientError } from './answers.js';
import { WebSocketActivity } from '../routing/activity.js';
import { ConnectionTracker } from './connection-tracker.js';
import { ContainerAgent, ProxyDeadlines } from './container-pool.js';
import { corsPolicy } from './headers.js';
import { brief, type ProxyContext } from './proxy-context.js';
import { onProxyError, proxyReqHandler, proxyResHandler } from './proxy-events.js';
import { requestHandler } from './request-path.js';
import { ProxiedRequest } from './request-state.js';
import { proxyReqWsHandler, upgradeHandler } from './upgrade-path.js';

// The HTTP side's log messages, where admins' tests have always found them.
export { HTTP_LOG } from './proxy-context.js';

/** The listening socket could not be opened. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
  readonly code = 'ERR_GIE_LISTEN';
  /**
   * True when the configuration must change before a start can succeed (the
   * --socket path is held by a live socket or by a file that is not a
   * socket): the CLI exits 2, which supervisors do not restart.
   */
  readonly configuration: boolean;
  constructor(
    /** `ip:port`, or the socket's path. */
    readonly address: string,
    options: { cause?: NodeJS.ErrnoException; reason?: string; configuration?: boolean },
  ) {
    super(`cannot listen on ${address}: ${options.reason ?? describeListenFailure(options.cause)}`, options.cause === undefined ? {} : { cause: options.cause });
    this.configuration = options.configuration ?? false;
  }
}

function describeListenFailure(err: NodeJS.ErrnoException | undefined): string {
  switch (err?.code) {
    case 'EADDRINUSE':
      return 'address already in use (is another proxy running?)';
    case 'EACCES':
      return 'permission denied (ports below 1024 need privileges)';
    case 'EADDRNOTAVAIL':
      return 'address not available on this machine (check --ip)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host name does not resolve (check --ip)';
    default:
      return err?.message ?? 'unknown error';
  }
}

/** How often Node checks for clients past `--headers-timeout`: a client is dropped at most this much late. */
function headersCheckIntervalMs(headersTimeoutMs: number): number {
  return Math.min(1000, Math.max(10, Math.floor(headersTimeoutMs / 10)));
}

/** The options the HTTP side reads (ProxyOptions has them all; see src/options.ts for each). */
interface ServerOptions {
  readonly headersTimeoutMs: number;
  readonly proxyTimeoutMs: number;
  readonly webSocketIdleTimeoutMs: number;
  readonly xfwd: boolean;
  /** Set when listening on a unix socket (whose clients have no address for X-Forwarded-For). */
  readonly socketPath: string | undefined;
  readonly verbose: boolean;
  readonly corsOrigins: readonly string[] | null;
  readonly reverseProxy: boolean;
  /** The public port, for --reverseProxy's redirects. */
  readonly port: number;
}

/** What the proxy core needs: its options, a router and a logger. */
interface ProxyDeps {
  readonly options: ServerOptions;
  /** Decides where each request goes (see src/routing/router.ts). */
  readonly router: Router;
  readonly log: Logger;
  readonly observer?: ProxyObserver;
  /** The HTML pages for browsers (src/pages/); undefined: plain answers for every client. */
  readonly pages?: BrowserPages;
}

/** The HTTP server with its routing and the bookkeeping a shutdown needs. */
export interface GieProxy {
  readonly server: http.Server;
  readonly tracker: ConnectionTracker;
  /** The open WebSockets by route, for who is active (src/routing/activity.ts). */
  readonly webSockets: WebSocketActivity;
  /** Stops pooling connections to containers and closes the idle ones. */
  closeUpstreams(): void;
}

/**
 * Builds the proxy: every HTTP request (request-path.ts) and WebSocket
 * upgrade (upgrade-path.ts) is routed by the router to its container through
 * http-proxy (proxy-events.ts); anything that cannot be routed gets a fast,
 * short answer from the answers table, and no client input can throw out of
 * a handler.
 */
export function createGieProxy({ options, router, log, observer = {}, pages }: ProxyDeps): GieProxy {
  const agent = new ContainerAgent();
  // xfwd appends X-Forwarded-For/-Port/-Proto to what arrived and sets
  // X-Forwarded-Host when absent (http-proxy's XHeaders pass). Clients on a
  // unix socket have no address for it: those headers are ours.
  const socketXfwd = options.xfwd && options.socketPath !== undefined;
  const proxy = httpProxy.createProxyServer({ agent, xfwd: options.xfwd && !socketXfwd, ws: true });
  const server = http.createServer({
    IncomingMessage: ProxiedRequest,
    // A 1 GB upload may take longer than Node's 5-minute default: only the
    // headers are timed (slow-headers clients), never the body.
    requestTimeout: 0,
    headersTimeout: options.headersTimeoutMs,
    connectionsCheckingInterval: headersCheckIntervalMs(options.headersTimeoutMs),
  });
  const ctx: ProxyContext = {
    proxy,
    router,
    log,
    observer,
    tracker: new ConnectionTracker(),
    webSockets: new WebSocketActivity(),
    cors: corsPolicy(options.corsOrigins),
    verbose: options.verbose,
    observeRequests: options.verbose || observer.requestDone !== undefined,
    socketXfwd,
    deadlines: options.proxyTimeoutMs > 0 ? new ProxyDeadlines(options.proxyTimeoutMs) : undefined,
    webSocketIdleTimeoutMs: options.webSocketIdleTimeoutMs,
    reverseProxy: options.reverseProxy,
    port: options.port,
    keepAliveHint: `timeout=${Math.floor(server.keepAliveTimeout / 1000)}`,
    upgraded: new WeakSet<Duplex>(),
    pages,
  };
  server.on('request', requestHandler(ctx));
  server.on('upgrade', upgradeHandler(ctx));
  server.on('clientError', clientErrorHandler(log));
  server.on('connect', refuseConnect);
  proxy.on('proxyReq', proxyReqHandler(ctx));
  proxy.on('proxyReqWs', proxyReqWsHandler(ctx));
  proxy.on('proxyRes', proxyResHandler(ctx));
  proxy.on('econnreset', () => {
    // The client went away first; the container request is aborted by http-proxy.
  });
  proxy.on('error', (err, req, target) => onProxyError(ctx, err, req, target));
  return {
    server,
    tracker: ctx.tracker,
    webSockets: ctx.webSockets,
    closeUpstreams: () => {
      ctx.deadlines?.close();
      agent.destroy();
    },
  };
}

/** Malformed HTTP: answered like Node would, but never let out as an exception. */
function clientErrorHandler(log: Logger): (err: NodeJS.ErrnoException, socket: Duplex) => void {
  return (err, socket) => {
    // An answer already streaming on this connection (to a request before
    // the bad one) must not get ours in its middle: then just close.
    const pending = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || pending?.headersSent === true) {
      socket.destroy();
      return;
    }
    const answerCase = caseForClientError(err.code);
    const answer = ANSWERS[answerCase];
    log.debug({ ...brief(err), status: answer.status }, answer.message);
    answerOnSocket(socket, answerCase, 'destroy');
  };
}

/** This is not a forward proxy: tunnels to anywhere are refused. */
function refuseConnect(_req: IncomingMessage, socket: Duplex): void {
  socket.on('error', () => socket.destroy());
  answerOnSocket(socket, 'connect');
}

/**
 * Starts `server` listening on `ip:port` and resolves with the bound address;
 * rejects with ListenError (naming the address and why) and leaves the
 * server closed.
 */
export async function listenOn(server: Server, port: number, ip: string): Promise<AddressInfo> {
  try {
    server.listen(port, ip);
    await Promise.race([once(server, 'listening'), once(server, 'error').then((args) => Promise.reject(args[0] as Error))]);
  } catch (err) {
    server.close();
    throw new ListenError(`${ip}:${port}`, { cause: err as NodeJS.ErrnoException });
  }
  return server.address() as AddressInfo;
}
