import type { IncomingHttpHeaders } from 'node:http';

/**
 * The legacy proxy's header tweaks that Galaxy's pages and RStudio rely on
 * (CONTRACT.md §3). Pure functions over header objects.
 */

/**
 * CORS echo: Galaxy's page (another port) polls the proxy with credentials
 * until the container answers, so every response echoes the caller's Origin.
 */
export function addCorsEcho(headers: Record<string, unknown>, origin: string | undefined): void {
  if (origin === undefined) return;
  headers['access-control-allow-origin'] = origin;
  headers['access-control-allow-credentials'] = 'true';
}

const LOCALHOST = 'http://localhost/';

/**
 * `--reverseProxy`: a container behind the proxy redirects to
 * `http://localhost/...`; put the proxy's own port into that URL.
 * Returns the rewritten value, or undefined when nothing changes.
 */
export function rewriteLocalhostRedirect(status: number | undefined, location: unknown, port: number): string | undefined {
  if (status !== 302 || typeof location !== 'string' || !location.startsWith(LOCALHOST)) return undefined;
  return `http://localhost:${port}/${location.slice(LOCALHOST.length)}`;
}

/** RStudio requests are recognised by their URL, as the legacy proxy did. */
export function isRStudioUrl(url: string): boolean {
  return url.includes('rstudio');
}

const FORM_WITH_CHARSET = 'application/x-www-form-urlencoded; charset=UTF-8';

/**
 * RStudio's server only understands `Content-Type`/`Content-Length` with that
 * capitalisation, and a form content type without a charset. Rewrites the
 * header object that will be sent to the container; Node sends a header
 * name with the case of the object key.
 */
export function applyRStudioHeaders(headers: IncomingHttpHeaders): void {
  const type = headers['content-type'];
  if (type !== undefined) {
    delete headers['content-type'];
    (headers as Record<string, unknown>)['Content-Type'] = type === FORM_WITH_CHARSET ? 'application/x-www-form-urlencoded' : type;
  }
  const length = headers['content-length'];
  if (length !== undefined) {
    delete headers['content-length'];
    (headers as Record<string, unknown>)['Content-Length'] = length;
  }
}
