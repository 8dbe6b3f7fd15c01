import { pino, type Logger, type DestinationStream } from 'pino';
import { serializeError } from './log-fields.js';

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
