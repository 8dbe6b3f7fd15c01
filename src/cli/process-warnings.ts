import type { Logger } from '../log.js';

/** The message of a Node process warning's log line. */
export const PROCESS_WARNING_LOG = 'Node.js process warning (logged once per code)';

/**
 * Node's own process warnings (deprecations such as DEP0060, which
 * http-proxy 1.18.1 triggers on every request from Node 22 on, experimental
 * features, MaxListenersExceededWarning) as log lines: one `warn` line per
 * code, the first time it is emitted, instead of Node's plain-text lines on
 * stderr, which break log shippers that read each line as JSON.
 */
export function logProcessWarnings(log: Logger): void {
  // Node prints warnings to stderr from its own 'warning' listener: replace it.
  process.removeAllListeners('warning');
  const seen = new Set<string>();
  process.on('warning', (warning: Error & { code?: string }) => {
    const code = warning.code ?? warning.name;
    if (seen.has(code)) return;
    seen.add(code);
    log.warn({ code, type: warning.name, detail: warning.message }, PROCESS_WARNING_LOG);
  });
}
