import type { Target } from './session-map.js';

/** A container address prepared once per reload, in the shape http-proxy takes. */
export interface Route {
  readonly host: string;
  readonly port: number;
  /** `host:port`, for logs. */
  readonly label: string;
  /** Pre-parsed target so http-proxy does not parse a URL per request. */
  readonly proxyTarget: { protocol: 'http:'; host: string; hostname: string; port: number };
}

/**
 * The routes in use. Replaced whole after each successful read, never edited
 * in place, so a request always sees one consistent map.
 */
export class RouteTable {
  private routes = new Map<string, Route>();

  /** The container for a session cookie value, or undefined. O(1). */
  lookup(sessionKey: string): Route | undefined {
    return this.routes.get(sessionKey);
  }

  /** Swaps in a complete new map. Route objects for unchanged targets are reused. */
  replace(targets: ReadonlyMap<string, Target>): void {
    const previous = this.routes;
    const next = new Map<string, Route>();
    for (const [key, target] of targets) {
      const old = previous.get(key);
      next.set(key, old !== undefined && old.host === target.host && old.port === target.port ? old : toRoute(target));
    }
    this.routes = next;
  }

  get size(): number {
    return this.routes.size;
  }
}

function toRoute({ host, port }: Target): Route {
  // IPv6 literals need brackets in a Host-style label but not in hostname.
  const hostname = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const label = hostname.includes(':') ? `[${hostname}]:${port}` : `${hostname}:${port}`;
  return { host: hostname, port, label, proxyTarget: { protocol: 'http:', host: hostname, hostname, port } };
}
