import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './package.js';

/**
 * The first fenced block of `language` in README.md whose text starts with
 * `startsWith`: the deployment tests run what the README tells admins to use.
 */
export function readmeBlock(language: string, startsWith: string): string {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  for (const match of readme.matchAll(/^```(\S*)\n([\s\S]*?)^```$/gm)) {
    if (match[1] === language && match[2].startsWith(startsWith)) return match[2];
  }
  throw new Error(`README.md has no \`\`\`${language} block starting with ${JSON.stringify(startsWith)}`);
}

/** Replaces every `from` in a README block, failing if the block no longer holds it (README and test must agree). */
export function adapt(block: string, from: string, to: string): string {
  if (!block.includes(from)) throw new Error(`the README block no longer contains ${JSON.stringify(from)}:\n${block}`);
  return block.replaceAll(from, to);
}
