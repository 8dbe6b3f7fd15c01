import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { sessionTag } from '../log.js';
import { isRefusal, type Refused } from '../routing/router.js';
import { ANSWERS, answerOnSocket, drainUntilClosed, type AnswerCase } from './answers.js';
import { addForwardedForSocketPeer, stripHopByHop, stripHopByHopResponse } from './headers.js';
import { brief, HTTP_LOG, type ProxyContext } from './proxy-context.js';
import { onProxyError } from './proxy-events.js';
import { toOriginForm } from './request-path.js';
import { attachState, stateOf } from './request-state.js';

/**
 * The WebSocket path: an upgrade is routed like a request, refused on the
 * raw socket, or handed to http-proxy, whose 'proxyReqWs' event follows the
 * connection to the container through its handshake and its life.
 */
export function upgradeHandler(ctx: ProxyContext): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const { router, proxy, tracker, observer, socketXfwd, log } = ctx;
  return (req, socket, head) => {
    socket.on('error', (err) => log.debug(brief(err), HTTP_LOG.clientSocketError));
    if (req.method !== 'GET' || (req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
      refuseUpgrade(ctx, req, socket, 'not-websocket');
      return;
    }
    if (req.url?.charCodeAt(0) !== 47 /* '/' */ && !toOriginForm(req)) {
      refuseUpgrade(ctx, req, socket, 'bad-target');
      return;
    }
    const result = router.route(req);
    if (isRefusal(result)) {
      refuseUpgrade(ctx, req, socket, result.refusal, result);
      return;
    }
    const { route } = result;
    const state = attachState(req, 0);
    state.logPath = result.logPath;
    if (result.url !== undefined) req.url = result.url;
    state.route = route;
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
      onProxyError(ctx, err as NodeJS.ErrnoException, req, socket);
    }
  };
}

function refuseUpgrade(ctx: ProxyContext, req: IncomingMessage, socket: Duplex, answerCase: AnswerCase, refused?: Refused): void {
  const answer = ANSWERS[answerCase];
  const credential = refused?.credential;
  ctx.log.debug(
    {
      // Refused before routing (not a WebSocket GET): the router still
      // says how the target may be logged (an entry point token hidden).
      path: (refused ?? ctx.router.route(req)).logPath ?? req.url,
      session: credential === undefined ? undefined : sessionTag(credential),
      entryPoint: refused?.entryPoint,
      status: answer.status,
      reason: answerCase,
    },
    answer.message,
  );
  answerOnSocket(socket, answerCase);
}

/** 'proxyReqWs': the upgrade request to the container, from its handshake to the WebSocket's close. */
export function proxyReqWsHandler(ctx: ProxyContext): (proxyReq: ClientRequest, req: IncomingMessage, socket: Socket) => void {
  const { deadlines, upgraded } = ctx;
  return (proxyReq, req, socket) => {
    proxyReq.path = req.url ?? '/';
    deadlines?.watch(proxyReq);
    proxyReq.once('response', (proxyRes: IncomingMessage) => {
      deadlines?.done(proxyReq);
      // The container refused the upgrade with a plain answer, which
      // http-proxy copies to the raw socket with the container's headers and
      // the decoded body: drop its framing and let the close end the body.
      stripHopByHopResponse(proxyRes.headers, 'every-key');
      proxyRes.headers.connection = 'close';
      // http-proxy only ends the socket; an upgrade socket is not read any
      // more, so the client's FIN would never be seen and it would stay open.
      socket.once('finish', () => drainUntilClosed(socket));
    });
    proxyReq.once('upgrade', (_res, proxySocket: Duplex) => {
      deadlines?.done(proxyReq);
      followWebSocket(ctx, req, socket, proxySocket);
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
  };
}

/** After the 101: notes who closed the WebSocket for its log line, and applies --ws-idle-timeout. */
function followWebSocket(ctx: ProxyContext, req: IncomingMessage, socket: Socket, proxySocket: Duplex): void {
  // After the 101 an error can no longer be answered with a status line.
  ctx.upgraded.add(socket);
  const route = stateOf(req)?.route;
  if (route !== undefined) ctx.webSockets.opened(socket, route);
  // Closing one side ends the other through http-proxy's pipes; here
  // only who went first is noted, for the log line.
  const opened = performance.now();
  let closedBy: 'client' | 'container' | 'idle' | undefined;
  const byContainer = (): void => void (closedBy ??= 'container');
  proxySocket.once('end', byContainer);
  proxySocket.once('error', byContainer);
  socket.once('close', () => {
    closedBy ??= 'client';
    const state = stateOf(req);
    ctx.log.debug({ path: state?.logPath ?? req.url, target: state?.route?.label, ms: Math.round(performance.now() - opened), closedBy }, HTTP_LOG.webSocketClosed);
  });
  const idleMs = ctx.webSocketIdleTimeoutMs;
  if (idleMs > 0) {
    // Traffic either way passes through the client socket, so its idle
    // timer sees both directions. A destroyed socket ends no pipe: close both.
    socket.setTimeout(idleMs, () => {
      closedBy ??= 'idle';
      socket.destroy();
      proxySocket.destroy();
    });
  }
}
