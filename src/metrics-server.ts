import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HealthBody } from './health.js';
import { listenOn } from './listen.js';
import type { Logger } from './log.js';
import type { ProxyMetrics } from './metrics.js';

/** What the metrics listener serves. */
export interface MetricsServerDeps {
  readonly metrics: ProxyMetrics;
  /** Builds the health report at request time. */
  readonly health: () => { status: 200 | 503; body: HealthBody };
  readonly log: Logger;
}

/** The running `/health` and `/metrics` listener. */
export interface MetricsServer {
  readonly address: AddressInfo;
  close(): void;
}

/**
 * Starts the admin listener on its own address and port, apart from the
 * proxied traffic, so that no path a container owns is taken:
 * `GET /health` (JSON) and `GET /metrics` (Prometheus text); 404 for anything
 * else. Rejects with ListenError.
 */
export async function startMetricsServer(ip: string, port: number, deps: MetricsServerDeps): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    handle(req, res, deps).catch((err: unknown) => {
      deps.log.error({ err }, 'metrics request failed');
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  });
  const address = await listenOn(server, port, ip);
  server.on('error', (err) => deps.log.error({ err }, 'metrics server error'));
  deps.log.info({ address: address.address, port: address.port }, 'metrics listening');
  return {
    address,
    close: () => {
      server.close();
      server.closeAllConnections();
    },
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, { metrics, health }: MetricsServerDeps): Promise<void> {
  const path = (req.url ?? '/').split('?', 1)[0];
  if (path !== '/health' && path !== '/metrics') {
    send(res, 404, 'text/plain; charset=utf-8', 'Not found: this port serves /health and /metrics only.\n');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    send(res, 405, 'text/plain; charset=utf-8', 'Method not allowed.\n');
    return;
  }
  if (path === '/health') {
    const report = health();
    send(res, report.status, 'application/json; charset=utf-8', `${JSON.stringify(report.body)}\n`);
  } else {
    send(res, 200, metrics.contentType, await metrics.render());
  }
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
