import { pino, type Logger, type DestinationStream } from 'pino';
import { createHash } from 'node:crypto';

export type { Logger };

/**
 * Query parameters whose values never reach a log line, whatever else is
 * configured: Jupyter's login token (`?token=`, also on its kernel
 * WebSockets) and its XSRF token (`_xsrf`, in form posts' queries).
 */
export const MASKED_QUERY_PARAMS: readonly string[] = Object.freeze(['token', '_xsrf']);

/** What a masked query value is replaced with. */
export const MASK = '***';

/**
 * The process logger: JSON lines for admins. Written synchronously so that the
 * last lines before an exit (a fatal error, a shutdown) are never lost; the
 * per-request lines only exist with --verbose, so the hot path stays quiet.
 * Every `path` field goes through maskQuery with MASKED_QUERY_PARAMS plus
 * `maskParams`, so no line (request, WebSocket or warning) that names a
 * request target shows a secret query value.
 */
export function createLogger(options: { verbose: boolean; maskParams?: readonly string[]; destination?: DestinationStream }): Logger {
  const destination = options.destination ?? pino.destination({ fd: 1, sync: true });
  const masked = new Set([...MASKED_QUERY_PARAMS, ...(options.maskParams ?? [])].map((name) => name.toLowerCase()));
  return pino(
    {
      level: options.verbose ? 'debug' : 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: {
        // Errors are logged without the request bytes or objects they may hold.
        err: serializeError,
        path: (path: unknown) => (typeof path === 'string' ? maskQuery(path, masked) : path),
      },
    },
    destination,
  );
}

/**
 * A request target as a log line may show it: the value of every query
 * parameter named in `masked` (lower case; names are compared decoded and
 * case-insensitively) replaced by MASK. The path and the other parameters,
 * in order, stay as they came.
 */
export function maskQuery(target: string, masked: ReadonlySet<string>): string {
  const start = target.indexOf('?');
  if (start === -1) return target;
  const pairs = target.slice(start + 1).split('&');
  let changed = false;
  for (let i = 0; i < pairs.length; i++) {
    const eq = pairs[i].indexOf('=');
    if (eq === -1) continue;
    const name = pairs[i].slice(0, eq);
    if (masked.has(decodedName(name))) {
      pairs[i] = `${name}=${MASK}`;
      changed = true;
    }
  }
  return changed ? `${target.slice(0, start)}?${pairs.join('&')}` : target;
}

/** A query parameter's name as the application reads it (`%5Fxsrf` is `_xsrf`), lower case. */
function decodedName(raw: string): string {
  if (!raw.includes('%') && !raw.includes('+')) return raw.toLowerCase();
  try {
    return decodeURIComponent(raw.replaceAll('+', ' ')).toLowerCase();
  } catch {
    return raw.toLowerCase();
  }
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
function serializeError(err: unknown, depth = 0): unknown {
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
