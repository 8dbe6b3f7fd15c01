/**
 * The proxies an admin would pick instead, measured in the same interleaved
 * rounds as this one (issue 21), when installed outside this repository:
 *
 * - configurable-http-proxy 5.x (JupyterHub's proxy, on http-proxy-3), with
 *   a default route to the same backend: it cannot route by cookie, so it
 *   takes part in the one-route figures only;
 * - gx-it-proxy 0.2.3 (Galaxy's Interactive Tools proxy), on a `gxitproxy`
 *   map written with Galaxy's statements, by path and by host.
 *
 * Where they are looked for (`$GIE_BENCH_PEERS`, default `<tmpdir>/gie-bench-peers`):
 *   npm install --prefix "$GIE_BENCH_PEERS/chp" configurable-http-proxy@5
 *   npm install --prefix "$GIE_BENCH_PEERS/gx-it-proxy" @galaxyproject/gx-it-proxy@0.2.3
 * Missing, a peer is reported as "skipped: not installed" with these lines.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/ports.js';
import type { BenchResources } from './processes.js';
import type { Listening } from './servers.js';
import { onCores } from './steady.js';

export const PEERS_DIR = process.env.GIE_BENCH_PEERS ?? join(tmpdir(), 'gie-bench-peers');

/** A peer, and how to install it when it is missing. */
export interface Peer {
  readonly name: string;
  readonly main: string | undefined;
  readonly install: string;
}

export function configurableHttpProxy(): Peer {
  const main = join(PEERS_DIR, 'chp', 'node_modules', 'configurable-http-proxy', 'bin', 'configurable-http-proxy');
  return { name: 'configurable-http-proxy', main: existsSync(main) ? main : undefined, install: `npm install --prefix ${join(PEERS_DIR, 'chp')} configurable-http-proxy@5` };
}

export function gxItProxy(): Peer {
  const dir = join(PEERS_DIR, 'gx-it-proxy', 'node_modules');
  const main = join(dir, '@galaxyproject', 'gx-it-proxy', 'lib', 'main.js');
  const sqlite = join(dir, 'sqlite3', 'build', 'Release', 'node_sqlite3.node');
  return {
    name: 'gx-it-proxy',
    main: existsSync(main) && existsSync(sqlite) ? main : undefined,
    install: `npm install --prefix ${join(PEERS_DIR, 'gx-it-proxy')} @galaxyproject/gx-it-proxy@0.2.3`,
  };
}

/** The line a report shows for a peer that is not installed. */
export function skipped(peer: Peer): string {
  return `${peer.name}: skipped: not installed (${peer.install})`;
}

export type RunningPeer = Listening & { readonly child: ChildProcess };

/** Resolves once a GET of `path` (with `host`) through `port` is answered 200, polling (bounded). */
async function served(port: number, path: string, host: string | undefined, what: string, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < until) {
    const status = await new Promise<number | string>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path, headers: host === undefined ? {} : { host }, timeout: 2000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    if (status === 200) return;
    last = String(status);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not serve ${path} within ${timeoutMs} ms (last: ${last})`);
}

/** configurable-http-proxy on a free port, everything routed to `backendPort`, on `cores`. */
export async function startConfigurableHttpProxy(resources: BenchResources, peer: Peer, name: string, backendPort: number, cores: string | undefined, cpuProfDir?: string): Promise<RunningPeer> {
  if (peer.main === undefined) throw new Error(skipped(peer));
  const [port, apiPort] = [await freePort(), await freePort()];
  const nodeFlags = cpuProfDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', cpuProfDir, '--cpu-prof-name', `${name}.cpuprofile`];
  const args = [...nodeFlags, peer.main, '--ip', '127.0.0.1', '--port', String(port), '--api-ip', '127.0.0.1', '--api-port', String(apiPort), '--default-target', `http://127.0.0.1:${backendPort}`, '--log-level', 'warn'];
  const child = resources.spawn(...onCores(cores, process.execPath, args), { env: { ...process.env, CONFIGPROXY_AUTH_TOKEN: 'bench' } });
  child.stdout?.resume();
  child.stderr?.resume();
  await served(port, '/', undefined, name);
  return { name, pid: child.pid!, port, child };
}

/** gx-it-proxy 0.2.3 on a gxitproxy map, routing by path under `prefix` and by host, on `cores`; ready once `probe` (a path) is routed. */
export async function startGxItProxy(resources: BenchResources, peer: Peer, name: string, mapPath: string, prefix: string, probe: string, cores: string | undefined): Promise<RunningPeer> {
  if (peer.main === undefined) throw new Error(skipped(peer));
  const port = await freePort();
  const child = resources.spawn(...onCores(cores, process.execPath, [peer.main, '--ip', '127.0.0.1', '--port', String(port), '--sessions', mapPath, '--proxyPathPrefix', prefix]));
  child.stdout?.resume();
  child.stderr?.resume();
  await served(port, probe, undefined, name);
  return { name, pid: child.pid!, port, child };
}
