import type { IncomingHttpHeaders } from 'node:http';

// RFC 9110 §7.6.1: connection-specific fields that describe the client's
// connection to us, not ours to the container. Forwarding `Connection: close`
// would also defeat the keep-alive pool to the containers.
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'upgrade'];

// The same for a container's answer, plus its framing: Node re-frames the body
// for the client (chunked or Content-Length), so the container's
// Transfer-Encoding describes a connection the client never sees.
const HOP_BY_HOP_RESPONSE = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'trailer', 'transfer-encoding', 'upgrade'];

/** Deletes the fields a `Connection` header lists, except those named in `keep`. */
function stripListed(headers: Record<string, unknown>, keep: readonly string[]): void {
  const listed = headers.connection;
  if (typeof listed !== 'string' || listed.length === 0) return;
  for (const name of listed.split(',')) {
    const key = name.trim().toLowerCase();
    if (key.length > 0 && !keep.includes(key)) delete headers[key];
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
  stripListed(headers, KEEP_LISTED_REQUEST);
  for (const name of HOP_BY_HOP) {
    if (isUpgrade && (name === 'connection' || name === 'upgrade')) continue;
    delete headers[name];
  }
  delete headers.expect;
}

/**
 * Removes hop-by-hop fields from a container's response headers before they
 * are copied to the client. Node then writes its own `Connection` (and
 * framing) for the client's connection.
 */
export function stripHopByHopResponse(headers: IncomingHttpHeaders): void {
  stripListed(headers, KEEP_LISTED_RESPONSE);
  for (const name of HOP_BY_HOP_RESPONSE) delete headers[name];
}
