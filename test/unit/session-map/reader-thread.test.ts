/**
 * What the reader thread loads: its own script, the producer and the module
 * of the map's store kind, nothing else. The modules are followed as the
 * compiled code imports them (type-only imports are gone there), from
 * reader-thread.ts with the kind it picks at run time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const SRC = fileURLToPath(new URL('../../../src', import.meta.url));
const THREAD = resolve(SRC, 'session-map/reader-thread.ts');
const KIND_MODULES = { file: './file/file-store.js', postgres: './postgres/store.js' };

/** The specifiers `file` imports at run time (static and dynamic). */
function runtimeImports(file: string): string[] {
  const js = ts.transpileModule(readFileSync(file, 'utf8'), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
  return [...js.matchAll(/(?:^import\s[^'"]*?from\s*|^import\s*|import\()\s*['"]([^'"]+)['"]/gm)].map((m) => m[1]);
}

/** The src/ modules (relative to src/) and packages the thread loads for a map of `kind`. */
function loaded(kind: keyof typeof KIND_MODULES): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(relative(SRC, file))) return;
    seen.add(relative(SRC, file));
    for (const spec of runtimeImports(file)) {
      if (file === THREAD && Object.values(KIND_MODULES).includes(spec) && spec !== KIND_MODULES[kind]) continue;
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else seen.add(spec);
    }
  };
  visit(THREAD);
  return seen;
}

test('for a file map the reader thread loads no logger (pino), no PostgreSQL client and no URL parser', () => {
  const modules = loaded('file');
  assert.ok(modules.has('session-map/producer.ts') && modules.has('session-map/file/sqlite-store.ts'), [...modules].join(', '));
  for (const unwanted of ['pino', 'pg', 'pg-connection-string', 'log.ts', 'session-map/stores.ts', 'session-map/reader.ts', 'session-map/postgres/url.ts']) {
    assert.ok(!modules.has(unwanted), `${unwanted} is loaded: ${[...modules].join(', ')}`);
  }
});

test('for a PostgreSQL map it loads the PostgreSQL store and no logger, and nothing of the file stores', () => {
  const modules = loaded('postgres');
  assert.ok(modules.has('session-map/postgres/store.ts'));
  for (const unwanted of ['pino', 'log.ts', 'better-sqlite3', 'session-map/file/file-store.ts']) assert.ok(!modules.has(unwanted), `${unwanted} is loaded`);
});
