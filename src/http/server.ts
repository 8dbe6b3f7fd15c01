import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Server } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import httpProxy from 'http-proxy';
import type { ProxyOptions } from '../options.js';
import { sessionTag, type Logger } from '../log.js';
import type { ProxyObserver } from '../observer.js';
import type { Route } from '../routing/route-table.js';
import { isRefusal, type Refused, type Router } from '../routing/router.js';
import { ANSWERS, answerOnSocket, caseForClientError, caseForProxyError, drainUntilClosed, sendAnswer, type AnswerCase } from './answers.js';
import { ConnectionTracker } from './connection-tracker.js';
import { ContainerAgent, armProxyTimeout, noteKeepAliveHint } from './container-pool.js';
import {
  addForwardedForSocketPeer,
  applyRStudioHeaders,
  corsPolicy,
  isRStudioUrl,
  rewriteLocalhostRedirect,
  stripHopByHop,
  stripHopByHopResponse,
} from './headers.js';

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

/** What the proxy core needs: its options, a router and a logger. */
export interface ProxyDeps {
  readonly options: ProxyOptions;
  /** Decides where each request goes (see src/routing/router.ts). */
  readonly router: Router;
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
const kSession = Symbol('gie.session');
const kProxyReq = Symbol('gie.proxyReq');
const kRetried = Symbol('gie.retried');
const kRefusal = Symbol('gie.refusal');
const kLogPath = Symbol('gie.logPath');
const kEntryPoint = Symbol('gie.entryPoint');
interface RoutedRequest extends IncomingMessage {
  [kRoute]?: Route;
  [kStarted]?: number;
  /** The current request to the container, and whether it is a retry. */
  [kProxyReq]?: http.ClientRequest;
  [kRetried]?: boolean;
  /** The credential that chose the route, kept for the --verbose line (which logs only its tag). */
  [kSession]?: string;
  /** Why the request was refused, for the --verbose line. */
  [kRefusal]?: AnswerCase;
  /** The request target as log lines show it (an entry point token replaced), when not req.url. */
  [kLogPath]?: string;
  /** The Interactive Tools entry point key the request named, for the --verbose line. */
  [kEntryPoint]?: string;
}

/**
 * Builds the proxy: every HTTP request and WebSocket upgrade is routed by the
 * router to its container; anything that cannot be routed gets a fast, short
 * answer from the answers table, and no client input can throw out of a handler.
 */
export function createGieProxy({ options, router, log, observer = {} }: ProxyDeps): GieProxy {
  const tracker = new ConnectionTracker();
  const agent = new ContainerAgent();
  // xfwd appends X-Forwarded-For/-Port/-Proto to what arrived and sets
  // X-Forwarded-Host when absent (http-proxy's XHeaders pass). Clients on a
  // unix socket have no address for it: those headers are ours.
  const socketXfwd = options.xfwd && options.socketPath !== undefined;
  const proxy = httpProxy.createProxyServer({ agent, xfwd: options.xfwd && !socketXfwd, ws: true });
  const upgraded = new WeakSet<Duplex>();
  const verbose = options.verbose;
  const cors = corsPolicy(options.corsOrigins);
  const { proxyTimeoutMs, webSocketIdleTimeoutMs } = options;

  const server = http.createServer({
    // A 1 GB upload may take longer than Node's 5-minute default: only the
    // headers are timed (slow-headers clients), never the body.
    requestTimeout: 0,
    headersTimeout: options.headersTimeoutMs,
    connectionsCheckingInterval: headersCheckIntervalMs(options.headersTimeoutMs),
  });
  const keepAliveHint = `timeout=${Math.floor(server.keepAliveTimeout / 1000)}`;

  const observeRequests = verbose || observer.requestDone !== undefined;

  server.on('request', (req: RoutedRequest, res: ServerResponse) => {
    tracker.trackRequest(res);
    if (observeRequests) {
      req[kStarted] = performance.now();
      res.once('close', () => requestDone(req, res));
    }
    if (req.url?.charCodeAt(0) !== 47 /* '/' */ && !toOriginForm(req)) {
      refuse(req, res, 'bad-target');
      return;
    }
    const result = router.route(req);
    if (verbose) {
      req[kSession] = result.credential;
      req[kLogPath] = result.logPath;
      req[kEntryPoint] = result.entryPoint;
    }
    if (isRefusal(result)) {
      refuse(req, res, result.refusal);
      return;
    }
    const { route } = result;
    req[kRoute] = route;
    if (result.url !== undefined) req.url = result.url;
    stripHopByHop(req.headers, false);
    result.rewriteHeaders?.(req.headers);
    if (isRStudioUrl(req.url ?? '')) applyRStudioHeaders(req.headers);
    if (socketXfwd) addForwardedForSocketPeer(req.headers, false);
    try {
      proxy.web(req, res, { target: route.proxyTarget });
    } catch (err) {
      onProxyError(err as NodeJS.ErrnoException, req, res);
    }
  });

  function refuse(req: RoutedRequest, res: ServerResponse, answerCase: AnswerCase): void {
    if (verbose) req[kRefusal] = answerCase;
    sendAnswer(res, answerCase, req.headers.origin, cors);
  }

  function refuseUpgrade(req: RoutedRequest, socket: Duplex, answerCase: AnswerCase, refused?: Refused): void {
    const answer = ANSWERS[answerCase];
    const credential = refused?.credential;
    log.debug(
      {
        // Refused before routing (not a WebSocket GET): the router still
        // says how the target may be logged (an entry point token hidden).
        path: (refused ?? router.route(req)).logPath ?? req.url,
        session: credential === undefined ? undefined : sessionTag(credential),
        entryPoint: refused?.entryPoint,
        status: answer.status,
        reason: answerCase,
      },
      answer.message,
    );
    answerOnSocket(socket, answerCase);
  }

  server.on('upgrade', (req: RoutedRequest, socket: Duplex, head: Buffer) => {
    socket.on('error', (err) => log.debug(brief(err), HTTP_LOG.clientSocketError));
    if (req.method !== 'GET' || (req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
      refuseUpgrade(req, socket, 'not-websocket');
      return;
    }
    if (req.url?.charCodeAt(0) !== 47 /* '/' */ && !toOriginForm(req)) {
      refuseUpgrade(req, socket, 'bad-target');
      return;
    }
    const result = router.route(req);
    if (isRefusal(result)) {
      refuseUpgrade(req, socket, result.refusal, result);
      return;
    }
    const { route } = result;
    if (result.logPath !== undefined) req[kLogPath] = result.logPath;
    if (result.url !== undefined) req.url = result.url;
    req[kRoute] = route;
    tracker.trackWebSocket(socket);
    if (observer.webSocket !== undefined) {
      observer.webSocket(1);
      socket.once('close', () => observer.webSocket?.(-1));
    }
    stripHopByHop(req.headers, true);
    result.rewriteHeaders?.(req.headers);
    if (socketXfwd) addForwardedForSocketPeer(req.headers, true);
    try {
      // A WebSocket owns its connection for life: no pooling.
      proxy.ws(req, socket, head, { target: route.proxyTarget, agent: false });
    } catch (err) {
      onProxyError(err as NodeJS.ErrnoException, req, socket);
    }
  });

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Malformed HTTP: answer like Node would, but never let it escape.
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
  });

