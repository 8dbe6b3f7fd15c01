import type { Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { ListenError } from './errors.js';

/**
 * Starts `server` listening on `ip:port` and resolves with the bound address;
 * rejects with ListenError (naming the address and why) and leaves the
 * server closed.
 */
export async function listenOn(server: Server, port: number, ip: string): Promise<AddressInfo> {
  try {
    server.listen(port, ip);
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err))]);
  } catch (err) {
    server.close();
    throw new ListenError(`${ip}:${port}`, { cause: err as NodeJS.ErrnoException });
  }
  return server.address() as AddressInfo;
}
