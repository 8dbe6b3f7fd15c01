import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_ONLY_TABLE, OPTION_TABLE, type OptionSpec } from '../../../src/options.js';
import { REPO_ROOT } from '../../helpers/package.js';

interface ReadmeRow {
  flag: string;
  meaning: string;
  default: string;
}

/** The rows of the `| flag | meaning | default |` table in README.md's "## Command line" section. */
function readmeFlagRows(): ReadmeRow[] {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = /^## Command line\n([\s\S]*?)(?=^## )/m.exec(readme);
  assert.ok(section, 'README.md has a "## Command line" section');
  const lines = section[1].split('\n');
  const header = lines.indexOf('| flag | meaning | default |');
  assert.ok(header >= 0, 'the section has a | flag | meaning | default | table');
  const rows: ReadmeRow[] = [];
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith('|')) break;
    // Split on the cell borders, not on pipes inside code spans (none today, but be strict).
    const cells = line.slice(1, -1).split(' | ').map((cell) => cell.trim());
    assert.equal(cells.length, 3, `a README row with three cells: ${line}`);
    rows.push({ flag: cells[0], meaning: cells[1], default: cells[2] });
  }
  return rows;
}

/** The README's default cell for a row: `` `value` `` (a note may follow), `off` for a switch, `absent` or `none` for no value. */
function defaultMatches(row: OptionSpec<unknown>, cell: string): boolean {
  const value = row.default;
  if (typeof value === 'boolean') return value ? cell === 'on' : cell === 'off';
  if (value === undefined || value === null) return cell.replaceAll('`', '') === (row.absent ?? 'none');
  const text = row.kind.show !== undefined ? row.kind.show(value) : typeof value === 'string' || typeof value === 'number' ? String(value) : JSON.stringify(value);
  return cell.startsWith(`\`${text}\``);
}

const OWN_FLAGS = new Set(['-V, --version', '-h, --help']);

test("README's flag table lists every flag of the option table, spelt as --help shows it, with its default", () => {
  const rows = readmeFlagRows();
  const table = new Map<string, OptionSpec<unknown>>();
  for (const row of [...Object.values(OPTION_TABLE), ...Object.values(CLI_ONLY_TABLE)] as Array<OptionSpec<unknown>>) {
    if (row.flag !== undefined) table.set(row.flag, row);
  }
  const seen = new Set<string>();
  for (const readmeRow of rows) {
    const flag = /^`([^`]+)`$/.exec(readmeRow.flag)?.[1];
    assert.ok(flag !== undefined, `the flag cell is one code span: ${readmeRow.flag}`);
    assert.ok(!seen.has(flag), `${flag} is listed once`);
    seen.add(flag);
    assert.ok(readmeRow.meaning.length > 0, `${flag} has a meaning`);
    if (OWN_FLAGS.has(flag)) continue;
    const row = table.get(flag);
    assert.ok(row, `README flag ${flag} is in the option table`);
    assert.ok(defaultMatches(row, readmeRow.default), `${flag}: README default ${JSON.stringify(readmeRow.default)} vs table ${String(row.default)}`);
  }
  for (const flag of [...table.keys(), ...OWN_FLAGS]) assert.ok(seen.has(flag), `${flag} is in README's flag table`);
  // Same order as --help, so the two read alike.
  assert.deepEqual(
    [...seen].filter((flag) => !OWN_FLAGS.has(flag)),
    [...table.keys()],
  );
});
