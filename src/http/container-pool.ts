import http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ClientRequest } from 'node:http';
import { ProxyTimeoutError } from './answers.js';

/** How long an idle pooled connection to a container is kept, unless it announces less. */
const POOLED_SOCKET_IDLE_MS = 15_000;

/** TCP keep-alive probes on a pooled connection start after this much silence (Node's default). */
const TCP_KEEPALIVE_DELAY_MS = 1000;

/** How often the pool looks for connections idle too long: one is dropped at most this much after its time. */
const IDLE_SWEEP_MS = 250;

const kIdleHint = Symbol('gie.idleHint');
const kIdleSweeps = Symbol('gie.idleSweeps');
/**
 * The pool's two slots on a connection, both made when the connection is
 * (ContainerAgent.createConnection), so that every connection keeps one shape
 * for its life: a slot added later, after Node's code has seen the
 * connection, gives each of Node's socket functions one more shape to handle.
 */
type HintedSocket = Socket & { [kIdleHint]: number | undefined; [kIdleSweeps]: number };

/**
 * Notes a container's `Keep-Alive: timeout=N` on its connection. The proxy
 * strips that header (it describes the container's connection, not the
 * client's) before the pool would read it, so it is kept here instead.
 */
export function noteKeepAliveHint(socket: Socket | null, header: string | string[] | undefined): void {
  if (socket === null || typeof header !== 'string') return;
  const idleMs = idleHintOf(header);
  if (idleMs !== undefined) (socket as HintedSocket)[kIdleHint] = idleMs;
}

// A container sends the same hint on every answer: the last one read, and what it meant.
let lastHint = '';
let lastIdleMs: number | undefined;

/** How long a connection may idle in the pool by a `Keep-Alive` header; undefined: it names no time-out. */
function idleHintOf(header: string): number | undefined {
  if (header === lastHint) return lastIdleMs;
  const seconds = /^\s*timeout=(\d+)/i.exec(header)?.[1];
  // Like Node's agent: let the pool drop the connection a second before the
  // container would, so that a request never goes out on a closing one.
  lastIdleMs = seconds === undefined ? undefined : Number(seconds) * 1000 - 1000;
  lastHint = header;
  return lastIdleMs;
}

/**
 * The keep-alive pool to the containers (the legacy proxy opened a connection
 * per request). LIFO reuses the warmest connection and lets the rest expire;
 * an idle connection is dropped before the container's announced time-out.
 *
 * Idle connections are dropped by one coarse sweep of the pool, not by a
 * timer on each connection (the Agent's `timeout` option): with that option
 * Node hangs a `timeout` listener on the connection for every request, takes
 * it off again, and clears and re-arms the connection's timer when the
 * answer ends; and an armed timer is refreshed on every read and write
 * while the connection carries a request. Measured, that was more listener
 * and timer work per request than the whole bare reference proxy spends on
 * its pool. A connection counts the sweeps that found it idle; going back to
 * the pool sets the count to 0, with no clock read.
 */
export class ContainerAgent extends http.Agent {
  private sweep: NodeJS.Timeout | undefined;

  constructor() {
    // Node's defaults otherwise: no limit on connections, 256 kept idle per
    // container, the warmest reused first (lifo), TCP keep-alive probes after
    // TCP_KEEPALIVE_DELAY_MS. Only what differs is passed: Node copies these
    // options into every request's connection options.
    super({ keepAlive: true });
  }

  /** Node's connection, with the pool's slots made at once (see HintedSocket). */
  override createConnection(...args: Parameters<http.Agent['createConnection']>): ReturnType<http.Agent['createConnection']> {
    const socket = super.createConnection(...args) as HintedSocket | null | undefined;
    if (socket != null) {
      socket[kIdleHint] = undefined;
      socket[kIdleSweeps] = 0;
    }
    return socket;
  }

  /** What Node's Agent does when a connection goes back to the pool, and the start of its idle count. */
  override keepSocketAlive(duplex: Duplex): boolean {
    const socket = duplex as HintedSocket;
    // A container that announces a second or less: never reuse its connections.
    if (idleLimitMs(socket) <= 0) return false;
    socket.setKeepAlive(true, TCP_KEEPALIVE_DELAY_MS);
    socket.unref();
    socket[kIdleSweeps] = 0;
    if (this.sweep === undefined) {
      this.sweep = setInterval(() => this.dropIdle(), IDLE_SWEEP_MS);
      this.sweep.unref();
    }
    return true;
  }

