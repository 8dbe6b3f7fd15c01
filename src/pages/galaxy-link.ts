import type { IncomingMessage } from 'node:http';

/**
 * Where a page's "back to Galaxy" link goes: `--galaxy-url` when given,
 * otherwise derived from the request, and no link (undefined) when it cannot
 * be derived safely. Nothing the client sent is used unless it passes a
 * strict pattern, and the link never holds the entry point's key or token.
 */
export interface GalaxyLinkOptions {
  /** `--galaxy-url`. */
  readonly galaxyUrl: string | undefined;
  /** `--proxyPathPrefix`, normalised; undefined: no path routing. */
  readonly pathPrefix: string | undefined;
}

/** A Host that names an Interactive Tools entry point: `<key>-<token>.ep.<IT prefix>.<Galaxy's host>[:port]`. */
const ENTRY_POINT_HOST = /^[^.]+-[^.]+\.ep\.[A-Za-z0-9-]+\.((?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]+(?::\d{1,5})?)$/;

/**
 * The link for `req` (whose target, as the client sent it, is `url`):
 * `--galaxy-url`; in cookie (GIE) mode `/`, where Galaxy serves the proxy
 * beside itself; for a path-routed request the same origin, at the path
 * before `<IT prefix>/ep` (Galaxy's own prefix, `/` usually); for a request
 * to a tool's own host that host with the `<key>-<token>.ep.` label and the
 * Interactive Tools prefix removed (the scheme from a valid
 * `X-Forwarded-Proto`, else scheme-relative). Undefined: no link.
 */
export function galaxyLinkFor(req: IncomingMessage, url: string, options: GalaxyLinkOptions, cookieMode: boolean): string | undefined {
  if (options.galaxyUrl !== undefined) return options.galaxyUrl;
  if (cookieMode) return '/';
  const prefix = options.pathPrefix;
  if (prefix !== undefined && url.startsWith(prefix)) return galaxyPathBefore(prefix);
  const host = req.headers.host;
  const match = host === undefined ? null : ENTRY_POINT_HOST.exec(host);
  if (match === null) return undefined;
  const proto = req.headers['x-forwarded-proto'];
  const scheme = proto === 'https' || proto === 'http' ? `${proto}:` : '';
  return `${scheme}//${match[1].toLowerCase()}/`;
}

/** `/galaxy/interactivetool/ep` → `/galaxy/`; `/interactivetool/ep` → `/`; a prefix not ending in `/<name>/ep`: undefined. */
export function galaxyPathBefore(prefix: string): string | undefined {
  const parts = prefix.split('/');
  if (parts.length < 3 || parts.at(-1) !== 'ep' || parts.at(-2) === '') return undefined;
  const before = parts.slice(0, -2).join('/');
  return /^[A-Za-z0-9\-._~/]*$/.test(before) ? `${before}/` : undefined;
}
