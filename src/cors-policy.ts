import { addCorsEcho } from './legacy-behaviours.js';

/** Sets (or withholds) the CORS headers of one response, given the request's Origin. */
export type CorsPolicy = (headers: Record<string, unknown>, origin: string | undefined) => void;

/**
 * The CORS answer for `--cors-origin`. Without a list (null) it is the legacy
 * echo: any Origin is granted, with credentials. With a list only those
 * origins are granted; for any other Origin the response carries no
 * `Access-Control-Allow-*` header, not even one the container set, so the
 * browser refuses to hand the response to that page.
 */
export function corsPolicy(allowed: readonly string[] | null): CorsPolicy {
  if (allowed === null) return addCorsEcho;
  const origins = new Set(allowed);
  return (headers, origin) => {
    if (origin === undefined) return;
    appendVaryOrigin(headers);
    if (origins.has(origin)) {
      addCorsEcho(headers, origin);
      return;
    }
    for (const name of Object.keys(headers)) {
      if (name.toLowerCase().startsWith('access-control-allow-')) delete headers[name];
    }
  };
}

/** The answer depends on Origin: tell caches so (`Vary: Origin`, merged with the container's). */
function appendVaryOrigin(headers: Record<string, unknown>): void {
  const vary = headers.vary;
  if (vary === undefined || vary === '') {
    headers.vary = 'Origin';
  } else if (typeof vary === 'string' && !/(^|,)\s*(origin|\*)\s*(,|$)/i.test(vary)) {
    headers.vary = `${vary}, Origin`;
  }
}
