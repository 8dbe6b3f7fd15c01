/**
 * `--sessions` as gravity hands it over: Galaxy's raw `interactivetoolsproxy_map`
 * (a SQLAlchemy URL) or `interactivetools_map` (a path), through the spawned
 * CLI. Each SQLite form routes the entry point Galaxy saved; any other
 * dialect exits 2 at once with one line that names it and never the
 * password. (PostgreSQL URLs: test/deploy/postgres-*.test.ts.)
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { request } from '../helpers/client.js';
import { SqlAlchemyItWriter } from '../helpers/galaxy-it-map.js';
import { tempDir } from '../helpers/galaxy-map.js';
import { IT_PREFIX } from '../helpers/it-proxy.js';
import { Random } from '../helpers/random.js';
import { spawnProxy, startSpawnedProxy } from '../helpers/spawned-proxy.js';
import { startUpstream, type Seen, type Upstream } from '../helpers/upstream.js';

const EP = { key: 'urlformkey1', token: 'urlformtok1' };
const tmp = tempDir('gie-sessions-urls-');
after(() => tmp.remove());
/** Galaxy's root: the working directory of the proxy, as gravity starts it. */
const galaxyRoot = join(tmp.dir, 'galaxy');
mkdirSync(join(galaxyRoot, 'database'), { recursive: true });
const mapFile = join(galaxyRoot, 'database', 'interactivetools_map.sqlite');

let container: Promise<Upstream> | undefined;
after(async () => (await container)?.close());
async function savedMap(): Promise<void> {
  const { port } = await (container ??= startUpstream('jupyter'));
  const writer = new SqlAlchemyItWriter(mapFile);
  writer.save({ ...EP, host: '127.0.0.1', port });
  writer.close();
}

describe('--sessions: the SQLite URL forms, through the CLI', () => {
  const forms = [
    ['sqlite:////absolute/path', `sqlite:///${mapFile}`],
    ['sqlite:///relative/path (from the working directory)', 'sqlite:///database/interactivetools_map.sqlite'],
    ['sqlite:///file:path?mode=ro&uri=true', 'sqlite:///file:database/interactivetools_map.sqlite?mode=ro&uri=true'],
    ['sqlite+pysqlite:////absolute/path', `sqlite+pysqlite:///${mapFile}`],
  ] as const;
  for (const [name, url] of forms) {
    test(`${name} routes the map Galaxy wrote, named by its path`, async (t) => {
      await savedMap();
      const proxy = await startSpawnedProxy(t, url, ['--proxyPathPrefix', IT_PREFIX], { cwd: galaxyRoot, bin: 'gx-it-proxy' });
      const listening = proxy.proc.logs.withMsg('proxy listening')[0];
      assert.equal(listening?.sessions, mapFile);
      await proxy.proc.logs.waitFor((l) => l.msg === 'session map reloaded' && (l.sessions as number) >= 1, 10_000);
      const reply = await request(proxy.port, { path: `${IT_PREFIX}/${EP.key}/${EP.token}/tree` });
      assert.equal(reply.status, 200, reply.body);
      assert.equal((JSON.parse(reply.body) as Seen).url, '/tree');
    });
  }

  test('--check reads a sqlite:/// URL the same way', async () => {
    await savedMap();
    const check = spawnProxy(['--sessions', 'sqlite:///database/interactivetools_map.sqlite', '--check'], { cwd: galaxyRoot });
    const { code } = await check.exit(10_000);
    assert.equal(code, 0, check.stderr);
    assert.match(check.stdout, new RegExp(`^session map  ${mapFile}\\n[^]*entry points 1 routable`));
  });
});

describe('--sessions: a dialect the map cannot be in', () => {
  test('exits 2 at once with one line naming the dialect and what is supported, never the password', async () => {
    for (const [url, dialect] of [
      ['mysql://galaxy:SECRET-pw@db/itmap', 'mysql'],
      ['mysql+pymysql://galaxy:SECRET-pw@db/itmap', 'mysql+pymysql'],
      ['mariadb+mariadbconnector://galaxy:SECRET-pw@db/itmap', 'mariadb+mariadbconnector'],
      ['oracle://galaxy:SECRET-pw@db:1521/itmap', 'oracle'],
      ['mssql+pyodbc://galaxy:SECRET-pw@dsn', 'mssql+pyodbc'],
    ] as const) {
      for (const bin of ['main', 'gx-it-proxy'] as const) {
        const proc = spawnProxy(['--sessions', url], { bin });
        const { code, ms } = await proc.exit(10_000);
        assert.equal(code, 2, `${url}: ${proc.stderr}`);
        assert.ok(ms < 5000, `${url}: took ${ms} ms`);
        assert.equal(proc.stdout, '');
        const lines = proc.stderr.split('\n').filter((l) => l !== '');
        assert.equal(lines.length, 1, proc.stderr);
        assert.equal(lines[0]?.startsWith(`error: --sessions: the "${dialect}" dialect`), true, proc.stderr);
        assert.match(proc.stderr, /SQLite .*PostgreSQL/);
        assert.doesNotMatch(proc.stderr, /SECRET/);
      }
    }
  });

  test('seeded fuzz of --sessions through the CLI: no crash, no password echoed', async () => {
    // Replay with FUZZ_SEED=<seed>.
    const r = new Random(Number(process.env.FUZZ_SEED ?? 20_261_206));
    const tails = ['', '/db', ':1/x', '/x?sslmode=on', '/x?host=a&host=b', '/x?bogus=1', '@/x', ':99999/x', '/file:x?mode=memory&uri=true', '/:memory:', '/x?service=none'];
    for (let i = 0; i < 24; i++) {
      const password = `Pw${r.int(1e9)}z`;
      const url = `${r.pick(['postgresql', 'postgres+psycopg2', 'sqlite', 'mysql', 'oracle+x', 'sqlite+pysqlite'])}://u:${password}@h${r.pick(tails)}`;
      const proc = spawnProxy(['--sessions', url, '--check', '--check-limit', '0'], { cwd: tmp.dir, env: { PATH: process.env.PATH ?? '', HOME: tmp.dir } });
      const { code } = await proc.exit(20_000);
      assert.ok(code === 1 || code === 2, `${url}: exit ${code}: ${proc.stderr}`);
      assert.doesNotMatch(proc.stdout + proc.stderr, new RegExp(password), url);
      assert.doesNotMatch(proc.stderr, /at .*\.js:\d+|TypeError|RangeError/, url);
    }
  });
});
