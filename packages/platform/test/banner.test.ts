// The banner of `pnpm start` shows the README's own commands, so following either one, in any order, sends the
// same requests (and a repeat is an idempotent replay, not a conflict).
import { readFileSync } from 'node:fs';
import { expect, test } from '@jest/globals';
import { startBanner } from '../src/banner.ts';

const DEFAULT_PORTS = [
  { name: 'catalog', port: 7101 },
  { name: 'subscription', port: 7102 },
  { name: 'usage', port: 7103 },
];

/** The commands a text shows: its lines that start with pnpm or curl. */
const commands = (text: string) =>
  text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => /^(pnpm|curl) /.test(line));

test('every command of the banner, at the default ports, is one the README shows', () => {
  // The README breaks long commands over lines with a backslash; the banner prints each on one line.
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8').replace(/ \\\n\s*/g, ' ');
  const shown = commands(startBanner(DEFAULT_PORTS));
  expect(shown).toHaveLength(5);
  for (const command of shown) expect(readme).toContain(command);
});

test('with the catalog on another port, the CLI example names the catalog URL', () => {
  const banner = startBanner([{ name: 'catalog', port: 7201 }, ...DEFAULT_PORTS.slice(1)]);
  expect(banner).toContain(
    '  BILLING_CATALOG_URL=http://127.0.0.1:7201 pnpm billing catalog apply examples/catalog.yaml',
  );
});
