import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { isIPv6 } from 'node:net';
import { matchToken, type EntryPoint } from './entry-point-table.js';
import { toRoute, type Route } from './route-table.js';
import type { Forward, RouteResult, Router } from './router.js';
import { isUsableHost, type TargetAllowList } from './target-allow-list.js';
import { tcpPort } from '../tcp-port.js';

/**
 * Interactive Tools routing, as gx-it-proxy 0.2.3 routes (path first, then
 * host; key and token looked up in Galaxy's `gxitproxy` map; forward and
 * header modes) but without its faults: a request that cannot be routed gets
 * a refusal reason, never a connection to a default host.
 */

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
type EntryPointLookup = (key: string) => readonly EntryPoint[] | undefined;

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
  const n = tcpPort(port);
  if (!isUsableHost(host) || n === undefined) return 'bad-target-header';
  return { host, port: n };
}

/** Client-sent `x-interactive-tool-*` headers removed, nothing set: every routed request gets at least this. */
function stripTargetHeaders(headers: IncomingHttpHeaders): void {
  for (const name of Object.keys(headers)) {
    if (name.toLowerCase().startsWith(TARGET_HEADER_PREFIX)) delete headers[name];
  }
}

/**
 * Every client-sent `x-interactive-tool-*` header and every header in
 * `setHeaders` (whatever the case the client used) removed, then
 * `setHeaders` set, name as written.
 */
function replaceTargetHeaders(headers: IncomingHttpHeaders, setHeaders: readonly (readonly [string, string])[]): void {
  const all = headers as Record<string, unknown>;
  const replaced = setHeaders.map(([name]) => name.toLowerCase());
  for (const name of Object.keys(all)) {
    const lower = name.toLowerCase();
    if (lower.startsWith(TARGET_HEADER_PREFIX) || replaced.includes(lower)) delete all[name];
  }
  for (const [name, value] of setHeaders) all[name] = value;
}

/** Where a request goes before forward mode: a map entry, or header mode's named target. */
interface Destination {
  readonly host: string;
  readonly port: number;
  /** The destination as a route, when it is already made (a map entry's). */
  readonly target?: Route;
}

/**
 * Interactive Tools routing behind the router seam, as gx-it-proxy 0.2.3
 * routes (path first, then host; forward and header modes): entry points
 * from the `gxitproxy` map by path and by Host, or (header mode) the target
 * the Galaxy-side proxy named in `x-interactive-tool-host/-port`. The request
 * is not changed here; the Forward says what the server changes.
 */
export class EntryPointRouter implements Router {
  readonly description: string;
  private readonly pathPrefix: string | undefined;
  private readonly forwardIP: string | undefined;
  private readonly forwardPort: number | undefined;
  private readonly forward: boolean;
  /** Forward mode with both address parts given: one route for every request. */
  private readonly fixedForward: Route | undefined;
  private readonly headerMode: boolean;
  private readonly allow: TargetAllowList | undefined;
  private readonly logPaths: boolean;

  constructor(
    options: EntryPointRouterOptions,
    private readonly lookup: EntryPointLookup,
  ) {
    const { pathPrefix, forwardIP, forwardPort, headerMode, allow } = options;
    this.pathPrefix = pathPrefix;
    this.forwardIP = forwardIP;
    this.forwardPort = forwardPort;
    this.forward = forwardIP !== undefined || forwardPort !== undefined;
    this.fixedForward = forwardIP !== undefined && forwardPort !== undefined ? toRoute({ host: forwardIP, port: forwardPort }) : undefined;
    this.headerMode = headerMode;
    this.allow = allow;
    this.logPaths = options.logPaths !== false;
    const forward = this.forward ? ', forwarded' : '';
    this.description = headerMode
      ? `interactive tools: header mode${allow === undefined ? ' (open relay)' : ''}${forward}`
      : `interactive tools: ${pathPrefix === undefined ? '' : `path ${pathPrefix === '' ? '/' : pathPrefix}, then `}host${forward}`;
  }

  route(req: IncomingMessage): RouteResult {
    const url = req.url ?? '/';
    const logPath = this.logPaths ? redactEntryPointPath(url, this.pathPrefix) : undefined;
    // Header mode: the Galaxy-side proxy already applied the prefix rules.
    if (this.headerMode) return this.byHeaders(url, req.headers, logPath);
    const prefix = this.pathPrefix;
    if (prefix !== undefined && isUnderPrefix(url, prefix)) return this.byPath(url, prefix, logPath);
    return this.byHost(url, req.headers.host, logPath);
  }

  private byPath(url: string, prefix: string, logPath: string | undefined): RouteResult {
    const { key, token, rest } = splitEntryPointPath(url, prefix.length);
    const entries = this.lookup(key);
    const entry = matchToken(entries, token);
    if (entry === undefined) return { refusal: entries === undefined ? 'unknown-entry-point' : 'wrong-token', entryPoint: key, logPath };
    const setHeaders: [string, string][] = [];
    if (entry.requiresPathInHeaderNamed !== undefined) setHeaders.push([entry.requiresPathInHeaderNamed, `${prefix}/${key}/${token}`]);
    return this.forwardTo(entry, entry, entry.requiresPathInUrl ? url : rest, url, setHeaders, logPath);
  }

  private byHost(url: string, host: string | undefined, logPath: string | undefined): RouteResult {
    if (host === undefined || host === '') return { refusal: 'no-host', entryPoint: undefined, logPath };
    const { key, token } = splitEntryPointHost(host);
    const entries = this.lookup(key);
    const entry = matchToken(entries, token);
    if (entry === undefined) return { refusal: entries === undefined ? 'unknown-entry-point' : 'wrong-token', entryPoint: key, logPath };
    return this.forwardTo(entry, entry, url, url, [], logPath);
  }

  private byHeaders(url: string, headers: IncomingHttpHeaders, logPath: string | undefined): RouteResult {
    const parsed = targetFromHeaders(headers);
    if (typeof parsed === 'string') return { refusal: parsed, entryPoint: undefined, logPath };
    if (this.allow !== undefined && !this.allow.allows(parsed.host, parsed.port)) return { refusal: 'target-not-allowed', entryPoint: undefined, logPath };
    return this.forwardTo(parsed, undefined, url, url, [], logPath);
  }

  /**
   * The Forward to `to` (the container's request target; `url` the client's):
   * straight there, or in forward mode to the forward address with the
   * destination in `x-interactive-tool-host/-port`.
   */
  private forwardTo(dest: Destination, entry: EntryPoint | undefined, to: string, url: string, setHeaders: [string, string][], logPath: string | undefined): Forward {
    let route = dest.target;
    if (this.forward) {
      if (this.forwardIP !== undefined) setHeaders.push([TARGET_HOST, dest.host]);
      if (this.forwardPort !== undefined) setHeaders.push([TARGET_PORT, String(dest.port)]);
      route = this.fixedForward ?? toRoute({ host: this.forwardIP ?? dest.host, port: this.forwardPort ?? dest.port });
    }
    return {
      route: route ?? toRoute(dest),
      credential: entry?.token,
      entryPoint: entry?.key,
      logPath,
      url: to === url ? undefined : to,
      rewriteHeaders: setHeaders.length === 0 ? stripTargetHeaders : (headers) => replaceTargetHeaders(headers, setHeaders),
    };
  }
}