  // This is not a forward proxy: tunnels to anywhere are refused.
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => socket.destroy());
    answerOnSocket(socket, 'connect');
  });

  proxy.on('proxyReq', (proxyReq, req: RoutedRequest, res) => {
    req[kProxyReq] = proxyReq;
    // http-proxy normalises the path (it collapses `//`); containers get it byte for byte.
    if (!proxyReq.headersSent) proxyReq.path = req.url ?? '/';
    // A client that goes away mid-response must not leave the container
    // connection open (the legacy proxy leaked one per aborted download).
    res.once('close', () => {
      if (!res.writableFinished) proxyReq.destroy();
      else if (!req.complete) {
        // Answered before the whole upload arrived (an error status, or a
        // container that answered early): the request to the container is
        // over, and the rest of the body is read and dropped, as Node does for
        // a request nobody reads. Left paused, it would stall the client's
        // keep-alive connection until it is reset.
        proxyReq.destroy();
        req.resume();
      }
    });
    if (proxyTimeoutMs > 0) armProxyTimeout(proxyReq, proxyTimeoutMs);
  });

  proxy.on('proxyReqWs', (proxyReq, req: RoutedRequest, socket) => {
    proxyReq.path = req.url ?? '/';
    if (proxyTimeoutMs > 0) armProxyTimeout(proxyReq, proxyTimeoutMs);
    proxyReq.once('response', (proxyRes: IncomingMessage) => {
      // The container refused the upgrade with a plain answer, which
      // http-proxy copies to the raw socket with the container's headers and
      // the decoded body: drop its framing and let the close end the body.
      stripHopByHopResponse(proxyRes.headers);
      proxyRes.headers.connection = 'close';
      // http-proxy only ends the socket; an upgrade socket is not read any
      // more, so the client's FIN would never be seen and it would stay open.
      socket.once('finish', () => drainUntilClosed(socket));
    });
    proxyReq.once('upgrade', (_res, proxySocket: Duplex) => {
      // After the 101 an error can no longer be answered with a status line.
      upgraded.add(socket);
      // Closing one side ends the other through http-proxy's pipes; here
      // only who went first is noted, for the log line.
      const opened = performance.now();
      let closedBy: 'client' | 'container' | 'idle' | undefined;
      const byContainer = (): void => void (closedBy ??= 'container');
      proxySocket.once('end', byContainer);
      proxySocket.once('error', byContainer);
      socket.once('close', () => {
        closedBy ??= 'client';
        log.debug({ path: req[kLogPath] ?? req.url, target: req[kRoute]?.label, ms: Math.round(performance.now() - opened), closedBy }, HTTP_LOG.webSocketClosed);
      });
      if (webSocketIdleTimeoutMs > 0) {
        // Traffic either way passes through the client socket, so its idle
        // timer sees both directions. A destroyed socket ends no pipe: close both.
        socket.setTimeout(webSocketIdleTimeoutMs, () => {
          closedBy ??= 'idle';
          socket.destroy();
          proxySocket.destroy();
        });
      }
    });
    // A client gone before the container answered the upgrade: stop asking
    // it. A reset is passed on as a reset: when the container is another
    // proxy (forward mode → header mode), a plain close would reach it as a
    // FIN, which its half-open client socket does not take as the end, and
    // it would keep waiting on its own container until --proxy-timeout.
    socket.once('close', (hadError: boolean) => {
      if (hadError && !upgraded.has(socket)) proxyReq.socket?.resetAndDestroy();
      proxyReq.destroy();
    });
  });

  proxy.on('proxyRes', (proxyRes, req, res) => {
    noteKeepAliveHint(proxyRes.socket, proxyRes.headers['keep-alive']);
    stripHopByHopResponse(proxyRes.headers);
    // Our own connection to the client: kept alive unless it asked otherwise
    // (http-proxy would otherwise write `keep-alive` whatever the client said),
    // with the hint Node would give, so that clients do not reuse a
    // connection we are about to close.
    if (res.shouldKeepAlive) {
      proxyRes.headers.connection = 'keep-alive';
      proxyRes.headers['keep-alive'] = keepAliveHint;
    } else {
      proxyRes.headers.connection = 'close';
    }
    cors(proxyRes.headers, req.headers.origin);
    if (options.reverseProxy) {
      const location = rewriteLocalhostRedirect(proxyRes.statusCode, proxyRes.headers.location, options.port);
      if (location !== undefined) proxyRes.headers.location = location;
    }
    // A container that dies mid-body: end the client's response too instead
    // of leaving it waiting for bytes that will never come. The client going
    // away first also lands here; only a container that stopped while the
    // client waited is worth a warning.
    const cut = (): void => {
      if (proxyRes.complete || res.destroyed) return;
      log.warn({ target: (req as RoutedRequest)[kRoute]?.label, status: proxyRes.statusCode }, HTTP_LOG.responseCut);
      res.destroy();
    };
    proxyRes.on('error', cut);
  });

  proxy.on('econnreset', () => {
    // The client went away first; the container request is aborted by http-proxy.
  });

  proxy.on('error', (err, req, target) => onProxyError(err, req, target));

  function onProxyError(err: NodeJS.ErrnoException, req: RoutedRequest, target: ServerResponse | Duplex): void {
    if (!(target instanceof http.ServerResponse) && target.destroyed && !upgraded.has(target)) {
      // The client left during the WebSocket handshake and the request to the
      // container was aborted for it (above): nobody to answer, nothing wrong
      // with the container.
      log.debug({ target: req[kRoute]?.label, code: err.code }, 'client left during the WebSocket handshake');
      return;
    }
    if (target instanceof http.ServerResponse && isStalePooledConnection(err, req, target)) {
      // The container closed an idle pooled connection just as this request
      // went out on it: nothing reached the container, so send it again, once,
      // on a fresh connection.
      req[kRetried] = true;
      log.debug({ target: req[kRoute]?.label }, HTTP_LOG.retried);
      proxy.web(req, target, { target: req[kRoute]?.proxyTarget });
      return;
    }
    const answerCase = caseForProxyError(err);
    const answer = ANSWERS[answerCase];
    const route = req[kRoute]?.label;
    observer.proxyError?.(err.code ?? 'internal');
    if (answerCase === 'internal') log.error({ target: route, err, status: answer.status }, answer.message);
    else log[answer.level]({ target: route, code: err.code, status: answer.status }, answer.message);
    if (target instanceof http.ServerResponse) {
      sendAnswer(target, answerCase, req.headers.origin, cors);
    } else if (upgraded.has(target)) {
      target.destroy();
    } else {
      answerOnSocket(target, answerCase);
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
        path: req[kLogPath] ?? req.url,
        session: req[kSession] === undefined ? undefined : sessionTag(req[kSession]),
        entryPoint: req[kEntryPoint],
        target: req[kRoute]?.label,
        status: status === 0 ? undefined : status,
        refused: req[kRefusal],
        ms: Math.round(ms * 100) / 100,
        completed: res.writableFinished,
      },
      HTTP_LOG.request,
    );
  }

  return {
    server,
    tracker,
    closeUpstreams: () => agent.destroy(),
  };
}

