/** Decimal digits only (leading zeros allowed: `0080` is 80, as Python's int() reads Galaxy's values). */
const PORT_DIGITS = /^\d+$/;

/**
 * The TCP port `text` names: decimal digits only, 1 to 65535; undefined for
 * anything else (a sign, a space, a fraction, 0, 65536). The one check behind
 * every port the proxy reads: flags, map rows, target headers, allow lists
 * and PostgreSQL URLs.
 */
export function tcpPort(text: string): number | undefined {
  if (!PORT_DIGITS.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : undefined;
}
