import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUILT_IN, bodyOf, escapeHtml, loadPages, render, templateProblem } from '../../../src/pages/templates.js';
import { galaxyPathBefore } from '../../../src/pages/galaxy-link.js';
import { tempDir } from '../../helpers/galaxy-map.js';

test('escapeHtml leaves nothing that can end text or an attribute', () => {
  assert.equal(escapeHtml(`<a href="x" onclick='y'>&\``), '&#60;a href=&#34;x&#34; onclick=&#39;y&#39;&#62;&#38;&#96;');
});

test('render: the link escaped, or nothing when there is none; retry only where asked', () => {
  assert.equal(render('[{{galaxy_link}}|{{ galaxy_url }}]', 'https://g.example/?a=1&b="2"'), '[<a href="https://g.example/?a=1&#38;b=&#34;2&#34;" rel="noreferrer">Back to Galaxy</a>|https://g.example/?a=1&#38;b=&#34;2&#34;]');
  assert.equal(render('[{{galaxy_link}}|{{galaxy_url}}]', undefined), '[|]');
  assert.equal(render('{{retry}}', undefined, '<script>x</script>'), '<script>x</script>');
});

test('templateProblem: unknown placeholders, a starting page without {{retry}}, and bad UTF-8 are refused; the built-in pages pass', () => {
  for (const [name, text] of Object.entries(BUILT_IN)) assert.equal(templateProblem(name as 'starting', text), undefined, name);
  assert.match(templateProblem('stopped', '{{retry}}') ?? '', /unknown placeholder \{\{retry\}\}/);
  assert.match(templateProblem('stopped', '{{name}}') ?? '', /unknown placeholder/);
  assert.match(templateProblem('starting', '<p>{{galaxy_link}}</p>') ?? '', /no \{\{retry\}\}/);
  assert.match(templateProblem('unreachable', 'caf\uFFFD') ?? '', /not UTF-8/);
});

test('loadPages: no directory gives the built-in pages silently; each unusable file is named once', () => {
  assert.deepEqual(loadPages(undefined), { pages: BUILT_IN, problems: [] });
  const tmp = tempDir();
  try {
    const dir = join(tmp.dir, 'p');
    mkdirSync(dir);
    writeFileSync(join(dir, 'stopped.html'), '<body>gone {{galaxy_link}}</body>');
    writeFileSync(join(dir, 'starting.html'), Buffer.from([0x3c, 0xff, 0xfe, 0x3e]));
    const { pages, problems } = loadPages(dir);
    assert.equal(pages.stopped, '<body>gone {{galaxy_link}}</body>');
    assert.equal(pages.starting, BUILT_IN.starting);
    assert.equal(pages.unreachable, BUILT_IN.unreachable);
    assert.deepEqual(problems, ['starting.html: not UTF-8', 'unreachable.html: missing']);
    assert.match(loadPages(join(dir, 'nothing-here')).problems.join('\n'), /starting\.html: missing/);
  } finally {
    tmp.remove();
  }
});

test('bodyOf takes what lies inside <body>, or the whole text', () => {
  assert.equal(bodyOf('<html><body class="x">in</body></html>'), 'in');
  assert.equal(bodyOf('<p>no body</p>'), '<p>no body</p>');
});

test("galaxyPathBefore: Galaxy's prefix before <IT prefix>/ep, or no link", () => {
  assert.equal(galaxyPathBefore('/interactivetool/ep'), '/');
  assert.equal(galaxyPathBefore('/galaxy/interactivetool/ep'), '/galaxy/');
  assert.equal(galaxyPathBefore('/tools'), undefined);
  assert.equal(galaxyPathBefore('/ep'), undefined);
  assert.equal(galaxyPathBefore(''), undefined);
});
