import type { Duplex } from 'node:stream';

/**
 * Counts in-flight HTTP requests and holds open WebSockets, so that a
 * shutdown can wait for the first and close the second.
 */
export class ConnectionTracker {
  private inFlight = 0;
  private readonly sockets = new Set<Duplex>();
  private idleWaiters: Array<() => void> = [];
  /** Called after every request ends; the shutdown uses it to drop now-idle connections. */
  onRequestDone: (() => void) | undefined;

  /** A request arrived; `requestEnded` must follow when its response closes. */
  requestStarted(): void {
    this.inFlight++;
  }

  /** A request's response closed (finished, or cut). */
  requestEnded(): void {
    this.inFlight--;
    this.onRequestDone?.();
    if (this.inFlight === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  trackWebSocket(socket: Duplex): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  get activeRequests(): number {
    return this.inFlight;
  }

  get openWebSockets(): number {
    return this.sockets.size;
  }

  /** Resolves when no HTTP request is in flight. */
  whenNoRequests(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Closes every client WebSocket; the proxy closes the container side with it. */
  destroyWebSockets(): void {
    for (const socket of this.sockets) socket.destroy();
  }
}