/**
 * A client-side error as log fields: its code and message only. (Under `err`
 * the logger's serializer would take it for a non-error value; parser errors
 * also carry the raw request bytes, cookies included, which must not be logged.)
 */
function brief(err: NodeJS.ErrnoException): { code?: string; detail: string } {
  return { code: err.code, detail: err.message };
}

const RETRYABLE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * A reset on a reused pooled connection before any answer, for a bodiless
 * idempotent request not retried yet: the race Node's documentation
 * describes for `request.reusedSocket`, safe to retry.
 */
function isStalePooledConnection(err: NodeJS.ErrnoException, req: RoutedRequest, res: ServerResponse): boolean {
  return (
    (err.code === 'ECONNRESET' || err.code === 'EPIPE') &&
    req[kProxyReq]?.reusedSocket === true &&
    req[kRetried] !== true &&
    !res.headersSent &&
    RETRYABLE_METHODS.has(req.method ?? '') &&
    req.headers['content-length'] === undefined &&
    req.headers['transfer-encoding'] === undefined
  );
}

/**
 * Rewrites a request target that does not start with `/` to the one the
 * container gets (see originFormOf); false when it is not acceptable.
 */
function toOriginForm(req: IncomingMessage): boolean {
  const target = originFormOf(req.url ?? '', req.method);
  if (target === undefined) return false;
  req.url = target;
  return true;
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

// `scheme://authority` at the start of an absolute-form request target.
const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/;

/**
 * The request target to send to the container for a target that does not
 * start with `/` (the caller checks that cheaply first).
 *
 * This proxy is not a forward proxy: the container is always the one the
 * router names. An absolute-form target (`GET http://other-host/x`, which
 * forward proxies receive) is reduced to its path and query, so the named
 * host is neither contacted nor passed on in the request line; the asterisk
 * form is passed on for `OPTIONS *` only. Anything else is refused
 * (undefined → 400).
 */
export function originFormOf(url: string, method: string | undefined): string | undefined {
  if (url === '*') return method === 'OPTIONS' ? url : undefined;
  const authority = ABSOLUTE_FORM.exec(url);
  if (authority === null) return undefined;
  const rest = url.slice(authority[0].length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}
