import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ProxyObserver } from '../observer.js';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HealthBody } from './health.js';
import { idleRouteCount, parseInactiveSince, routesReport, type RouteSources } from './routes.js';
import { listenOn } from '../http/server.js';
import { ANSWERS, sendAnswer } from '../http/answers.js';
import type { Logger } from '../log.js';

/** Log messages of the metrics listener that admins (and tests) match on. */
export const METRICS_LOG = Object.freeze({
  listening: 'metrics listening',
  serverError: 'metrics server error',
});

/** Latency buckets (seconds) for proxied requests: a cached notebook asset to a long kernel call. */
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Reload buckets (seconds): a handful of rows to a six-figure map. */
const RELOAD_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** `status_class` values, indexed by the first digit of the status; 0 is "no response was started". */
const STATUS_CLASSES = ['none', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/**
 * The proxy's Prometheus metrics, in a registry of their own (not prom-client's
 * global one), so that several proxies can live in one process (tests) and
 * nothing else registered in the process leaks into `/metrics`.
 */
export class ProxyMetrics {
  readonly registry = new Registry();
  /** Feeds the metrics; pass it to the proxy and the map reloader. */
  readonly observer: Required<ProxyObserver>;

  constructor() {
    const registers = [this.registry];
    this.observer = { ...requestMetrics(registers), ...mapMetrics(registers) };
    collectDefaultMetrics({ register: this.registry });
  }

  /** Adds the gauge of routes idle longer than `idleMs` (`--idle-report-after`), counted at scrape time. */
  watchRoutes(sources: Pick<RouteSources, 'sessions' | 'entryPoints'>, idleMs: number): void {
    new Gauge({
      name: 'gie_proxy_routes_idle',
      help: 'Sessions and entry points with no traffic either way for longer than --idle-report-after (never used: since they appeared).',
      registers: [this.registry],
      collect() {
        this.set(idleRouteCount(sources, idleMs));
      },
    });
  }

  /**
   * Adds the gauges of a store with a connection of its own (PostgreSQL),
   * read from `status` at scrape time: connected, notifications, reconnects.
   * A store without such a state (a file) adds nothing.
   */
  watchStore(status: () => object | undefined): void {
    const registers = [this.registry];
    const field = (name: string): number | undefined => {
      const value = (status() as Record<string, unknown> | undefined)?.[name];
      return typeof value === 'number' ? value : typeof value === 'boolean' ? Number(value) : undefined;
    };
    if (field('connected') === undefined) return;
    new Gauge({
      name: 'gie_proxy_session_map_store_connected',
      help: 'Whether the connection to the session map database is up (1) or not (0).',
      registers,
      collect() {
        this.set(field('connected') ?? 0);
      },
    });
    new Gauge({
      name: 'gie_proxy_session_map_store_last_sync_timestamp_seconds',
      help: 'When the session map database last answered a change check or a read (Unix time); 0 until then.',
      registers,
      collect() {
        this.set((field('lastSyncAtMs') ?? 0) / 1000);
      },
    });
    const counter = (name: string, help: string, key: string): void => {
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(field(key) ?? 0);
        },
      });
    };
    counter('gie_proxy_session_map_store_notifications_total', 'Change notifications received from the session map database.', 'notifications');
    counter('gie_proxy_session_map_store_reconnects_total', 'Connections to the session map database made again after one was lost.', 'reconnects');
  }

  /** The Prometheus text exposition of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** What the metrics listener serves. */
