import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { sessionTag } from '../log.js';
import { ACTIVITY_CLOCK } from '../routing/activity.js';
import { isBrowserNavigation } from '../pages/browser-navigation.js';
import { isRefusal, type Forward, type Refused } from '../routing/router.js';
import { sendAnswer, type AnswerCase } from './answers.js';
import { addForwardedForSocketPeer, applyRStudioHeaders, isRStudioUrl, stripHopByHop } from './headers.js';
import { HTTP_LOG, type ProxyContext } from './proxy-context.js';
import { onProxyError, releaseContainerRequest } from './proxy-events.js';
import { attachState, stateOf, type RequestState } from './request-state.js';

/**
 * The HTTP request path: a request is routed, then refused with its answer
 * or forwarded to its container (http-proxy's events are in proxy-events.ts).
 * No client input can throw out of it.
 */
export function requestHandler(ctx: ProxyContext): (req: IncomingMessage, res: ServerResponse) => void {
  const { tracker, router, verbose, observeRequests } = ctx;
  const closed = responseClosed(ctx);
  return (req, res) => {
    tracker.requestStarted();
    // One listener, made once, for everything that follows the response's end.
    res.on('close', closed);
    const state = observeRequests ? attachState(req, performance.now()) : undefined;
    if (req.url?.charCodeAt(0) !== 47 /* '/' */ && !toOriginForm(req)) {
      refuse(ctx, req, res, state, 'bad-target');
      return;
    }
    const result = router.route(req);
    if (verbose && state !== undefined) {
      state.credential = result.credential;
      state.logPath = result.logPath;
      state.entryPoint = result.entryPoint;
    }
    if (isRefusal(result)) {
      refuse(ctx, req, res, state, result.refusal);
      return;
    }
    forward(ctx, req, res, state, result);
  };
}

/**
 * What follows a response's close, as one listener made once per server
 * (`this` is the response): the in-flight count, the timed request's report,
 * the release of a forwarded request's container request.
 */
function responseClosed(ctx: ProxyContext): (this: ServerResponse) => void {
  return function (this: ServerResponse) {
    ctx.tracker.requestEnded();
    const req = this.req;
    const state = stateOf(req);
    if (state === undefined) return;
    if (ctx.observeRequests) requestDone(ctx, req, this, state);
    if (state.proxyReq !== undefined) releaseContainerRequest(this, req, state.proxyReq);
  };
}

/** Sends a routed request on to its container. */
function forward(ctx: ProxyContext, req: IncomingMessage, res: ServerResponse, state: RequestState | undefined, result: Forward): void {
  const { route } = result;
  route.lastActive = ACTIVITY_CLOCK.second;
  const routed = state ?? attachState(req, 0);
  routed.route = route;
  if (result.url !== undefined) {
    routed.clientUrl = req.url;
    req.url = result.url;
  }
  stripHopByHop(req.headers, false);
  result.rewriteHeaders?.(req.headers);
  if (isRStudioUrl(req.url ?? '')) applyRStudioHeaders(req.headers);
  if (ctx.socketXfwd) addForwardedForSocketPeer(req.headers, false);
  try {
    ctx.proxy.web(req, res, { target: route.proxyTarget });
  } catch (err) {
    onProxyError(ctx, err as NodeJS.ErrnoException, req, res);
  }
}

function refuse(ctx: ProxyContext, req: IncomingMessage, res: ServerResponse, state: RequestState | undefined, answerCase: AnswerCase): void {
  if (ctx.verbose && state !== undefined) state.refusal = answerCase;
  const pages = ctx.pages;
  if (pages !== undefined && pages.handles(answerCase) && isBrowserNavigation(req)) {
    void pages.answerRefusal(req, res, () => reroute(ctx, req, res, state));
    return;
  }
  sendAnswer(res, answerCase, req.headers.origin, ctx.cors);
}

/** A browser's refused request routed again after the map was re-read: forwarded (undefined) or still refused. */
function reroute(ctx: ProxyContext, req: IncomingMessage, res: ServerResponse, state: RequestState | undefined): Refused | undefined {
  const result = ctx.router.route(req);
  if (isRefusal(result)) return result;
  if (ctx.verbose && state !== undefined) {
    state.refusal = undefined;
    state.credential = result.credential;
    state.entryPoint = result.entryPoint;
  }
  forward(ctx, req, res, state, result);
  return undefined;
}

/** A timed request ended: the observer hears of it, and --verbose logs its line. */
function requestDone(ctx: ProxyContext, req: IncomingMessage, res: ServerResponse, state: RequestState): void {
  const ms = performance.now() - state.started;
  const status = res.headersSent ? res.statusCode : 0;
  ctx.observer.requestDone?.(status, ms / 1000);
  if (!ctx.verbose) return;
  ctx.log.debug(
    {
      method: req.method,
      path: state.logPath ?? req.url,
      session: state.credential === undefined ? undefined : sessionTag(state.credential),
      entryPoint: state.entryPoint,
      target: state.route?.label,
      status: status === 0 ? undefined : status,
      refused: state.refusal,
      ms: Math.round(ms * 100) / 100,
      completed: res.writableFinished,
    },
    HTTP_LOG.request,
  );
}

/**
 * Rewrites a request target that does not start with `/` to the one the
 * container gets (see originFormOf); false when it is not acceptable.
 */
export function toOriginForm(req: IncomingMessage): boolean {
  const target = originFormOf(req.url ?? '', req.method);
  if (target === undefined) return false;
  req.url = target;
  return true;
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
