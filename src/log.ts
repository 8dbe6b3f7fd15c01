import { pino, type Logger, type DestinationStream } from 'pino';
import { createHash } from 'node:crypto';

export type { Logger };

/**
 * The process logger: JSON lines for admins. Written synchronously so that the
 * last lines before an exit (a fatal error, a shutdown) are never lost; the
 * per-request lines only exist with --verbose, so the hot path stays quiet.
 */
export function createLogger(options: { verbose: boolean; destination?: DestinationStream }): Logger {
  const destination = options.destination ?? pino.destination({ fd: 1, sync: true });
  return pino(
    {
      level: options.verbose ? 'debug' : 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Errors are logged without the request bytes or objects they may hold.
      serializers: { err: serializeError },
    },
    destination,
  );
}

/**
 * What request data may appear in a log line. Session cookie values are
 * credentials: a log line never carries one, only a short tag derived from
 * it, the same for every line about that session.
 */

/**
 * A short, stable tag for a session cookie value: the first 10 hex digits of
 * its SHA-256. An admin holding a cookie can compute it
 * (`printf %s "$value" | sha256sum | cut -c1-10`); the tag cannot be turned
 * back into the cookie.
 */
export function sessionTag(sessionKey: string): string {
  return createHash('sha256').update(sessionKey).digest('hex').slice(0, 10);
}

interface SerializedError {
  type: string;
  message: string;
  stack?: string;
  cause?: unknown;
  [field: string]: unknown;
}

const MAX_CAUSE_DEPTH = 5;

/**
 * The logger's `err` serializer. pino's default copies every enumerable
 * property of an error, and Node's HTTP parser errors carry the raw request
 * bytes (`rawPacket`, with the Cookie header); other errors may hold
 * request or socket objects. Only the type, message, stack, cause and
 * primitive fields (code, errno, syscall, address, port, ...) are kept.
 */
export function serializeError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error)) {
    // A rejection with a non-error value: keep primitives, never walk objects.
    return err === null || typeof err !== 'object' ? err : { type: Object.prototype.toString.call(err) };
  }
  const out: SerializedError = { type: err.name, message: err.message, stack: err.stack };
  for (const [key, value] of Object.entries(err)) {
    if (key === 'rawPacket' || key === 'cause') continue;
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') out[key] = value;
  }
  if (err.cause !== undefined && depth < MAX_CAUSE_DEPTH) out.cause = serializeError(err.cause, depth + 1);
  return out;
}
