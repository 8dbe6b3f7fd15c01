import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import type { CorsPolicy } from './cors-policy.js';
import { addCorsEcho } from './legacy-behaviours.js';

/**
 * The short, fixed bodies clients see. No container addresses, cookie values
 * or stack traces ever go into them.
 */
export const ERROR_BODIES: Readonly<Record<number, string>> = Object.freeze({
  400: 'Bad request.\n',
  404: 'No interactive environment is registered for this session.\n',
  405: 'Method not allowed.\n',
  500: 'Internal proxy error.\n',
  502: 'The interactive environment for this session is not reachable.\n',
  503: 'The proxy is shutting down.\n',
  504: 'The interactive environment for this session did not answer in time.\n',
});

function bodyFor(status: number): string {
  return ERROR_BODIES[status] ?? `${STATUS_CODES[status] ?? 'Error'}.\n`;
}

/** Answers an HTTP request with a plain-text error, unless a response already started. */
export function sendError(res: ServerResponse, status: number, origin: string | undefined, cors: CorsPolicy = addCorsEcho): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = bodyFor(status);
  const headers: Record<string, unknown> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  };
  cors(headers, origin);
  res.writeHead(status, headers as Record<string, string>);
  res.end(body);
}

/**
 * Answers a WebSocket upgrade (or a CONNECT) that cannot be proxied with a
 * real HTTP response on the raw socket, then closes it.
 */
export function rejectUpgrade(socket: Duplex, status: number, extraHeaders = ''): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = bodyFor(status);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      extraHeaders +
      'Content-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
  drainUntilClosed(socket);
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
