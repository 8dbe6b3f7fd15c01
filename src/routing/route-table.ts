import { ACTIVITY_CLOCK, type Active } from './activity.js';

/** Where one user's container listens. */
export interface Target {
  readonly host: string;
  readonly port: number;
}

/**
 * A container address prepared once per reload, in the shape http-proxy takes
 * as its target (so that it does not parse a URL per request). One small
 * object per route: at 100,000 sessions every byte here counts 100,000 times,
 * so the `host:port` label for logs is made only when asked for.
 */
export class Route implements Active {
  readonly protocol = 'http:';
  /** Same as `hostname`: http-proxy reads both. */
  readonly host: string;
  /** See Active (activity.ts): set by the request and WebSocket paths. */
  lastActive = -1;
  readonly appeared = ACTIVITY_CLOCK.second;
  constructor(
    /** The host without IPv6 brackets. */
    readonly hostname: string,
    readonly port: number,
  ) {
    this.host = hostname;
  }

  /** `host:port` (IPv6 literals bracketed), for logs. */
  get label(): string {
    return this.hostname.includes(':') ? `[${this.hostname}]:${this.port}` : `${this.hostname}:${this.port}`;
  }

  /** What http-proxy's `target` option gets: the route itself. */
  get proxyTarget(): { readonly protocol: 'http:'; readonly host: string; readonly hostname: string; readonly port: number } {
    return this;
  }
}

/**
 * The routes in use. A reload either swaps in a complete new map (`install`)
 * or applies a change set in one synchronous step (`apply`); no request runs
 * during either, so a request always sees one consistent map.
 */
export class RouteTable {
  private routes = new Map<string, Route>();
  /**
   * Told of each session key that leaves the table, for the browser pages'
   * "stopped" memory: at once by apply, in slices after a whole replacement
   * (see reportInSlices). Unset, an update costs nothing more.
   */
  onRemoved: ((sessionKey: string) => void) | undefined;

  /** The container for a session cookie value, or undefined. O(1). */
  lookup(sessionKey: string): Route | undefined {
    return this.routes.get(sessionKey);
  }

  /** Swaps in a complete new map. Route objects for unchanged targets are reused. */
  replace(targets: ReadonlyMap<string, Target>): void {
    const next = this.builder();
    for (const [key, target] of targets) next.set(key, target.host, target.port);
    this.install(next);
  }

  /** Starts a complete replacement, to be filled (possibly in slices) and then installed. */
  builder(): RouteMapBuilder {
    return new RouteMapBuilder(this.routes);
  }

  /** Swaps in the map a builder made. */
  install(builder: RouteMapBuilder): void {
    const onRemoved = this.onRemoved;
    const next = builder.routes;
    if (onRemoved !== undefined) reportInSlices(this.routes, (key) => !next.has(key), (key) => onRemoved(key));
    this.routes = next;
  }

  /**
   * Sets `upserts` and deletes `removals` in one synchronous step. Used for
   * the few sessions a Galaxy commit changes, so that a change to a map of
   * 100,000 sessions costs what it changes, not a copy of the whole map.
   */
  apply(upserts: ReadonlyMap<string, Target>, removals: Iterable<string>): void {
    for (const key of removals) if (this.routes.delete(key)) this.onRemoved?.(key);
    for (const [key, target] of upserts) this.routes.set(key, reuse(this.routes.get(key), target.host, target.port));
  }

  get size(): number {
    return this.routes.size;
  }

  /** Every session key with its route (for `/routes`). */
  entries(): IterableIterator<[string, Route]> {
    return this.routes.entries();
  }
}

/** A complete next map, filled entry by entry; reuses the Route objects of unchanged entries. */
class RouteMapBuilder {
  readonly routes = new Map<string, Route>();

  constructor(private readonly previous: ReadonlyMap<string, Route>) {}

  set(key: string, host: string, port: number): void {
    this.routes.set(key, reuse(this.previous.get(key), host, port));
  }
}

function reuse(old: Route | undefined, host: string, port: number): Route {
  return old !== undefined && old.host === host && old.port === port ? old : toRoute({ host, port });
}

/** Entries compared per turn of the event loop by reportInSlices. */
const REPORT_SLICE = 2048;

/**
 * Calls `report` for each entry of `before` (a table just replaced, never
 * changed again) that `gone` says left, a slice per turn of the event loop
 * after this one: a whole replacement stays one O(1) swap, and telling what
 * left (100,000 sessions: about 10 ms) never holds requests up.
 */
export function reportInSlices<K, V>(before: ReadonlyMap<K, V>, gone: (key: K, value: V) => boolean, report: (key: K, value: V) => void): void {
  const entries = before.entries();
  const slice = (): void => {
    for (let n = 0; n < REPORT_SLICE; n++) {
      const next = entries.next();
      if (next.done === true) return;
      const [key, value] = next.value;
      if (gone(key, value)) report(key, value);
    }
    setImmediate(slice);
  };
  setImmediate(slice);
}

/** The route for a container address (a name, an IPv4 or an IPv6 literal, bracketed or not). */
export function toRoute({ host, port }: Target): Route {
  // IPv6 literals need brackets in a Host-style label but not in hostname.
  return new Route(host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host, port);
}
