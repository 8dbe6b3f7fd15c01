import net from 'node:net';
import { once } from 'node:events';

/**
 * A free TCP port on 127.0.0.1 for a spawned proxy (the CLI rejects port 0,
 * like the legacy proxy's callers expect a real port).
 */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as net.AddressInfo;
  s.close();
  await once(s, 'close');
  return port;
}

/**
 * A port on 127.0.0.1 that refuses connections, for a container that is
 * gone. Not one from freePort: that port is free only at the moment it is
 * picked, and a test running beside this one may be given it by the kernel
 * and answer on it. No test listens below 1024 (they all ask for port 0), so
 * the first of these that refuses now keeps refusing.
 */
export async function refusedPort(): Promise<number> {
  for (const port of [9, 7, 13, 19, 37]) if (await refuses(port)) return port;
  throw new Error('no port below 1024 on 127.0.0.1 refuses connections');
}

/** Whether a connection to `port` on 127.0.0.1 is refused now. */
export async function refuses(port: number): Promise<boolean> {
  const socket = net.connect(port, '127.0.0.1');
  const refused = await new Promise<boolean>((resolve) => {
    socket.once('connect', () => resolve(false));
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
  socket.destroy();
  return refused;
}
