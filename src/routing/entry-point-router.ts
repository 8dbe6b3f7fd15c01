import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { isIPv6 } from 'node:net';
import { matchToken, type EntryPoint } from './entry-point-table.js';
import { toRoute, type Route } from './route-table.js';
import type { RefusalReason, RouteResult, Router } from './router.js';
import { isUsableHost, type TargetAllowList } from './target-allow-list.js';

/**
 * Interactive Tools routing, as gx-it-proxy 0.2.3 routes (path first, then
 * host; key and token looked up in Galaxy's `gxitproxy` map; forward and
 * header modes) but without its faults: a request that cannot be routed gets
 * a refusal reason, never a connection to a default host.
 */

/** Why a request cannot be routed to an entry point (each has one answer in src/http/answers.ts). */
export type EntryPointRefusal = Extract<RefusalReason, 'no-host' | 'unknown-entry-point' | 'wrong-token' | 'no-target-header' | 'bad-target-header' | 'target-not-allowed'>;

/** How the request was routed (or would have been). */
export type EntryPointVia = 'path' | 'host' | 'header';

/** Where a routed request goes and how it is changed on the way. */
export interface EntryPointRoute {
  readonly kind: 'route';
  readonly via: EntryPointVia;
  /** Where the connection goes (the forward address in forward mode). */
  readonly target: Route;
  /** The request target the container gets (prefix stripped or kept). */
  readonly url: string;
  /**
   * Headers set on the request to the container, name as written. Any header
   * of the same name in any case, and every client-sent `x-interactive-tool-*`
   * header, is removed first (see applyEntryPointRoute).
   */
  readonly setHeaders: readonly (readonly [string, string])[];
  /** The entry point (map mode). */
  readonly entry: EntryPoint | undefined;
}

/** A request that cannot be routed. */
export interface EntryPointRefused {
  readonly kind: 'refuse';
  readonly via: EntryPointVia;
  readonly reason: EntryPointRefusal;
  /** The key the request named, for the debug log (never the token). */
  readonly key?: string;
}

export type EntryPointDecision = EntryPointRoute | EntryPointRefused;

/** What the router reads of a request. */
export interface EntryPointRequest {
  /** The request target in origin form (`/path?query`), as received. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

export interface EntryPointRouterOptions {
  /** `--proxyPathPrefix`, normalised by normalizePathPrefix; undefined: host routing only. */
  readonly pathPrefix: string | undefined;
  /** `--forwardIP`: send every request there, the row's host in `x-interactive-tool-host`. */
  readonly forwardIP: string | undefined;
  /** `--forwardPort`: send every request there, the row's port in `x-interactive-tool-port`. */
  readonly forwardPort: number | undefined;
  /**
   * Header mode (no `--sessions`): the target comes from the request's
   * `x-interactive-tool-host/-port`, the remote half of a double proxy.
   */
  readonly headerMode: boolean;
  /** Header mode: the targets it may connect to; undefined: any (an open relay). */
  readonly allow: TargetAllowList | undefined;
  /**
   * Work out the redacted path for log lines (only --verbose logs requests,
   * so without it the hot path skips the work). Default: true.
   */
  readonly logPaths?: boolean;
}

/** The entry points for a key (map mode). */
export type EntryPointLookup = (key: string) => readonly EntryPoint[] | undefined;

const TARGET_HOST = 'x-interactive-tool-host';
const TARGET_PORT = 'x-interactive-tool-port';
/** Client-sent headers with this prefix never reach a container. */
const TARGET_HEADER_PREFIX = 'x-interactive-tool-';

/**
 * `--proxyPathPrefix` as the router compares it: a leading `/`, no trailing
 * `/` (so `/interactivetool/ep/` and `/interactivetool/ep` are the same;
 * `/` routes every path). Undefined or empty: no path routing.
 */
export function normalizePathPrefix(prefix: string | undefined): string | undefined {
  if (prefix === undefined || prefix === '') return undefined;
  const trimmed = prefix.replace(/\/+$/, '');
  return trimmed.startsWith('/') || trimmed === '' ? trimmed : `/${trimmed}`;
}

/**
 * Builds the router: a pure function from a request to a decision. The
 * request is not changed; applyEntryPointRoute does that once it is routed.
 */
