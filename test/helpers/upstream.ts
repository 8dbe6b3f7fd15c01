import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { once } from 'node:events';
import { WebSocketServer } from 'ws';

/** What the echo upstream saw of one request. */
export interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  bodyBytes: number;
  /** Which TCP connection carried it (1-based, in accept order). */
  connection: number;
  /** Which upstream answered (its name). */
  upstream: string;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, connection: number) => boolean | void;

/**
 * A real container stand-in on 127.0.0.1:0: answers every request with a JSON
 * echo of what it received, unless `handler` takes the request (returns true);
 * WebSocket upgrades get an echo server. Tracks its TCP connections.
 */
export class Upstream {
  readonly server: http.Server;
  readonly wss: WebSocketServer;
  readonly sockets = new Set<Socket>();
  readonly seen: Seen[] = [];
  private connections = 0;
  port = 0;

  constructor(
    readonly name: string,
    private readonly handler?: Handler,
  ) {
    this.server = http.createServer((req, res) => this.onRequest(req, res));
    this.server.on('connection', (socket: Socket & { connId?: number }) => {
      socket.connId = ++this.connections;
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    this.wss = new WebSocketServer({ server: this.server });
    this.wss.on('connection', (ws, req) => {
      ws.send(JSON.stringify({ upstream: this.name, url: req.url }));
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
  }

  /** Total TCP connections accepted so far. */
  get connectionCount(): number {
    return this.connections;
  }

  async start(): Promise<this> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    this.wss.close();
    this.server.closeAllConnections();
    for (const s of this.sockets) s.destroy();
    if (this.server.listening) {
      this.server.close();
      await once(this.server, 'close');
    }
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const connection = (req.socket as Socket & { connId?: number }).connId ?? 0;
    if (this.handler?.(req, res, connection) === true) return;
    let bodyBytes = 0;
    req.on('data', (chunk: Buffer) => (bodyBytes += chunk.length));
    req.on('end', () => {
      const seen: Seen = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        bodyBytes,
        connection,
        upstream: this.name,
      };
      this.seen.push(seen);
      const body = JSON.stringify(seen);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  }
}

/** Starts an echo upstream; close it in t.after. */
export function startUpstream(name: string, handler?: Handler): Promise<Upstream> {
  return new Upstream(name, handler).start();
}

/** An echo upstream closed when the test ends. */
export async function upstreamFor(t: { after: (fn: () => unknown) => void }, name: string, handler?: Handler): Promise<Upstream> {
  const upstream = await startUpstream(name, handler);
  t.after(() => upstream.close());
  return upstream;
}
