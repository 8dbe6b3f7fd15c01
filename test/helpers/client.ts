import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

/** One HTTP request to the proxy, bounded by a timeout. */
export function request(
  port: number,
  options: {
    path?: string;
    method?: string;
    headers?: http.OutgoingHttpHeaders;
    body?: string | Buffer;
    agent?: http.Agent | false;
    timeoutMs?: number;
    /** Address to connect to (default 127.0.0.1). */
    host?: string;
    /** A unix socket to connect to instead of host and port. */
    socketPath?: string;
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        ...(options.socketPath === undefined ? { host: options.host ?? '127.0.0.1', port } : { socketPath: options.socketPath }),
        path: options.path ?? '/',
        method: options.method ?? 'GET',
        headers: options.headers,
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(options.timeoutMs ?? 5000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Cookie header for a session key. */
export function cookie(key: string, name = 'galaxysession'): { cookie: string } {
  return { cookie: `${name}=${key}` };
}

/**
 * Writes raw bytes on a fresh TCP connection and collects what comes back
 * until the server closes it (or the timeout passes).
 */
export async function rawExchange(port: number, data: string | Buffer, timeoutMs = 3000): Promise<{ text: string; closedByServer: boolean }> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {});
  socket.write(data);
  const closedByServer = await Promise.race([
    once(socket, 'close').then(() => true),
    new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs)),
  ]);
  socket.destroy();
  return { text: Buffer.concat(chunks).toString('latin1'), closedByServer };
}
