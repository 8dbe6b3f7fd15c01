import { once } from 'node:events';
import net from 'node:net';

/**
 * A TCP relay on 127.0.0.1 in front of a server, for the fault "the network
 * silently drops packets": `blackHole()` stops forwarding in both directions
 * without closing anything (no FIN, no RST; bytes are read and thrown away),
 * and connections made meanwhile are accepted but never reach the server.
 * `restore()` forwards new connections again; the black-holed ones stay dead,
 * as a TCP connection whose packets were lost for long does, so the client
 * must notice on its own (keep-alive, a statement time-out, a heartbeat).
 */
export class TcpRelay {
  private server: net.Server | undefined;
  private holed = false;
  private readonly pairs = new Set<{ client: net.Socket; upstream: net.Socket | undefined; dead: boolean }>();
  port = 0;
  /** Connections accepted so far (for assertions on reconnects). */
  accepted = 0;

  constructor(
    private readonly targetPort: number,
    private readonly targetHost = '127.0.0.1',
  ) {}

  async start(): Promise<number> {
    const server = net.createServer((client) => this.accept(client));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    this.server = server;
    this.port = (server.address() as net.AddressInfo).port;
    return this.port;
  }

  /** Drops everything from now on, silently, on open and new connections. */
  blackHole(): void {
    this.holed = true;
    for (const pair of this.pairs) this.kill(pair);
  }

  /** New connections are forwarded again; the black-holed ones stay silent. */
  restore(): void {
    this.holed = false;
  }

  /** Connections currently open through the relay (forwarding or not). */
  get open(): number {
    return this.pairs.size;
  }

  async close(): Promise<void> {
    for (const pair of this.pairs) {
      pair.client.destroy();
      pair.upstream?.destroy();
    }
    this.pairs.clear();
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    this.accepted++;
    const pair: { client: net.Socket; upstream: net.Socket | undefined; dead: boolean } = { client, upstream: undefined, dead: false };
    this.pairs.add(pair);
    const forget = (): void => {
      this.pairs.delete(pair);
    };
    client.on('error', () => {});
    client.on('close', () => {
      forget();
      // A client that gives up closes its side; pass that on only while forwarding.
      if (!pair.dead) pair.upstream?.destroy();
    });
    if (this.holed) {
      this.kill(pair);
      return;
    }
    const upstream = net.connect(this.targetPort, this.targetHost);
    pair.upstream = upstream;
    upstream.on('error', () => {});
    upstream.on('close', () => {
      if (!pair.dead) client.destroy();
    });
    client.on('data', (chunk: Buffer) => {
      if (!pair.dead) upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!pair.dead) client.write(chunk);
    });
  }

  /** Stops forwarding on one connection: its bytes are read and dropped from now on. */
  private kill(pair: { client: net.Socket; upstream: net.Socket | undefined; dead: boolean }): void {
    pair.dead = true;
    // Keep reading so that nothing pushes back: the peer sees a silent network, not a full buffer.
    pair.client.resume();
    pair.upstream?.resume();
  }
}
