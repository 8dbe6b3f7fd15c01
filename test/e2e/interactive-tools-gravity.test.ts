import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { request } from '../helpers/client.js';
import { spawnProxy } from '../helpers/spawned-proxy.js';
import { upstreamFor } from '../helpers/upstream.js';
import { LegacyItWriter, SqlAlchemyItWriter, type GalaxyItWriter } from '../helpers/galaxy-it-map.js';
import { tempDir } from '../helpers/galaxy-map.js';
import { freePort } from '../helpers/ports.js';
import { MAP_LOG } from '../../src/session-map/reload-report.js';
import { HTTP_LOG } from '../../src/http/server.js';

// gravity's exact command line for gx_it_proxy with every default
// (INTERACTIVE-TOOLS.md §2), with our bins in place of npx's, run in a Galaxy
// root whose map Galaxy creates only at the first Interactive Tool launch.
// Only the port differs (a free one instead of 4002: no fixed ports in tests).
const GRAVITY_LINE =
  '--ip localhost --port 4002 --sessions database/interactivetools_map.sqlite --verbose    --proxyPathPrefix /interactivetool/ep';

// Since Galaxy 24.2 gravity passes `interactivetoolsproxy_map` as it is: a SQLAlchemy URL.
const CASES = [
  ...(['gx-it-proxy', 'main'] as const).flatMap((bin) => (['sqlalchemy', 'legacy'] as const).map((writerKind) => ({ bin, writerKind, sessions: 'database/interactivetools_map.sqlite' }))),
  { bin: 'gx-it-proxy', writerKind: 'sqlalchemy', sessions: 'sqlite:///database/interactivetools_map.sqlite' },
] as const;

for (const { bin, writerKind, sessions } of CASES) {
  const binName = bin === 'main' ? 'galaxy-gie-proxy (the bin npx runs for this package)' : 'gx-it-proxy';
  const given = sessions.startsWith('sqlite:') ? ` (--sessions ${sessions}, interactivetoolsproxy_map's form)` : '';
  test(`gravity's line with the ${binName} bin${given} starts before the map exists and routes what Galaxy (${writerKind}) writes`, async (t) => {
    const root = tempDir('galaxy-root-');
    mkdirSync(join(root.dir, 'database'));
    const container = await upstreamFor(t, 'jupyter');
    const port = await freePort();
    const argv = GRAVITY_LINE.replace('4002', String(port)).replace('database/interactivetools_map.sqlite', sessions).split(/\s+/);
    const proc = spawnProxy(argv, { cwd: root.dir, bin });
    const mapPath = join(root.dir, 'database', 'interactivetools_map.sqlite');
    const writer: GalaxyItWriter = writerKind === 'sqlalchemy' ? new SqlAlchemyItWriter(mapPath) : new LegacyItWriter(mapPath);
    t.after(() => {
      proc.kill();
      writer.close();
      root.remove();
    });
    const start = await proc.started(10_000);
    assert.equal(start.routing, 'interactive tools: path /interactivetool/ep, then host');
    assert.equal(start.sessions, mapPath);
    const address = start.address as string;
    assert.ok(address === '127.0.0.1' || address === '::1', `--ip localhost listens on loopback (${address})`);

    const reloaded = proc.logs.next(MAP_LOG.reloaded, 10_000, (l) => l.sessions === 1);
    writer.save({ key: '24q1dbzrknq1v', token: '1a1p13jnahscj', host: '127.0.0.1', port: container.port });
    await reloaded;
    const viaPath = await request(port, { path: '/interactivetool/ep/24q1dbzrknq1v/1a1p13jnahscj/tree?x=1', host: address });
    assert.equal(viaPath.status, 200);
    assert.equal((JSON.parse(viaPath.body) as { url: string }).url, '/tree?x=1');
    const viaHost = await request(port, { path: '/', headers: { host: `24q1dbzrknq1v-1a1p13jnahscj.ep.interactivetool.localhost:${port}` }, host: address });
    assert.equal(viaHost.status, 200);

    // --verbose: one line per request, with the key and the token's tag (as for a cookie), never the token.
    const line = await proc.logs.waitFor((l) => l.msg === HTTP_LOG.request && l.status === 200, 10_000);
    assert.equal(line.entryPoint, '24q1dbzrknq1v');
    assert.equal(line.session, createHash('sha256').update('1a1p13jnahscj').digest('hex').slice(0, 10));
    assert.ok(!proc.stdout.includes('1a1p13jnahscj'), 'the token never appears in the log');
  });
}
