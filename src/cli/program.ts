import { Command, InvalidArgumentError, Option } from 'commander';
import { VERSION } from '../daemon.js';
import {
  acceptAs,
  CLI_ONLY_TABLE,
  ConfigError,
  OPTION_TABLE,
  Refusal,
  resolveOptions,
  type CliOnlyOptions,
  type OptionKey,
  type OptionSpec,
  type ProxyOptions,
} from '../options.js';

/**
 * A program that runs the proxy: the same flags, its own name, description
 * and defaults. The GIE CLI (lib/main.js, bin/galaxy-gie-proxy.js) is one;
 * an Interactive Tools bin differs only in some defaults.
 */
export interface FrontDoor {
  readonly name: string;
  readonly description: string;
  /** Defaults that differ from the option table's. */
  readonly defaults: Partial<ProxyOptions & CliOnlyOptions>;
}

/** The legacy GIE proxy's command line: its flag spellings and defaults. */
export const GIE_FRONT_DOOR: FrontDoor = Object.freeze({
  name: 'galaxy-gie-proxy',
  description: "Routes each Galaxy user's interactive environment (Jupyter, RStudio) by their session cookie.",
  defaults: Object.freeze({}),
});

/**
 * gx-it-proxy's command line (bin/gx-it-proxy.js): no map by default (then
 * header mode), and Interactive Tools routing until the map says otherwise.
 */
export const GX_IT_PROXY_FRONT_DOOR: FrontDoor = Object.freeze({
  name: 'gx-it-proxy',
  description: "Routes Galaxy's Interactive Tools by entry point (path or host); without --sessions, by the x-interactive-tool-host/-port headers.",
  defaults: Object.freeze({ sessionsPath: undefined, interactiveTools: true }),
});

/** Every row of both tables with its key, in `--help` order. */
const ROWS = [...Object.entries(OPTION_TABLE), ...Object.entries(CLI_ONLY_TABLE)] as Array<[OptionKey, OptionSpec<unknown>]>;

function defaultFor(door: FrontDoor, key: OptionKey, row: OptionSpec<unknown>): unknown {
  return Object.hasOwn(door.defaults, key) ? door.defaults[key] : row.default;
}

/** The row's flag as a commander option: parser, check and `--help` line from the table. */
function commanderOption(row: OptionSpec<unknown>, flag: string, defaultValue: unknown): Option {
  const option = new Option(flag, row.help);
  const { kind } = row;
  if (option.isBoolean()) return option;
  option.argParser((text: string) => {
    try {
      return kind.accept(kind.parse === undefined ? text : kind.parse(text));
    } catch (err) {
      if (err instanceof Refusal) throw new InvalidArgumentError(`${err.message}.`);
      throw err;
    }
  });
  if (defaultValue !== undefined && defaultValue !== null) option.default(defaultValue, kind.show?.(defaultValue));
  else if (row.absent !== undefined) option.description = `${row.help} (default: ${row.absent})`;
  return option;
}

/** The command line of `door`, built from the option table. Touches no process state. */
export function buildProgram(door: FrontDoor = GIE_FRONT_DOOR): Command {
  const program = new Command()
    .name(door.name)
    .description(door.description)
    .version(VERSION, '-V, --version', 'output the version number')
    .helpOption('-h, --help', 'display help for command');
  for (const [key, row] of ROWS) {
    if (row.flag !== undefined) program.addOption(commanderOption(row, row.flag, defaultFor(door, key, row)));
  }
  return program
    .showHelpAfterError('(run with --help for usage)')
    .allowExcessArguments(false)
    .exitOverride();
}

/** The flag of an option key, as `--help` shows it (`--cookie <cookiename>`); undefined for API-only options. */
function flagOf(key: string): string | undefined {
  return ROWS.find(([k]) => k === key)?.[1].flag;
}

/**
 * The options and CLI-only values of a parsed program: typed flags over the
 * door's defaults over the table's, each through the CLI step of its kind
 * (relative paths made absolute against the working directory). Throws
 * ConfigError (from resolveOptions) only for a value no flag check caught.
 */
export function optionsFromProgram(program: Command, door: FrontDoor = GIE_FRONT_DOOR): { options: ProxyOptions; cli: CliOnlyOptions } {
  const given = program.opts<Record<string, unknown>>();
  const values: Record<string, unknown> = {};
  for (const [key, row] of ROWS) {
    const typed = row.flag === undefined ? undefined : given[new Option(row.flag).attributeName()];
    const value = typed === undefined ? defaultFor(door, key, row) : typed;
    values[key] = value === undefined || value === null || row.kind.onCommandLine === undefined ? value : row.kind.onCommandLine(value);
  }
  // gx-it-proxy's spelling of --poll-interval wins when given.
  if (values.pollingInterval !== undefined) values.pollIntervalMs = values.pollingInterval;
  const proxy = Object.fromEntries(Object.keys(OPTION_TABLE).map((key) => [key, values[key]])) as unknown as ProxyOptions;
  const cli = Object.fromEntries(Object.entries(CLI_ONLY_TABLE).map(([key, row]) => [key, acceptAs(key, row as OptionSpec<unknown>, values[key])]));
  return { options: resolveOptions(proxy), cli: Object.freeze(cli) as CliOnlyOptions };
}

/**
 * A ConfigError raised for a command line, in commander's words with the
 * flag as `--help` shows it (`option '--port <n>' argument '0' is invalid. …`).
 */
export function commandLineMessage(err: ConfigError): string {
  const flag = flagOf(err.option);
  return flag === undefined
    ? `error: ${err.message}`
    : `error: option '${flag}' argument '${err.value}' is invalid. ${err.reason}.`;
}