export function createEntryPointRouter(options: EntryPointRouterOptions, lookup: EntryPointLookup): (req: EntryPointRequest) => EntryPointDecision {
  const { pathPrefix, forwardIP, forwardPort, headerMode, allow } = options;
  const forward = forwardIP !== undefined || forwardPort !== undefined;
  const fixedForward = forwardIP !== undefined && forwardPort !== undefined ? toRoute({ host: forwardIP, port: forwardPort }) : undefined;

  function routed(via: EntryPointVia, host: string, port: number, target: Route | undefined, url: string, setHeaders: [string, string][], entry: EntryPoint | undefined): EntryPointRoute {
    if (!forward) return { kind: 'route', via, target: target ?? toRoute({ host, port }), url, setHeaders, entry };
    if (forwardIP !== undefined) setHeaders.push([TARGET_HOST, host]);
    if (forwardPort !== undefined) setHeaders.push([TARGET_PORT, String(port)]);
    const to = fixedForward ?? toRoute({ host: forwardIP ?? host, port: forwardPort ?? port });
    return { kind: 'route', via, target: to, url, setHeaders, entry };
  }

  function fromHeaders(req: EntryPointRequest): EntryPointDecision {
    const parsed = targetFromHeaders(req.headers);
    if (typeof parsed === 'string') return { kind: 'refuse', via: 'header', reason: parsed };
    if (allow !== undefined && !allow.allows(parsed.host, parsed.port)) return { kind: 'refuse', via: 'header', reason: 'target-not-allowed' };
    return routed('header', parsed.host, parsed.port, undefined, req.url, [], undefined);
  }

  return (req) => {
    // Header mode: the Galaxy-side proxy already applied the prefix rules.
    if (headerMode) return fromHeaders(req);
    const url = req.url;
    if (pathPrefix !== undefined && isUnderPrefix(url, pathPrefix)) {
      const { key, token, rest } = splitEntryPointPath(url, pathPrefix.length);
      const entries = lookup(key);
      const entry = matchToken(entries, token);
      if (entry === undefined) return { kind: 'refuse', via: 'path', reason: entries === undefined ? 'unknown-entry-point' : 'wrong-token', key };
      const setHeaders: [string, string][] = [];
      if (entry.requiresPathInHeaderNamed !== undefined) setHeaders.push([entry.requiresPathInHeaderNamed, `${pathPrefix}/${key}/${token}`]);
      return routed('path', entry.host, entry.port, entry.target, entry.requiresPathInUrl ? url : rest, setHeaders, entry);
    }
    const host = req.headers.host;
    if (host === undefined || host === '') return { kind: 'refuse', via: 'host', reason: 'no-host' };
    const { key, token } = splitEntryPointHost(host);
    const entries = lookup(key);
    const entry = matchToken(entries, token);
    if (entry === undefined) return { kind: 'refuse', via: 'host', reason: entries === undefined ? 'unknown-entry-point' : 'wrong-token', key };
    return routed('host', entry.host, entry.port, entry.target, url, [], entry);
  };
}

/**
 * Makes the request what the container gets: the new request target, every
 * client-sent `x-interactive-tool-*` header and every header the route sets
 * (whatever the case the client used) removed, then the route's headers set.
 */
export function applyEntryPointRoute(req: { url?: string; headers: IncomingHttpHeaders }, route: EntryPointRoute): void {
  if (req.url !== undefined) req.url = route.url;
  const headers = req.headers as Record<string, unknown>;
  const replaced = route.setHeaders.map(([name]) => name.toLowerCase());
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase();
    if (lower.startsWith(TARGET_HEADER_PREFIX) || replaced.includes(lower)) delete headers[name];
  }
  for (const [name, value] of route.setHeaders) headers[name] = value;
}

/** True when `url` is `prefix` or lies under it: `/interactivetool/epX/…` is not under `/interactivetool/ep`. */
export function isUnderPrefix(url: string, prefix: string): boolean {
  if (!url.startsWith(prefix)) return false;
  const next = url.charCodeAt(prefix.length);
  return Number.isNaN(next) || next === 47 /* / */ || next === 63 /* ? */;
}

/**
 * The request target as a log line may show it: under the prefix, the token
 * segment (a credential) is replaced by `*`; anything else is unchanged (a
 * Host-routed request carries its token in the Host header, never logged).
 */
export function redactEntryPointPath(url: string, pathPrefix: string | undefined): string {
  if (pathPrefix === undefined || !isUnderPrefix(url, pathPrefix)) return url;
  const from = pathPrefix.length;
  const q = url.indexOf('?', from);
  const pathEnd = q < 0 ? url.length : q;
  if (url.charCodeAt(from) !== 47 /* / */) return url;
  const keyEnd = segmentEnd(url, from + 1, pathEnd);
  if (keyEnd === pathEnd) return url;
  const tokenEnd = segmentEnd(url, keyEnd + 1, pathEnd);
  if (tokenEnd === keyEnd + 1) return url;
  return `${url.slice(0, keyEnd + 1)}*${url.slice(tokenEnd)}`;
}

/**
 * Reads `/<key>/<token>/<rest>?<query>` after the prefix (which ends at
 * `from`). The query is split off first, so `…/<token>?x=1` has the token
 * `<token>`. `rest` is what the container gets when the prefix is stripped:
 * the path after the token byte for byte (`//` kept), `/` when there is none,
 * then the query.
 */
