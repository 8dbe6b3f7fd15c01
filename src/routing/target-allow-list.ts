import { BlockList, isIP, isIPv4, isIPv6 } from 'node:net';
import { tcpPort } from '../tcp-port.js';

/**
 * The containers header mode may connect to (`--header-mode-allow`). Header
 * mode takes its target from the client's `x-interactive-tool-host/-port`
 * headers, so without a list it relays to any host and port anyone names.
 *
 * Each rule is an address, a subnet or a host name, with an optional port:
 * `10.0.0.0/8`, `10.0.0.0/8:8888`, `10.1.2.3:8888`, `::1`, `[fd00::]/8`,
 * `[fd00::]/8:8080`, `[::1]:8080`, `node7.cluster`, `node7.cluster:8888`
 * (an IPv6 address with a port or a subnet goes in brackets).
 * An IP target matches address and subnet rules; a name target matches name
 * rules only, compared without case. Names are never resolved here: a
 * resolution could differ from the one the connection makes.
 */

interface Rule {
  /** An address or subnet rule. */
  readonly ips?: BlockList;
  /** A host name rule, lower case. */
  readonly name?: string;
  /** Only this port; undefined: any port. */
  readonly port?: number;
}

/** Why an allow-list item cannot be used (the CLI names the flag and the item). */
export class AllowListSyntaxError extends Error {
  override readonly name = 'AllowListSyntaxError';
  readonly code = 'ERR_GIE_ALLOW_LIST';
  constructor(
    readonly item: string,
    /** What is wrong with it, without the item. */
    readonly reason: string,
  ) {
    super(`${JSON.stringify(item)} ${reason}`);
  }
}

const NAME = /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$/;

/**
 * True for a host a connection can be made to by name or address: an IPv4
 * or IPv6 literal (without brackets) or a DNS-style name.
 */
export function isUsableHost(host: string): boolean {
  return isIP(host) !== 0 || NAME.test(host);
}

/** A checked list of rules; `allows` is what header mode asks per request. */
export class TargetAllowList {
  private constructor(
    private readonly rules: readonly Rule[],
    /** The items as given, for the start-up log line. */
    readonly items: readonly string[],
  ) {}

  /** Parses the items of `--header-mode-allow`. Throws AllowListSyntaxError. */
  static parse(items: readonly string[]): TargetAllowList {
    return new TargetAllowList(items.map(parseRule), Object.freeze([...items]));
  }

  /** True when header mode may connect to `host` (bracketless for IPv6) on `port`. */
  allows(host: string, port: number): boolean {
    const family = isIP(host);
    const type = family === 6 ? 'ipv6' : 'ipv4';
    const name = family === 0 ? host.toLowerCase().replace(/\.$/, '') : undefined;
    for (const rule of this.rules) {
      if (rule.port !== undefined && rule.port !== port) continue;
      if (family !== 0 && rule.ips?.check(host, type) === true) return true;
      if (name !== undefined && rule.name === name) return true;
    }
    return false;
  }
}

function parseRule(item: string): Rule {
  let address = item.trim();
  let port: number | undefined;
  if (address.startsWith('[')) {
    // [v6], [v6]:port, [v6/n], [v6]/n, [v6/n]:port, [v6]/n:port
    const close = address.indexOf(']');
    if (close < 0) throw new AllowListSyntaxError(item, 'has an opening [ without ]');
    let after = address.slice(close + 1);
    let bits = '';
    const bitsMatch = /^\/\d*/.exec(after);
    if (bitsMatch !== null) {
      bits = bitsMatch[0];
      after = after.slice(bits.length);
    }
    if (after !== '') {
      if (!after.startsWith(':')) throw new AllowListSyntaxError(item, 'has text after ] that is not /bits or :port');
      port = parsePort(item, after.slice(1));
    }
    address = address.slice(1, close) + bits;
    if (!isIPv6(address.split('/')[0] ?? '')) throw new AllowListSyntaxError(item, 'holds no IPv6 address in its brackets');
  } else if (!isIPv6(address.split('/')[0] ?? '')) {
    const colon = address.lastIndexOf(':');
    if (colon >= 0) {
      port = parsePort(item, address.slice(colon + 1));
      address = address.slice(0, colon);
    }
  }
  const slash = address.indexOf('/');
  if (slash >= 0) {
    const base = address.slice(0, slash);
    const bits = address.slice(slash + 1);
    const family = isIP(base);
    const max = family === 6 ? 128 : 32;
    if (family === 0) throw new AllowListSyntaxError(item, 'is a subnet whose address is not an IP address');
    if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) throw new AllowListSyntaxError(item, `has a prefix length that is not 0 to ${max}`);
    const ips = new BlockList();
    ips.addSubnet(base, Number(bits), family === 6 ? 'ipv6' : 'ipv4');
    return { ips, port };
  }
  if (isIPv4(address) || isIPv6(address)) {
    const ips = new BlockList();
    ips.addAddress(address, isIPv6(address) ? 'ipv6' : 'ipv4');
    return { ips, port };
  }
  if (!NAME.test(address)) {
    throw new AllowListSyntaxError(item, 'is not an IP address, a subnet (10.0.0.0/8) or a host name, with an optional :port');
  }
  return { name: address.toLowerCase().replace(/\.$/, ''), port };
}

function parsePort(item: string, text: string): number {
  const port = tcpPort(text);
  if (port === undefined) throw new AllowListSyntaxError(item, 'has a port that is not 1 to 65535');
  return port;
}
