import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { RefusalReason } from '../routing/router.js';
import { addCorsEcho, type CorsPolicy } from './headers.js';

/**
 * Every answer the proxy gives on its own instead of forwarding: one table
 * from each case to its status, the short body the client sees, and how it is
 * logged. No container address, cookie, token or stack ever goes into a body.
 */

/** Cases the HTTP side itself decides, beside the routers' refusals. */
type ServerCase =
  | 'not-websocket' // an upgrade that is not a WebSocket GET
  | 'connect' // CONNECT: this is not a forward proxy
  | 'container-unreachable' // connecting to or talking to the container failed
  | 'container-timeout' // the container did not start its answer within --proxy-timeout
  | 'internal' // a bug: an unexpected error while forwarding
  | 'malformed-request' // Node's HTTP parser rejected the request
  | 'headers-timeout' // headers not complete within --headers-timeout
  | 'headers-too-large' // headers over Node's limit
  | 'admin-not-found' // the metrics listener serves /health, /metrics and /routes only
  | 'admin-bad-query' // /routes with an inactive_since that is neither a time nor a duration
  | 'admin-method' // the metrics listener answers GET and HEAD only
  | 'admin-failed'; // building /health or /metrics failed (a bug)

export type AnswerCase = RefusalReason | ServerCase;

type AnswerLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Answer {
  readonly status: number;
  readonly body: string;
  /** How a proxy-side failure (a container, a bug) is logged; refusals of client requests log at `debug`. */
  readonly level: AnswerLevel;
  /** The constant log message for this case. */
  readonly message: string;
  /** Extra header lines for raw-socket answers (`Name: value\r\n`). */
  readonly rawHeaders?: string;
}

/** Methods the proxy forwards, for the `Allow` header of its 405 to CONNECT. */
const ALLOWED_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';

const BAD_REQUEST = 'Bad request.\n';
const UNREACHABLE_BODY = 'The interactive environment for this session is not reachable.\n';
const NO_ENTRY_POINT = 'No interactive tool is registered for this address.\n';

/** The table. Log messages here are the ones tests and admins match on. */
export const ANSWERS: Readonly<Record<AnswerCase, Answer>> = Object.freeze({
  'bad-target': { status: 400, body: BAD_REQUEST, level: 'debug', message: 'request refused: unusable request target' },
  'no-session': {
    status: 404,
    body: 'No interactive environment is registered for this session.\n',
    level: 'debug',
    message: 'request refused: no session mapped',
  },
  'no-host': { status: 400, body: BAD_REQUEST, level: 'debug', message: 'request refused: no Host to read an entry point from' },
  'unknown-entry-point': { status: 404, body: NO_ENTRY_POINT, level: 'debug', message: 'request refused: no such entry point' },
  // Told apart in the log only: the client cannot learn which keys exist.
  'wrong-token': { status: 404, body: NO_ENTRY_POINT, level: 'debug', message: 'request refused: wrong entry point token' },
  'no-target-header': { status: 400, body: BAD_REQUEST, level: 'debug', message: 'request refused: header mode without x-interactive-tool-host' },
  'bad-target-header': { status: 400, body: BAD_REQUEST, level: 'debug', message: 'request refused: unusable x-interactive-tool-host/-port' },
  'target-not-allowed': { status: 404, body: NO_ENTRY_POINT, level: 'debug', message: 'request refused: target not on --header-mode-allow' },
  'not-websocket': { status: 400, body: BAD_REQUEST, level: 'debug', message: 'upgrade refused: not a WebSocket GET' },
  connect: {
    status: 405,
    body: 'Method not allowed.\n',
    level: 'debug',
    message: 'CONNECT refused',
    rawHeaders: `Allow: ${ALLOWED_METHODS}\r\n`,
  },
  'container-unreachable': {
    status: 502,
    body: UNREACHABLE_BODY,
    level: 'warn',
    message: 'container unreachable; answered with an error status',
  },
  'container-timeout': {
    status: 504,
    body: 'The interactive environment for this session did not answer in time.\n',
    level: 'warn',
    message: 'container did not answer in time; answered with an error status',
  },
  // A bug while forwarding: the client learns only that its container could not be reached.
  internal: {
    status: 502,
    body: UNREACHABLE_BODY,
    level: 'error',
    message: 'proxy error',
  },
  'malformed-request': { status: 400, body: '', level: 'debug', message: 'malformed request rejected' },
  'headers-timeout': { status: 408, body: '', level: 'debug', message: 'malformed request rejected' },
  'headers-too-large': { status: 431, body: '', level: 'debug', message: 'malformed request rejected' },
  'admin-not-found': {
    status: 404,
    body: 'Not found: this port serves /health, /metrics and /routes only.\n',
    level: 'debug',
    message: 'admin request refused',
  },
  'admin-bad-query': {
    status: 400,
    body: 'inactive_since must be an ISO 8601 time (2026-12-06T12:00:00Z) or a duration (90s, 30m, 1h, 2d).\n',
    level: 'debug',
    message: 'admin request refused',
  },
  'admin-method': { status: 405, body: 'Method not allowed.\n', level: 'debug', message: 'admin request refused' },
  'admin-failed': { status: 500, body: 'Internal error.\n', level: 'error', message: 'metrics request failed' },
} satisfies Record<AnswerCase, Answer>);

/** Network error codes that mean "the container is not there": logged without a stack. */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'ECONNABORTED',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/** Container time-outs. */
const TIMED_OUT = new Set(['ETIMEDOUT', 'ESOCKETTIMEDOUT', 'ERR_GIE_PROXY_TIMEOUT']);