  /**
   * Closes the pooled connections idle for longer than their limit; the sweep
   * stops with the pool empty. A connection found idle by n sweeps has been
   * idle for more than (n − 1) sweep intervals (an interval never fires
   * early), so one is closed between its limit and a sweep later, never before.
   */
  private dropIdle(): void {
    let pooled = 0;
    for (const sockets of Object.values(this.freeSockets)) {
      // A destroyed connection leaves the list when it has closed: go over a copy.
      for (const socket of [...(sockets ?? [])] as HintedSocket[]) {
        const sweeps = (socket[kIdleSweeps] ?? 0) + 1;
        socket[kIdleSweeps] = sweeps;
        if ((sweeps - 1) * IDLE_SWEEP_MS >= idleLimitMs(socket)) socket.destroy();
        else pooled++;
      }
    }
    if (pooled === 0) this.stopSweep();
  }

  private stopSweep(): void {
    clearInterval(this.sweep);
    this.sweep = undefined;
  }

  override destroy(): void {
    this.stopSweep();
    super.destroy();
  }
}

/** How long `socket` may idle in the pool: 15 s, or less if its container announced less. */
function idleLimitMs(socket: HintedSocket): number {
  return Math.min(POOLED_SOCKET_IDLE_MS, socket[kIdleHint] ?? POOLED_SOCKET_IDLE_MS);
}

/**
 * `--proxy-timeout` for the requests to containers: a request is destroyed
 * with ProxyTimeoutError (→ 504) when the container takes longer than `ms`
 * to accept the connection, or to start its answer once the whole request
 * has been sent. The time spent streaming a client's upload does not count
 * (a 1 GB upload may take an hour), and once the answer has started nothing
 * is timed: a download or a WebSocket may last as long as it flows.
 *
 * One coarse timer checks every request in flight (every tenth of `ms`, at
 * most every second), instead of a timer and five listeners per request: a
 * request is cut between `ms` and `ms` plus two checks after its clock
 * started. The clock starts at the first check that finds the request
 * waiting (connecting, or sent in full and unanswered).
 *
 * A request is let go as soon as its answer starts (`done`), not at the next
 * check: at thousands of requests a second, a second's worth of finished
 * requests (each with its response, headers and buffers) kept alive made
 * every young-generation collection copy them, and costs more than the
 * check itself. A request that ends without an answer (it failed, or its
 * client left) is destroyed, and the next check drops it: that is rare.
 */
export class ProxyDeadlines {
  /** Requests in flight, and when each one's wait ends (performance.now(); 0: not waiting). */
  private readonly due = new Map<ClientRequest, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly everyMs: number;

  constructor(private readonly ms: number) {
    this.everyMs = Math.min(1000, Math.max(10, Math.floor(ms / 10)));
  }

  /** Times `proxyReq` from now on, until it is answered or gone. */
  watch(proxyReq: ClientRequest): void {
    this.due.set(proxyReq, 0);
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.check(), this.everyMs);
      this.timer.unref();
    }
  }

  /** The container's answer to `proxyReq` started: no longer timed. */
  done(proxyReq: ClientRequest): void {
    this.due.delete(proxyReq);
  }

  /** Stops the timer; requests in flight are no longer timed. */
  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.due.clear();
  }

  private check(): void {
    const now = performance.now();
    // A destroy may start a retry, which is added while this loop runs (a Map visits it too, as waiting from now).
    for (const [proxyReq, until] of this.due) {
      if (proxyReq.destroyed || answered(proxyReq)) {
        this.due.delete(proxyReq);
      } else if (!waiting(proxyReq)) {
        this.due.set(proxyReq, 0);
      } else if (until === 0) {
        this.due.set(proxyReq, now + this.ms);
      } else if (now >= until) {
        this.due.delete(proxyReq);
        proxyReq.destroy(new ProxyTimeoutError(this.ms));
      }
    }
    if (this.due.size === 0) this.close();
  }
}

/** The container has answered (a response, or a protocol switch). */
function answered(proxyReq: ClientRequest): boolean {
  return (proxyReq as ClientRequest & { res?: unknown }).res != null || (proxyReq as ClientRequest & { upgradeOrConnect?: boolean }).upgradeOrConnect === true;
}

/** The request waits on the container: connecting, or sent in full. */
function waiting(proxyReq: ClientRequest): boolean {
  const socket = proxyReq.socket;
  return socket !== null && (socket.connecting || proxyReq.writableFinished);
}
