import http, { type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { isBrowserNavigation } from '../pages/browser-navigation.js';
import { ANSWERS, answerOnSocket, caseForProxyError, sendAnswer } from './answers.js';
import { noteKeepAliveHint } from './container-pool.js';
import { rewriteLocalhostRedirect, stripHopByHopResponse } from './headers.js';
import { HTTP_LOG, type ProxyContext } from './proxy-context.js';
import { stateOf, type RequestState } from './request-state.js';

/**
 * http-proxy's events for HTTP requests: the request to the container going
 * out ('proxyReq'), its response coming back ('proxyRes'), and any failure
 * ('error', also for WebSocket upgrades). Each handler is made once per server.
 */

/** 'proxyReq': the request to the container, as it goes out. */
export function proxyReqHandler({ deadlines }: ProxyContext): (proxyReq: ClientRequest, req: IncomingMessage, res: ServerResponse) => void {
  return (proxyReq, req) => {
    // A retry's request replaces the first (see releaseContainerRequest).
    const state = stateOf(req);
    if (state !== undefined) state.proxyReq = proxyReq;
    // http-proxy normalises the path (it collapses `//`); containers get it byte for byte.
    if (!proxyReq.headersSent) proxyReq.path = req.url ?? '/';
    deadlines?.watch(proxyReq);
  };
}

/**
 * The client's response closed on a forwarded request. A client that goes
 * away mid-response must not leave the container connection open (the
 * legacy proxy leaked one per aborted download).
 */
export function releaseContainerRequest(res: ServerResponse, req: IncomingMessage, proxyReq: ClientRequest): void {
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
}

/** 'proxyRes': the container's response headers, made ours before http-proxy copies them. */
export function proxyResHandler({ cors, keepAliveHint, reverseProxy, port, log, deadlines }: ProxyContext): (proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse) => void {
  return (proxyRes, req, res) => {
    const proxyReq = stateOf(req)?.proxyReq;
    if (proxyReq !== undefined) deadlines?.done(proxyReq);
    const headers = proxyRes.headers;
    noteKeepAliveHint(proxyRes.socket, headers['keep-alive']);
    stripHopByHopResponse(headers, 'skipping-undefined');
    // Our own connection to the client: kept alive unless it asked otherwise
    // (http-proxy would otherwise write `keep-alive` whatever the client said),
    // with the hint Node would give, so that clients do not reuse a
    // connection we are about to close.
    if (res.shouldKeepAlive) {
      headers.connection = 'keep-alive';
      headers['keep-alive'] = keepAliveHint;
    } else {
      headers.connection = 'close';
    }
    cors(headers, req.headers.origin);
    if (reverseProxy) {
      const location = rewriteLocalhostRedirect(proxyRes.statusCode, headers.location, port);
      if (location !== undefined) headers.location = location;
    }
    // A closure, not a slot on the response: a slot added here would give
    // Node's stream code one more shape of response to handle (see ProxiedRequest).
    proxyRes.on('error', () => cutResponse(log, proxyRes, res));
  };
}

/**
 * A container that dies mid-body: end the client's response too instead of
 * leaving it waiting for bytes that will never come. The client going away
 * first also lands here; only a container that stopped while the client
 * waited is worth a warning.
 */
function cutResponse(log: ProxyContext['log'], proxyRes: IncomingMessage, res: ServerResponse): void {
  if (proxyRes.complete || res.destroyed) return;
  log.warn({ target: stateOf(res.req)?.route?.label, status: proxyRes.statusCode }, HTTP_LOG.responseCut);
  res.destroy();
}

/**
 * The one place a failure to forward is answered: a stale pooled connection
 * is retried once, a container failure gets its answer from the table, and a
 * WebSocket past its 101 is closed.
 */
export function onProxyError(ctx: ProxyContext, err: NodeJS.ErrnoException, req: IncomingMessage, target: ServerResponse | Duplex): void {
  const { log, upgraded } = ctx;
  const state = stateOf(req);
  if (!(target instanceof http.ServerResponse) && target.destroyed && !upgraded.has(target)) {
    // The client left during the WebSocket handshake and the request to the
    // container was aborted for it (upgrade-path.ts): nobody to answer,
    // nothing wrong with the container.
    log.debug({ target: state?.route?.label, code: err.code }, 'client left during the WebSocket handshake');
    return;
  }
  if (target instanceof http.ServerResponse && state !== undefined && isStalePooledConnection(err, req, state, target)) {
    // The container closed an idle pooled connection just as this request
    // went out on it: nothing reached the container, so send it again, once,
    // on a fresh connection.
    state.retried = true;
    log.debug({ target: state.route?.label }, HTTP_LOG.retried);
    ctx.proxy.web(req, target, { target: state.route?.proxyTarget });
    return;
  }
  const answerCase = caseForProxyError(err);
  const answer = ANSWERS[answerCase];
  const route = state?.route?.label;
  ctx.observer.proxyError?.(err.code ?? 'internal');
  if (answerCase === 'internal') log.error({ target: route, err, status: answer.status }, answer.message);
  else log[answer.level]({ target: route, code: err.code, status: answer.status }, answer.message);
  if (target instanceof http.ServerResponse) {
    // A person's browser whose tool's container is not listening (yet): the page that waits for it.
    if (answerCase === 'container-unreachable' && ctx.pages !== undefined && !target.headersSent && isBrowserNavigation(req)) ctx.pages.answerUnreachable(req, target, state?.clientUrl);
    else sendAnswer(target, answerCase, req.headers.origin, ctx.cors);
  } else if (upgraded.has(target)) {
    target.destroy();
  } else {
    answerOnSocket(target, answerCase);
  }
}

const RETRYABLE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * A reset on a reused pooled connection before any answer, for a bodiless
 * idempotent request not retried yet: the race Node's documentation
 * describes for `request.reusedSocket`, safe to retry.
 */
function isStalePooledConnection(err: NodeJS.ErrnoException, req: IncomingMessage, state: RequestState, res: ServerResponse): boolean {
  return (
    (err.code === 'ECONNRESET' || err.code === 'EPIPE') &&
    state.proxyReq?.reusedSocket === true &&
    !state.retried &&
    !res.headersSent &&
    RETRYABLE_METHODS.has(req.method ?? '') &&
    req.headers['content-length'] === undefined &&
    req.headers['transfer-encoding'] === undefined
  );
}