/**
 * The case for a failure talking to a container: too slow (504), not there
 * or gone (502, logged without a stack), or anything else: a bug, answered
 * 502 as well but logged as an error with its stack.
 */
export function caseForProxyError(err: NodeJS.ErrnoException): 'container-timeout' | 'container-unreachable' | 'internal' {
  if (err.code !== undefined && TIMED_OUT.has(err.code)) return 'container-timeout';
  if (err.code !== undefined && UNREACHABLE.has(err.code)) return 'container-unreachable';
  return 'internal';
}

/**
 * The case for a request Node's HTTP parser rejected (server 'clientError'):
 * 408 when its headers did not arrive within `--headers-timeout`, 431 for
 * over-large headers, 400 otherwise. (Errors in a body come after the
 * request was routed; that connection is just closed.)
 */
export function caseForClientError(code: string | undefined): 'headers-timeout' | 'headers-too-large' | 'malformed-request' {
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return 'headers-timeout';
    case 'HPE_HEADER_OVERFLOW':
      return 'headers-too-large';
    default:
      return 'malformed-request';
  }
}

/** A container did not start its answer within `--proxy-timeout`; the client gets 504. */
export class ProxyTimeoutError extends Error {
  override readonly name = 'ProxyTimeoutError';
  readonly code = 'ERR_GIE_PROXY_TIMEOUT';
  constructor(readonly timeoutMs: number) {
    super(`the container sent no response within ${timeoutMs} ms`);
  }
}

/**
 * Answers an HTTP request for `answerCase`, unless a response already
 * started: then the connection is cut, which is all that can still be said.
 */
export function sendAnswer(res: ServerResponse, answerCase: AnswerCase, origin: string | undefined, cors: CorsPolicy = addCorsEcho): void {
  // Already answered in full (a second failure reported for the same
  // request): leave that answer alone. Cutting the connection now could
  // discard it before the client has read it.
  if (res.writableEnded || draining.has(res)) return;
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const req = res.req;
  if (bodyStillComing(req)) {
    // Answering now would let Node close a `Connection: close` socket with
    // the rest of the body unread: the kernel then resets the connection,
    // which can discard the answer before the client reads it. So the body
    // is read and dropped first, within bounds, and then answered.
    draining.add(res);
    readBodyThen(req, () => {
      draining.delete(res);
      if (!res.destroyed) writeAnswer(res, answerCase, origin, cors);
    });
    return;
  }
  writeAnswer(res, answerCase, origin, cors);
}

/** Longest wait for the rest of a refused request's body before its answer (see sendAnswer). */
export const BODY_DRAIN_MS = 1000;
/** Most bytes of a refused request's body read before its answer regardless. */
const BODY_DRAIN_BYTES = 1 << 20;

/** Answers waiting for their request's body to be read (see sendAnswer). */
const draining = new WeakSet<ServerResponse>();

/** True when the request announced a body that has not all arrived yet. */
function bodyStillComing(req: IncomingMessage): boolean {
  if (req.complete || req.destroyed || req.readableEnded) return false;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** Reads and drops the rest of `req`'s body, then calls `then` once: at its end, its failure, BODY_DRAIN_MS or BODY_DRAIN_BYTES. */
function readBodyThen(req: IncomingMessage, then: () => void): void {
  let read = 0;
  let done = false;
  const finish = (): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    req.off('data', onData);
    req.off('end', finish);
    req.off('close', finish);
    req.off('error', finish);
    then();
  };
  const onData = (chunk: Buffer): void => {
    read += chunk.length;
    if (read >= BODY_DRAIN_BYTES) finish();
  };
  const timer = setTimeout(finish, BODY_DRAIN_MS);
  req.on('data', onData);
  req.once('end', finish);
  req.once('close', finish);
  req.once('error', finish);
  req.resume();
}

function writeAnswer(res: ServerResponse, answerCase: AnswerCase, origin: string | undefined, cors: CorsPolicy): void {
  const { status, body } = ANSWERS[answerCase];
  const headers: Record<string, unknown> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  };
  cors(headers, origin);
  res.writeHead(status, headers as Record<string, string>);
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/**
 * The one writer of answers on a raw socket (a refused WebSocket upgrade, a
 * CONNECT, a request Node's parser rejected): a complete HTTP response, then
 * the socket is ended. An upgrade socket is then drained until the client
 * closes (see drainUntilClosed); a socket Node's parser gave up on is
 * destroyed once the answer is flushed (`after: 'destroy'`).
 */
export function answerOnSocket(socket: Duplex, answerCase: AnswerCase, after: 'drain' | 'destroy' = 'drain'): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const { status, body, rawHeaders = '' } = ANSWERS[answerCase];
  const type = body === '' ? '' : 'Content-Type: text/plain; charset=utf-8\r\n';
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      rawHeaders +
      type +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
  if (after === 'drain') drainUntilClosed(socket);
  else socket.once('finish', () => socket.destroy());
}

/** How long a connection we have answered and ended keeps reading what the client still sends. */
const LINGER_MS = 1000;

/**
 * For a raw (upgrade) socket whose answer is written and ended: closing it
 * with unread input would make the kernel send a reset, which can discard
 * the answer before the client reads it. So the rest of the input is read
 * and dropped until the client closes, and the socket destroyed after
 * LINGER_MS at the latest, so nothing lingers half-open.
 */
export function drainUntilClosed(socket: Duplex): void {
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.resume();
}
