/**
 * Hooks through which the core reports what it does, for metrics and health
 * endpoints. Every hook is optional and must be cheap: the request hooks run
 * on the hot path.
 */
export interface ProxyObserver {
  /** An HTTP request ended (`status` is 0 when no response was started). */
  requestDone?(status: number, seconds: number): void;
  /** The proxy failed to talk to a container (`kind`: an error code such as ECONNREFUSED). */
  proxyError?(kind: string): void;
  /** Open client WebSockets changed by +1 or -1. */
  webSocket?(delta: 1 | -1): void;
  /** The session map was read successfully. */
  reloaded?(sessions: number, seconds: number): void;
  /** A read of the session map failed; the last good map stays in use. */
  reloadFailed?(reason: string): void;
}

type Hook = keyof ProxyObserver;
const HOOKS: readonly Hook[] = ['requestDone', 'proxyError', 'webSocket', 'reloaded', 'reloadFailed'];

/**
 * One observer that reports to each of `observers`. A hook none of them has
 * stays undefined, so the proxy can still skip the work behind it.
 */
export function combineObservers(...observers: ProxyObserver[]): ProxyObserver {
  const combined: Record<string, (...args: never[]) => void> = {};
  for (const hook of HOOKS) {
    const targets = observers.filter((o) => o[hook] !== undefined);
    if (targets.length === 0) continue;
    combined[hook] = (...args: never[]) => {
      for (const o of targets) (o[hook] as (...a: never[]) => void).apply(o, args);
    };
  }
  return combined;
}
