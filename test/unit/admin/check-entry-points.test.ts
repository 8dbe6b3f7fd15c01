import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { checkSessionMap, formatCheckReport } from '../../../src/admin/check.js';
import { SqlAlchemyItWriter } from '../../helpers/galaxy-it-map.js';
import { tempDir } from '../../helpers/galaxy-map.js';
import { freePort } from '../../helpers/ports.js';
import { startUpstream } from '../../helpers/upstream.js';

test('--check on an Interactive Tools map lists entry points by key and token tag, never the token', async (t) => {
  const { dir, remove } = tempDir();
  const up = await startUpstream('c');
  t.after(async () => {
    await up.close();
    remove();
  });
  const writer = new SqlAlchemyItWriter(join(dir, 'interactivetools_map.sqlite'));
  writer.save({ key: 'kalive', token: 'secret-token-1', host: '127.0.0.1', port: up.port });
  writer.save({ key: 'kdead', token: 'secret-token-2', host: '127.0.0.1', port: await freePort() });
  writer.save({ key: 'kbad', token: 't', host: '127.0.0.1', port: 1, info: '{' });
  writer.close();
  const report = await checkSessionMap(writer.path, { limit: 10, connectTimeoutMs: 1000 });
  assert.equal(report.readable, true);
  assert.equal(report.routing, 'entry-point');
  assert.equal(report.sessions, 2);
  const text = formatCheckReport(report);
  const tag = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 10);
  assert.match(text, /^format {7}sqlite gxitproxy$/m);
  assert.match(text, /^entry points 2 routable$/m);
  assert.match(text, /^skipped {6}1 \(info is not valid JSON: 1\)$/m);
  assert.match(text, new RegExp(`kalive token ${tag('secret-token-1')}\\s+127\\.0\\.0\\.1:${up.port}\\s+answers in`));
  assert.match(text, new RegExp(`kdead token ${tag('secret-token-2')}\\s+127\\.0\\.0\\.1:\\d+\\s+NO ANSWER`));
  assert.ok(!text.includes('secret-token'), text);
});
