import { execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from 'node:net';
import { childPids } from './proc-stats.js';
import type { BenchResources } from './processes.js';
import { onCores } from './steady.js';
import { freePort } from '../helpers/ports.js';

/** The nginx binary, or undefined when nginx is not installed (or BENCH_NO_NGINX is set). */
export function findNginx(): string | undefined {
  if (process.env.BENCH_NO_NGINX) return undefined;
  for (const candidate of ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx']) {
    if (existsSync(candidate)) return candidate;
  }
  try {
    return execFileSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** A running nginx: master process, its single worker (whose CPU is measured) and port. */
export interface RunningNginx {
  readonly child: ChildProcess;
  readonly workerPid: number;
  readonly port: number;
}

/**
 * The part of a config every instance shares: no daemon, one worker (the
 * proxy is one thread too), every path inside its own temp prefix so nothing
 * under /etc, /var/log or /run is read or written, no access log.
 */
function mainConfig(prefix: string, http: string): string {
  // As root, nginx switches its workers to an unprivileged user; they must
  // reach the temp paths.
  const user = process.getuid?.() === 0 ? `user nobody ${groupExists('nogroup') ? 'nogroup' : 'nobody'};\n` : '';
  return `${user}daemon off;
master_process on;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
${http}
}
`;
}

function groupExists(name: string): boolean {
  try {
    return readFileSync('/etc/group', 'utf8').split('\n').some((line) => line.startsWith(`${name}:`));
  } catch {
    return false;
  }
}

/** nginx's fastest answer: the backend stand-in when nginx is installed. */
export function backendConfig(prefix: string, port: number): string {
  return mainConfig(
    prefix,
    `  server {
    listen 127.0.0.1:${port};
    location / { return 200 "ok\\n"; }
  }`,
  );
}

/** One routing entry for the reference proxy: cookie value → upstream address. */
export interface NginxRoute {
  readonly key: string;
  readonly upstream: string;
}

/**
 * The reference reverse proxy: routes by the same cookie as ours
 * (`map $cookie_galaxysession`), to upstream groups with a keep-alive pool,
 * WebSocket upgrades passed through, 404 for an unknown session. Sessions
 * whose addresses are not listed in `upstreams` go to one shared dead group,
 * which only costs map entries (they are never requested).
 */
export function referenceConfig(prefix: string, port: number, cookie: string, routes: Iterable<NginxRoute>, count: number): string {
  const groups = new Map<string, string>();
  const lines: string[] = [];
  for (const { key, upstream } of routes) {
    let group = groups.get(upstream);
    if (group === undefined) {
      group = `gie_${groups.size}`;
      groups.set(upstream, group);
    }
    lines.push(`    "${key}" ${group};`);
  }
  const upstreams = [...groups].map(([address, name]) => `  upstream ${name} { server ${address}; keepalive 64; keepalive_requests 10000000; }`);
  // The hash must hold every key; nginx sizes it from these two limits.
  const hashSize = Math.max(1024, 2 ** Math.ceil(Math.log2(count * 2)));
  return mainConfig(
    prefix,
    `  map_hash_max_size ${hashSize};
  map_hash_bucket_size 256;
  map $cookie_${cookie} $gie_backend {
    default "";
${lines.join('\n')}
  }
  map $http_upgrade $gie_connection { default ""; websocket upgrade; }
${upstreams.join('\n')}
  server {
    listen 127.0.0.1:${port};
    location / {
      if ($gie_backend = "") { return 404; }
      proxy_pass http://$gie_backend;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $gie_connection;
      proxy_read_timeout 600s;
    }
  }`,
  );
}

/**
 * Starts nginx in the foreground as a child with its own prefix and config
 * under `dir`, waits until it accepts connections and its worker is up.
 */
export async function startNginx(
  resources: BenchResources,
  binary: string,
  name: string,
  config: (prefix: string, port: number) => string,
  cores?: string | undefined,
): Promise<RunningNginx> {
  const prefix = join(resources.dir, name);
  mkdirSync(prefix, { recursive: true });
  if (process.getuid?.() === 0) {
    chmodSync(resources.dir, 0o755);
    chmodSync(prefix, 0o777);
  }
  const port = await freePort();
  const confPath = join(prefix, 'nginx.conf');
  writeFileSync(confPath, config(prefix, port));
  const child = resources.spawn(...onCores(cores, binary, ['-p', prefix, '-c', confPath, '-e', join(prefix, 'error.log')]));
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  child.stdout?.resume();
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) {
      const log = existsSync(join(prefix, 'error.log')) ? readFileSync(join(prefix, 'error.log'), 'utf8') : '';
      throw new Error(`nginx (${name}) exited with ${child.exitCode}: ${stderr}${log}`);
    }
    const workers = childPids(child.pid ?? -1);
    if (workers.length > 0 && (await accepts(port))) return { child, workerPid: workers[0]!, port };
    if (Date.now() > deadline) throw new Error(`nginx (${name}) did not start within 10 s: ${stderr}`);
    await sleep(20);
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
