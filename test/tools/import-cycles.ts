/**
 * Fails when src/ has an import cycle. The graph holds every import and
 * re-export between src/ modules, type-only ones included (a type-only loop
 * still means a type lives in the wrong module), and dynamic imports.
 *
 *   node --import tsx test/tools/import-cycles.ts [--graph]
 *
 * `--graph` prints the edges (module → its imports), one module a line.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const SRC = fileURLToPath(new URL('../../src', import.meta.url));

/** Every .ts file under `dir`, as absolute paths. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** The src/ modules `file` imports (relative specifiers; `./x.js` names `./x.ts`). */
function importsOf(file: string): string[] {
  const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return importedFiles
    .map((f) => f.fileName)
    .filter((name) => name.startsWith('.'))
    .map((name) => resolve(dirname(file), name.replace(/\.js$/, '.ts')))
    .filter((path, i, all) => all.indexOf(path) === i);
}

/** The cycles of `graph`, each as the path that closes it (first module repeated at the end). */
export function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (state.get(next) === undefined) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of [...graph.keys()].sort()) if (state.get(node) === undefined) visit(node);
  return cycles;
}

const files = sources(SRC).sort();
const graph = new Map(files.map((file) => [file, importsOf(file)]));
const name = (file: string): string => relative(SRC, file);
const missing = [...graph].flatMap(([file, deps]) => deps.filter((d) => !graph.has(d)).map((d) => `${name(file)} → ${name(d)}`));
if (missing.length > 0) {
  process.stderr.write(`imports of files that are not in src/:\n  ${missing.join('\n  ')}\n`);
  process.exit(1);
}
if (process.argv.includes('--graph')) {
  for (const [file, deps] of graph) process.stdout.write(`${name(file)} → ${deps.map(name).sort().join(', ') || '(nothing)'}\n`);
}
const cycles = findCycles(graph);
if (cycles.length > 0) {
  process.stderr.write(`import cycles in src/ (type-only imports count):\n${cycles.map((c) => `  ${c.map(name).join(' → ')}`).join('\n')}\n`);
  process.exit(1);
}
process.stdout.write(`no import cycles among ${files.length} modules of src/ (${[...graph.values()].reduce((n, d) => n + d.length, 0)} imports)\n`);
