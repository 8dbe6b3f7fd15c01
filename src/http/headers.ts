import type { IncomingHttpHeaders } from 'node:http';

// RFC 9110 §7.6.1: connection-specific fields that describe the client's
// connection to us, not ours to the container. Forwarding `Connection: close`
// would also defeat the keep-alive pool to the containers.
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'upgrade'];

// The same for a container's answer, plus its framing: Node re-frames the body
// for the client (chunked or Content-Length), so the container's
// Transfer-Encoding describes a connection the client never sees.
const HOP_BY_HOP_RESPONSE = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'trailer', 'transfer-encoding', 'upgrade'];

/** How a field leaves a header object (see stripHopByHopResponse). */
type Drop = (headers: Record<string, unknown>, name: string) => void;

const deleteField: Drop = (headers, name) => {
  // Deleting a field the object does not have is not free either: look first.
  if (headers[name] !== undefined) delete headers[name];
};

const emptyField: Drop = (headers, name) => {
  if (headers[name] !== undefined) headers[name] = undefined;
};

/** Drops the fields a `Connection` header lists, except those named in `keep`. */
function stripListed(headers: Record<string, unknown>, keep: readonly string[], drop: Drop): void {
  const listed = headers.connection;
  if (typeof listed !== 'string' || listed.length === 0) return;
  // What nearly every client and container sends lists no other field.
  if (listed === 'keep-alive' || listed === 'close' || listed === 'Keep-Alive' || listed === 'Upgrade' || listed === 'upgrade') return;
  for (const name of listed.split(',')) {
    const key = name.trim().toLowerCase();
    if (key.length > 0 && !keep.includes(key)) drop(headers, key);
  }
}

const KEEP_LISTED_REQUEST = ['upgrade', 'host', 'cookie'];
const KEEP_LISTED_RESPONSE = ['content-length', 'content-type'];

/**
 * Removes hop-by-hop request headers, including any the client listed in
 * `Connection`. For a WebSocket upgrade `Connection: upgrade` and `Upgrade`
 * are the point of the request and are kept. `Expect` goes too: Node has
 * already answered `100 Continue` to the client, and http-proxy skips its
 * request hooks for a request that still carries it.
 */
export function stripHopByHop(headers: IncomingHttpHeaders, isUpgrade: boolean): void {
  stripListed(headers, KEEP_LISTED_REQUEST, deleteField);
  for (const name of HOP_BY_HOP) {
    if (isUpgrade && (name === 'connection' || name === 'upgrade')) continue;
    deleteField(headers, name);
  }
  deleteField(headers, 'expect');
}

/**
 * Removes hop-by-hop fields from a container's response headers before they
 * are copied to the client. Node then writes its own `Connection` (and
 * framing) for the client's connection.
 *
 * `copied`: how the headers reach the client. For an HTTP response
 * ('skipping-undefined') http-proxy copies them with `setHeader`, skipping
 * fields whose value is undefined, so a field is emptied, not deleted:
 * deleting a field the container sent (it nearly always sends `Connection`
 * and `Keep-Alive`) turns the object into a slow dictionary, for every read
 * and for the copy that follows too (measured: ~3 µs a response, more than
 * the rest of this module's per-request work). A refused upgrade's answer is
 * written to the raw socket with every key ('every-key'): there they are
 * deleted.
 */
export function stripHopByHopResponse(headers: IncomingHttpHeaders, copied: 'skipping-undefined' | 'every-key'): void {
  const drop = copied === 'skipping-undefined' ? emptyField : deleteField;
  stripListed(headers, KEEP_LISTED_RESPONSE, drop);
  for (const name of HOP_BY_HOP_RESPONSE) drop(headers, name);
}

/**
 * `--xfwd` for a client on the unix socket, where http-proxy's own pass
 * would append `undefined` to X-Forwarded-For (a socket peer has no
 * address): X-Forwarded-For goes on as it arrived (nginx or Apache in front
 * put the browser's address there); -Port, -Proto and (plain HTTP) -Host are
 * added as http-proxy adds them for a TCP client.
 */
export function addForwardedForSocketPeer(headers: IncomingHttpHeaders, webSocket: boolean): void {
  const port = /:(\d+)/.exec(headers.host ?? '')?.[1] ?? '80';
  appendForwarded(headers, 'x-forwarded-port', port);
  appendForwarded(headers, 'x-forwarded-proto', webSocket ? 'ws' : 'http');
  if (!webSocket) headers['x-forwarded-host'] = headers['x-forwarded-host'] || headers.host || '';
}

function appendForwarded(headers: IncomingHttpHeaders, name: string, value: string): void {
  const arrived = headers[name];
  headers[name] = arrived ? `${String(arrived)},${value}` : value;
}

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
