import type { IncomingHttpHeaders } from 'node:http';

// RFC 9110 §7.6.1: connection-specific fields that describe the client's
// connection to us, not ours to the container. Forwarding `Connection: close`
// would also defeat the keep-alive pool to the containers.
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'upgrade'];

/**
 * Removes hop-by-hop request headers, including any the client listed in
 * `Connection`. For a WebSocket upgrade `Connection: upgrade` and `Upgrade`
 * are the point of the request and are kept.
 */
export function stripHopByHop(headers: IncomingHttpHeaders, isUpgrade: boolean): void {
  const listed = headers.connection;
  if (typeof listed === 'string' && listed.length > 0) {
    for (const name of listed.split(',')) {
      const key = name.trim().toLowerCase();
      if (key.length > 0 && key !== 'upgrade' && key !== 'host' && key !== 'cookie') delete headers[key];
    }
  }
  for (const name of HOP_BY_HOP) {
    if (isUpgrade && (name === 'connection' || name === 'upgrade')) continue;
    delete headers[name];
  }
}