export function splitEntryPointPath(url: string, from: number): { key: string; token: string; rest: string } {
  const q = url.indexOf('?', from);
  const pathEnd = q < 0 ? url.length : q;
  const query = url.slice(pathEnd);
  if (url.charCodeAt(from) !== 47 /* / */) return { key: '', token: '', rest: `/${query}` };
  const keyEnd = segmentEnd(url, from + 1, pathEnd);
  const key = url.slice(from + 1, keyEnd);
  if (keyEnd === pathEnd) return { key, token: '', rest: `/${query}` };
  const tokenEnd = segmentEnd(url, keyEnd + 1, pathEnd);
  const token = url.slice(keyEnd + 1, tokenEnd);
  const path = url.slice(tokenEnd, pathEnd);
  return { key, token, rest: `${path === '' ? '/' : path}${query}` };
}

function segmentEnd(url: string, from: number, pathEnd: number): number {
  const slash = url.indexOf('/', from);
  return slash < 0 || slash > pathEnd ? pathEnd : slash;
}

/**
 * Reads `<key>-<token>.<anything>` from a Host header as gx-it-proxy does:
 * the key up to the first `-`, the token from there up to the first `.`;
 * what follows (domain, `:port`) is not looked at. No `-`, or no `.` after
 * it, gives an empty key, which no entry point has.
 */
export function splitEntryPointHost(host: string): { key: string; token: string } {
  const dash = host.indexOf('-');
  const dot = host.indexOf('.');
  if (dash <= 0 || dot < dash) return { key: '', token: '' };
  return { key: host.slice(0, dash), token: host.slice(dash + 1, dot) };
}

const DIGITS = /^\d{1,5}$/;

/**
 * Header mode's target: `x-interactive-tool-host` with `x-interactive-tool-port`,
 * or `x-interactive-tool-host: host:port` (`[v6]:port`) when the port header
 * is absent or empty. Returns the refusal when they do not name one host and port.
 */
export function targetFromHeaders(headers: IncomingHttpHeaders): { host: string; port: number } | 'no-target-header' | 'bad-target-header' {
  const hostHeader = headers[TARGET_HOST];
  if (hostHeader === undefined || hostHeader === '') return 'no-target-header';
  if (typeof hostHeader !== 'string') return 'bad-target-header';
  const portHeader = headers[TARGET_PORT];
  let host: string;
  let port: string;
  if (typeof portHeader === 'string' && portHeader !== '') {
    host = hostHeader;
    port = portHeader;
  } else if (portHeader !== undefined && typeof portHeader !== 'string') {
    return 'bad-target-header';
  } else if (isIPv6(hostHeader)) {
    return 'bad-target-header'; // an IPv6 address without a port
  } else {
    const colon = hostHeader.lastIndexOf(':');
    if (colon < 0) return 'bad-target-header';
    host = hostHeader.slice(0, colon);
    port = hostHeader.slice(colon + 1);
  }
  if (host.startsWith('[') && host.endsWith(']')) {
    host = host.slice(1, -1);
    if (!isIPv6(host)) return 'bad-target-header';
  }
  if (!isUsableHost(host) || !DIGITS.test(port)) return 'bad-target-header';
  const n = Number(port);
  if (n < 1 || n > 65535) return 'bad-target-header';
  return { host, port: n };
}

/** Client-sent `x-interactive-tool-*` headers removed, nothing set: every routed request gets at least this. */
function stripTargetHeaders(headers: IncomingHttpHeaders): void {
  for (const name of Object.keys(headers)) {
    if (name.toLowerCase().startsWith(TARGET_HEADER_PREFIX)) delete headers[name];
  }
}

/**
 * Interactive Tools routing behind the router seam: entry points from the
 * `gxitproxy` map by path and by Host, or (header mode) the target the
 * Galaxy-side proxy named in `x-interactive-tool-host/-port`.
 */
export class EntryPointRouter implements Router {
  readonly description: string;
  private readonly decide: (req: EntryPointRequest) => EntryPointDecision;

  constructor(
    private readonly options: EntryPointRouterOptions,
    lookup: EntryPointLookup,
  ) {
    this.decide = createEntryPointRouter(options, lookup);
    const forward = options.forwardIP !== undefined || options.forwardPort !== undefined ? ', forwarded' : '';
    this.description = options.headerMode
      ? `interactive tools: header mode${options.allow === undefined ? ' (open relay)' : ''}${forward}`
      : `interactive tools: ${options.pathPrefix === undefined ? '' : `path ${options.pathPrefix === '' ? '/' : options.pathPrefix}, then `}host${forward}`;
  }

  route(req: IncomingMessage): RouteResult {
    const url = req.url ?? '/';
    const decision = this.decide({ url, headers: req.headers });
    const logPath = this.options.logPaths === false ? undefined : redactEntryPointPath(url, this.options.pathPrefix);
    if (decision.kind === 'refuse') return { refusal: decision.reason, entryPoint: decision.key, logPath };
    const { setHeaders, entry } = decision;
    return {
      route: decision.target,
      credential: entry?.token,
      entryPoint: entry?.key,
      logPath,
      url: decision.url === url ? undefined : decision.url,
      rewriteHeaders: setHeaders.length === 0 ? stripTargetHeaders : (headers) => applyEntryPointRoute({ headers }, decision),
    };
  }
}
