import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import httpProxy from 'http-proxy';
import { isKnownNetworkError, statusForProxyError } from './errors.js';
import { rejectUpgrade, sendError } from './error-responses.js';
import { ConnectionTracker } from './connection-tracker.js';
import { stripHopByHop } from './hop-by-hop.js';
import { addCorsEcho, applyRStudioHeaders, isRStudioUrl, rewriteLocalhostRedirect } from './legacy-behaviours.js';
import type { Logger } from './log.js';
import type { ProxyObserver } from './observer.js';
import type { ProxyOptions } from './options.js';
import type { Route } from './route-table.js';
import { sessionKeyFrom } from './session-cookie.js';

/** How long an idle pooled connection to a container is kept. */
const POOLED_SOCKET_IDLE_MS = 15_000;

/** What the proxy core needs: its options, a lookup and a logger. */
export interface ProxyDeps {
  readonly options: ProxyOptions;
  readonly lookup: (sessionKey: string) => Route | undefined;
  readonly log: Logger;
  readonly observer?: ProxyObserver;
}

/** The HTTP server with its routing and the bookkeeping a shutdown needs. */
export interface GieProxy {
  readonly server: http.Server;
  readonly tracker: ConnectionTracker;
  /** Stops pooling connections to containers and closes the idle ones. */
  closeUpstreams(): void;
}

// Per-request state carried on the request object between http-proxy's events.
const kRoute = Symbol('gie.route');
const kStarted = Symbol('gie.started');
interface RoutedRequest extends IncomingMessage {
  [kRoute]?: Route;
  [kStarted]?: number;
}

/**
 * Builds the proxy: every HTTP request and WebSocket upgrade is routed by the
 * session cookie to its container; anything that cannot be routed gets a
 * fast, short error answer, and no client input can throw out of a handler.
 */
export function createGieProxy({ options, lookup, log, observer = {} }: ProxyDeps): GieProxy {
  const tracker = new ConnectionTracker();
  // Keep-alive pool to the containers: the legacy proxy opened a connection
  // per request. LIFO reuses the warmest socket and lets the rest expire.
  const agent = new http.Agent({
    keepAlive: true,
    maxSockets: Infinity,
    maxFreeSockets: 256,
    timeout: POOLED_SOCKET_IDLE_MS,
    scheduling: 'lifo',
  });
  const proxy = httpProxy.createProxyServer({ agent, xfwd: false, ws: true });
  const upgraded = new WeakSet<Duplex>();
  const verbose = options.verbose;

  const server = http.createServer({
    // A 1 GB upload may take longer than Node's 5-minute default.
    requestTimeout: 0,
  });

  const observeRequests = verbose || observer.requestDone !== undefined;

  server.on('request', (req: RoutedRequest, res: ServerResponse) => {
    tracker.trackRequest(res);
    if (observeRequests) {
      req[kStarted] = performance.now();
      res.once('close', () => requestDone(req, res));
    }
    const origin = req.headers.origin;
    const key = sessionKeyFrom(req.headers.cookie, options.cookieName);
    const route = key === undefined ? undefined : lookup(key);
    if (route === undefined) {
      sendError(res, 404, origin);
      return;
    }
    req[kRoute] = route;
    stripHopByHop(req.headers, false);
    if (isRStudioUrl(req.url ?? '')) applyRStudioHeaders(req.headers);
    try {
      proxy.web(req, res, { target: route.proxyTarget });
    } catch (err) {
      onProxyError(err as NodeJS.ErrnoException, req, res);
    }
  });

  server.on('upgrade', (req: RoutedRequest, socket: Duplex, head: Buffer) => {
    socket.on('error', (err) => log.debug({ err: brief(err) }, 'client socket error'));
    if (req.method !== 'GET' || (req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
      rejectUpgrade(socket, 400);
      return;
    }
    const key = sessionKeyFrom(req.headers.cookie, options.cookieName);
    const route = key === undefined ? undefined : lookup(key);
    if (route === undefined) {
      rejectUpgrade(socket, 404);
      return;
    }
    req[kRoute] = route;
    tracker.trackWebSocket(socket);
    if (observer.webSocket !== undefined) {
      observer.webSocket(1);
      socket.once('close', () => observer.webSocket?.(-1));
    }
    stripHopByHop(req.headers, true);
    try {
      // A WebSocket owns its connection for life: no pooling.
      proxy.ws(req, socket, head, { target: route.proxyTarget, agent: false });
    } catch (err) {
      onProxyError(err as NodeJS.ErrnoException, req, socket);
    }
  });

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Malformed HTTP: answer like Node would, but never let it escape.
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    log.debug({ err: brief(err), status }, 'malformed request rejected');
    socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    socket.once('finish', () => socket.destroy());
  });

  proxy.on('proxyReq', (proxyReq, req, res) => {
    // http-proxy normalises the path (it collapses `//`); containers get it byte for byte.
    if (!proxyReq.headersSent) proxyReq.path = req.url ?? '/';
    // A client that goes away mid-response must not leave the container
    // connection open (the legacy proxy leaked one per aborted download).
    res.once('close', () => {
      if (!res.writableFinished) proxyReq.destroy();
    });
  });

  proxy.on('proxyReqWs', (proxyReq, req, socket) => {
    proxyReq.path = req.url ?? '/';
    // After the 101 an error can no longer be answered with a status line.
    // (Closing one side ends the other through http-proxy's pipes.)
    proxyReq.once('upgrade', () => upgraded.add(socket));
  });

  proxy.on('proxyRes', (proxyRes, req, res) => {
    addCorsEcho(proxyRes.headers, req.headers.origin);
    if (options.reverseProxy) {
      const location = rewriteLocalhostRedirect(proxyRes.statusCode, proxyRes.headers.location, options.port);
      if (location !== undefined) proxyRes.headers.location = location;
    }
    // A container that dies mid-body ends the client's response too.
    proxyRes.on('error', () => res.destroy());
  });

  proxy.on('econnreset', () => {
    // The client went away first; the container request is aborted by http-proxy.
  });

  proxy.on('error', (err, req, target) => onProxyError(err as NodeJS.ErrnoException, req, target as ServerResponse | Duplex));

  function onProxyError(err: NodeJS.ErrnoException, req: RoutedRequest, target: ServerResponse | Duplex): void {
    const status = statusForProxyError(err);
    const route = req[kRoute]?.label;
    observer.proxyError?.(err.code ?? 'internal');
    if (isKnownNetworkError(err)) {
      log.warn({ target: route, code: err.code, status }, 'container unreachable; answered with an error status');
    } else {
      log.error({ target: route, err, status }, 'proxy error');
    }
    if (target instanceof http.ServerResponse) {
      sendError(target, status, req.headers.origin);
    } else if (upgraded.has(target)) {
      target.destroy();
    } else {
      rejectUpgrade(target, status);
    }
  }

  function requestDone(req: RoutedRequest, res: ServerResponse): void {
    const ms = performance.now() - (req[kStarted] ?? performance.now());
    const status = res.headersSent ? res.statusCode : 0;
    observer.requestDone?.(status, ms / 1000);
    if (!verbose) return;
    log.debug(
      {
        method: req.method,
        path: req.url,
        target: req[kRoute]?.label,
        status: status === 0 ? undefined : status,
        ms: Math.round(ms * 100) / 100,
        completed: res.writableFinished,
      },
      'request',
    );
  }

  return {
    server,
    tracker,
    closeUpstreams: () => agent.destroy(),
  };
}

function brief(err: NodeJS.ErrnoException): { code?: string; message: string } {
  return { code: err.code, message: err.message };
}
