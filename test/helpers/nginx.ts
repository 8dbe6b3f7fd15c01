import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { startFrontServer } from './front-server.js';
import { requireTool } from './tools.js';

/**
 * A private nginx (its own prefix, config, pid file and logs in `dir`) with
 * `servers` (server blocks) in its http block, started in the foreground and
 * stopped in t.after. Resolves once 127.0.0.1:`port` (one of the blocks'
 * `listen`s) accepts connections; false when nginx is missing outside CI
 * (the test is skipped). `user` (`nobody nogroup`) runs the worker as that
 * user; by default as root when the tests run as root.
 */
export async function startNginx(t: TestContext, dir: string, servers: string, port: number, { user }: { user?: string } = {}): Promise<boolean> {
  const nginx = requireTool(t, 'nginx', 'apt-get install nginx-light');
  if (nginx === undefined) return false;
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `${user !== undefined ? `user ${user};\n` : process.getuid?.() === 0 ? 'user root;\n' : ''}daemon off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} info;
events { worker_connections 256; }
http {
  access_log ${join(dir, 'access.log')};
  client_body_temp_path ${join(dir, 'body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
${servers}
}
`,
  );
  await startFrontServer(t, nginx, ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], port);
  return true;
}
