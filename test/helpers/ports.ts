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
