/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, or `npm run bench --
 * --cpu-prof <dir>`): the functions with the most self time, and self time
 * per area (this package, each dependency, Node's internals by module).
 *
 *   node --import tsx test/bench/profile-top.ts <file.cpuprofile | dir> [count]
 *
 * A directory (the bench writes one per proxy: the main thread's profile and
 * the reader thread's) is summarised by its busiest profile, the main thread.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fmt, table } from './context.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Per function: self and total (inclusive) time, in percent of the busy (non-idle) time. */
export interface FunctionTime {
  readonly name: string;
  /** Where it lives (see areaOf): this package, a dependency, a Node module. */
  readonly area: string;
  readonly self: number;
  readonly total: number;
}

/** Self and total time per function, self time per area, from a V8 CPU profile. */
export function summarise(profile: Profile): { functions: FunctionTime[]; areas: [string, number][]; busyMs: number } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const nameOf = (node: ProfileNode): string => {
    const { functionName, url, lineNumber } = node.callFrame;
    return `${functionName || '(anonymous)'}${url === '' ? '' : ` ${shortUrl(url)}:${lineNumber + 1}`}`;
  };
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const areaOfName = new Map<string, string>();
  const areas = new Map<string, number>();
  let busy = 0;
  // Depth-first from the root; a function's total counts each sample once
  // even when it recurses (only its outermost frame on a stack adds).
  const visit = (id: number, onStack: Set<string>): number => {
    const node = byId.get(id)!;
    const name = nameOf(node);
    areaOfName.set(name, areaOf(node.callFrame.functionName, node.callFrame.url));
    const idle = node.callFrame.functionName === '(idle)';
    let us = idle ? 0 : (selfUs.get(id) ?? 0);
    if (us > 0) {
      busy += us;
      self.set(name, (self.get(name) ?? 0) + us);
      const area = areaOf(node.callFrame.functionName, node.callFrame.url);
      areas.set(area, (areas.get(area) ?? 0) + us);
    }
    const outermost = !onStack.has(name);
    if (outermost) onStack.add(name);
    for (const child of node.children ?? []) us += visit(child, onStack);
    if (outermost) {
      onStack.delete(name);
      total.set(name, (total.get(name) ?? 0) + us);
    }
    return us;
  };
  visit(profile.nodes[0].id, new Set());
  const pct = (us: number): number => (100 * us) / busy;
  const functions = [...self.keys()]
    .map((name) => ({ name, area: areaOfName.get(name) ?? '', self: pct(self.get(name) ?? 0), total: pct(total.get(name) ?? 0) }))
    .sort((a, b) => b.self - a.self);
  const byTotal = [...areas].sort((a, b) => b[1] - a[1]).map(([k, v]): [string, number] => [k, pct(v)]);
  return { functions, areas: byTotal, busyMs: busy / 1000 };
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const lib = url.lastIndexOf('/lib/');
  if (url.startsWith('file://') && lib >= 0) return url.slice(lib + 1);
  return url;
}

function areaOf(functionName: string, url: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm !== null) return nm[1];
  // node:_http_server → node:http, node:internal/streams/readable → node:streams
  if (url.startsWith('node:')) return `node:${url.slice(5).replace(/^internal\//, '').split('/')[0].replace(/^_/, '').split('_')[0]}`;
  if (url.startsWith('file://')) return 'galaxy-gie-proxy (lib/)';
  return url;
}

function main(): void {
  const [file, count = '25'] = process.argv.slice(2);
  if (file === undefined) {
    process.stderr.write('usage: node --import tsx test/bench/profile-top.ts <file.cpuprofile | dir> [count]\n');
    process.exit(2);
  }
  const { file: read, functions, areas, busyMs } = busiest(file);
  const n = Number(count);
  const rows = (list: FunctionTime[]): string[][] => list.slice(0, n).map((f) => [fmt(f.self, 1), fmt(f.total, 1), f.name]);
  process.stdout.write(`${read}: ${fmt(busyMs / 1000, 1)} s busy (percentages of busy time)\n\nby self time:\n`);
  process.stdout.write(`${table(['self %', 'total %', 'function'], rows(functions))}\n\nby total time:\n`);
  const byTotalTime = [...functions].filter((f) => !f.name.startsWith('(')).sort((a, b) => b.total - a.total);
  process.stdout.write(`${table(['self %', 'total %', 'function'], rows(byTotalTime))}\n\nself time by area:\n`);
  process.stdout.write(`${table(['self %', 'area'], areas.slice(0, n).map(([name, pct]) => [fmt(pct, 1), name]))}\n`);
  // What a proxy adds to what any http-proxy process pays: everything but
  // http-proxy itself, Node's HTTP, sockets and streams, native code and GC.
  const outside = functions.filter((f) => !CORE_AREAS.has(f.area));
  process.stdout.write(`\noutside http-proxy and Node's HTTP, sockets and streams (${fmt(outside.reduce((sum, f) => sum + f.self, 0), 1)} % in all), by self time:\n`);
  process.stdout.write(`${table(['self %', 'total %', 'function', 'area'], outside.slice(0, n).map((f) => [fmt(f.self, 1), fmt(f.total, 1), f.name, f.area]))}\n`);
}

/** The profile in `path`, or the busiest of the profiles in the directory `path`. */
function busiest(path: string): ReturnType<typeof summarise> & { file: string } {
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((name) => name.endsWith('.cpuprofile'))
        .map((name) => join(path, name))
    : [path];
  const summaries = files.map((file) => ({ file, ...summarise(JSON.parse(readFileSync(file, 'utf8')) as Profile) }));
  const best = summaries.sort((a, b) => b.busyMs - a.busyMs)[0];
  if (best === undefined) throw new Error(`no .cpuprofile in ${path}`);
  return best;
}

/** The areas every http-proxy process pays for alike (see areaOf). */
const CORE_AREAS = new Set(['http-proxy', 'node:http', 'node:net', 'node:streams', 'node:stream', '(native)', '(program)', '(garbage collector)', '(idle)']);

main();
