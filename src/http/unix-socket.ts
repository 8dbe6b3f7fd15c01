/**
 * Listening on a unix socket (`--socket`): claiming the path, binding it and
 * setting its mode, with errors an admin can act on. A socket left by a
 * crash is replaced; a socket another process listens on, or anything that
 * is not a socket, is never touched. The file goes when the server closes
 * (libuv unlinks a bound path on close; a SIGKILL leaves it, and the next
 * start replaces it).
 */
import { once } from 'node:events';
import { chmodSync } from 'node:fs';
import { lstat, stat, unlink } from 'node:fs/promises';
import net, { type Server } from 'node:net';
import { dirname } from 'node:path';
import { ListenError } from './server.js';

/** How long a connect to an existing socket may take before its listener counts as alive (but busy). */
const PROBE_TIMEOUT_MS = 1000;

/** What listening on a socket found. */
interface SocketListen {
  /** A socket file left by a process that no longer listens was removed first. */
  readonly replacedStale: boolean;
}

/**
 * Binds `server` to the unix socket `path` and gives the file `mode` before
 * resolving, so that nothing is announced while the file still has the
 * umask's mode. Rejects with ListenError (the server left closed):
 * `configuration` when the path is held by a live socket or by a file that
 * is not a socket.
 */
export async function listenOnSocket(server: Server, path: string, mode: number): Promise<SocketListen> {
  const replacedStale = await claimPath(path);
  // The file is born with the umask's mode. Set synchronously on 'listening'
  // (the same tick as the bind, before the event loop accepts anything), the
  // window in which a client the mode would refuse can connect is a few
  // microseconds, and none with the usual umask (022: nobody else may write).
  let modeError: NodeJS.ErrnoException | undefined;
  const setMode = (): void => {
    try {
      chmodSync(path, mode);
    } catch (err) {
      modeError = err as NodeJS.ErrnoException;
    }
  };
  server.once('listening', setMode);
  try {
    server.listen(path);
    await Promise.race([once(server, 'listening'), once(server, 'error').then((args) => Promise.reject(args[0] as Error))]);
  } catch (err) {
    server.off('listening', setMode);
    server.close();
    throw new ListenError(path, { cause: err as NodeJS.ErrnoException, reason: await describeBindFailure(path, err as NodeJS.ErrnoException) });
  }
  if (modeError !== undefined) {
    server.close();
    throw new ListenError(path, { cause: modeError, reason: `cannot set its mode: ${modeError.message}` });
  }
  return { replacedStale };
}

/**
 * Makes `path` free to bind: nothing there, or a socket nobody listens on
 * (removed; resolves true). Anything else is refused.
 */
async function claimPath(path: string): Promise<boolean> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new ListenError(path, { cause: err as NodeJS.ErrnoException, reason: `cannot look at the path: ${(err as Error).message}` });
  }
  if (!isSocket) {
    throw new ListenError(path, {
      configuration: true,
      reason: 'it exists and is not a socket (the proxy never removes it: move it away or choose another --socket path)',
    });
  }
  const found = await probe(path);
  if (found === 'live') {
    throw new ListenError(path, { configuration: true, reason: 'another process is listening on it (is another proxy running? stop it or choose another --socket path)' });
  }
  if (found === 'gone') return false;
  if (found !== 'stale') {
    throw new ListenError(path, {
      cause: found,
      configuration: true,
      reason: `a socket is there that the proxy cannot connect to (${found.code ?? found.message}): remove it if no process uses it`,
    });
  }
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new ListenError(path, { cause: err as NodeJS.ErrnoException, reason: `cannot remove the stale socket: ${(err as Error).message}` });
    }
  }
  return true;
}

/**
 * Whether a process listens on the socket at `path`: a connect that succeeds
 * (or a listener too busy to take it), one refused (a socket left by a
 * crash), the file gone meanwhile, or another error.
 */
function probe(path: string): Promise<'live' | 'stale' | 'gone' | NodeJS.ErrnoException> {
  return new Promise((resolve) => {
    const socket = net.connect(path);
    const done = (found: 'live' | 'stale' | 'gone' | NodeJS.ErrnoException): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(found);
    };
    const timer = setTimeout(() => done('live'), PROBE_TIMEOUT_MS);
    socket.once('connect', () => done('live'));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      // EAGAIN: the listener's backlog is full, so it is alive.
      done(err.code === 'ECONNREFUSED' ? 'stale' : err.code === 'ENOENT' ? 'gone' : err.code === 'EAGAIN' ? 'live' : err);
    });
  });
}

/**
 * Why binding failed, in words an admin can act on. libuv reports a missing
 * directory as EACCES too, so the directory is looked at.
 */
async function describeBindFailure(path: string, err: NodeJS.ErrnoException): Promise<string> {
  const dir = dirname(path);
  if (err.code === 'EACCES' || err.code === 'ENOENT') {
    const missing = await stat(dir).then(
      (s) => !s.isDirectory(),
      () => true,
    );
    if (missing) return `the directory ${dir} does not exist (create it; under systemd, RuntimeDirectory= does)`;
    return `permission denied: the proxy's user cannot create files in ${dir}`;
  }
  if (err.code === 'EADDRINUSE') return 'the path was taken while the proxy started (is another proxy starting?)';
  return err.message;
}