interface MetricsServerDeps {
  readonly metrics: ProxyMetrics;
  /** Builds the health report at request time. */
  readonly health: () => { status: 200 | 503; body: HealthBody };
  /** What `/routes` reports. */
  readonly routes: RouteSources;
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
      deps.log.error({ err }, ANSWERS['admin-failed'].message);
      sendAnswer(res, 'admin-failed', undefined);
    });
  });
  const address = await listenOn(server, port, ip);
  server.on('error', (err) => deps.log.error({ err }, METRICS_LOG.serverError));
  deps.log.info({ address: address.address, port: address.port }, METRICS_LOG.listening);
  return {
    address,
    close: () => {
      server.close();
      server.closeAllConnections();
    },
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, { metrics, health, routes }: MetricsServerDeps): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://admin');
  const path = url.pathname;
  if (path !== '/health' && path !== '/metrics' && path !== '/routes') {
    sendAnswer(res, 'admin-not-found', undefined);
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    sendAnswer(res, 'admin-method', undefined);
    return;
  }
  if (path === '/health') {
    const report = health();
    send(res, report.status, 'application/json; charset=utf-8', `${JSON.stringify(report.body)}\n`);
  } else if (path === '/routes') {
    const filter = url.searchParams.get('inactive_since');
    const since = filter === null ? undefined : parseInactiveSince(filter, Date.now());
    if (filter !== null && since === undefined) {
      sendAnswer(res, 'admin-bad-query', undefined);
      return;
    }
    send(res, 200, 'application/json; charset=utf-8', `${JSON.stringify(routesReport(routes, since))}\n`);
  } else {
    send(res, 200, metrics.contentType, await metrics.render());
  }
}

/** A successful admin answer (refusals go through the answers table). */
function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** The metrics of proxied requests and WebSockets; the returned hooks feed them. */
function requestMetrics(registers: Registry[]): Pick<Required<ProxyObserver>, 'requestDone' | 'proxyError' | 'webSocket'> {
  // The request path only bumps an array slot; the counter reads it at scrape time.
  const requestsByClass = STATUS_CLASSES.map(() => 0);
  new Counter({
    name: 'gie_proxy_http_requests_total',
    help: 'HTTP requests answered, by status class (none: the client left before any response).',
    labelNames: ['status_class'],
    registers,
    collect() {
      this.reset();
      STATUS_CLASSES.forEach((statusClass, i) => this.inc({ status_class: statusClass }, requestsByClass[i]));
    },
  });
  const duration = new Histogram({
    name: 'gie_proxy_http_request_duration_seconds',
    help: 'Time from request to the end of the response, for every HTTP request.',
    buckets: REQUEST_BUCKETS,
    registers,
  });
  const webSockets = new Gauge({ name: 'gie_proxy_websockets_open', help: 'Client WebSockets currently proxied to containers.', registers });
  webSockets.set(0);
  const errors = new Counter({
    name: 'gie_proxy_errors_total',
    help: 'Failures talking to containers, by kind (an error code such as ECONNREFUSED).',
    labelNames: ['kind'],
    registers,
  });
  return {
    requestDone(status, seconds) {
      requestsByClass[status >= 100 && status < 600 ? Math.floor(status / 100) : 0]++;
      duration.observe(seconds);
    },
    proxyError(kind) {
      errors.inc({ kind });
    },
    webSocket(delta) {
      webSockets.inc(delta);
    },
  };
}

/** The metrics of the session map's reads; the returned hooks feed them. */
function mapMetrics(registers: Registry[]): Pick<Required<ProxyObserver>, 'reloaded' | 'reloadFailed'> {
  const reloads = new Counter({ name: 'gie_proxy_session_map_reloads_total', help: 'Successful reads of the session map.', registers });
  const reloadFailures = new Counter({
    name: 'gie_proxy_session_map_reload_failures_total',
    help: 'Failed reads of the session map (the last good map stayed in use), by reason.',
    labelNames: ['reason'],
    registers,
  });
  const reloadDuration = new Histogram({
    name: 'gie_proxy_session_map_reload_duration_seconds',
    help: 'Time to read the session map and swap in the new routes.',
    buckets: RELOAD_BUCKETS,
    registers,
  });
  const lastReload = new Gauge({
    name: 'gie_proxy_session_map_last_reload_timestamp_seconds',
    help: 'When the session map was last read successfully (Unix time); 0 until the first read.',
    registers,
  });
  const sessions = new Gauge({ name: 'gie_proxy_sessions', help: 'Sessions in the route table in use.', registers });
  sessions.set(0);
  return {
    reloaded(count, seconds) {
      reloads.inc();
      reloadDuration.observe(seconds);
      sessions.set(count);
      lastReload.set(Date.now() / 1000);
    },
    reloadFailed(reason) {
      reloadFailures.inc({ reason });
    },
  };
}
