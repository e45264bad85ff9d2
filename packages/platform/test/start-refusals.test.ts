// `pnpm start` refuses settings it cannot run with, in one line and the configuration exit code (78): test
// clocks in production, before opening anything; a demo catalog it cannot use, naming PLATFORM_DEMO_CATALOG,
// before opening anything when the file cannot be read, after stopping the services when the catalog refuses it.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runNodeScript, sparePort } from '@billing/test/harness';
import { afterAll, expect, test } from '@jest/globals';

const PLATFORM_MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'demo-catalog-'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function startWith(demoCatalog: string, dataDir: string, env: Record<string, string> = {}) {
  return runNodeScript(PLATFORM_MAIN, [], {
    ...env,
    NATS_URL: '',
    LOG_LEVEL: 'silent',
    PLATFORM_DATA_DIR: dataDir,
    PLATFORM_DEMO_CATALOG: demoCatalog,
    CATALOG_PORT: String(await sparePort()),
    SUBSCRIPTION_PORT: String(await sparePort()),
    USAGE_PORT: String(await sparePort()),
  });
}

test('a demo catalog that cannot be read stops the start with one line, exit code 78, and no database', async () => {
  const missing = join(dir, 'missing.yaml');
  const dataDir = join(dir, 'unread');
  const outcome = await startWith(missing, dataDir);
  expect(outcome.code).toBe(78);
  expect(outcome.stderr.trim().split('\n')).toEqual([`PLATFORM_DEMO_CATALOG=${missing}: the file cannot be read`]);
  expect(existsSync(dataDir)).toBe(false);
});

test('a demo catalog the catalog refuses stops the start with one line naming the setting, exit code 78', async () => {
  const invalid = join(dir, 'invalid.yaml');
  writeFileSync(invalid, 'features:\n  - key: Not Snake\n    name: x\n    kind: boolean\n');
  const outcome = await startWith(invalid, join(dir, 'refused'));
  expect(outcome.code).toBe(78);
  const lines = outcome.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^PLATFORM_DEMO_CATALOG=${invalid}: .*document\\.features\\[0\\]\\.key`));
});

test('test clocks in production stop the start with one line, exit code 78, and no database', async () => {
  const dataDir = join(dir, 'production');
  const outcome = await startWith(join(dir, 'unused.yaml'), dataDir, {
    SUBSCRIPTION_TEST_CLOCKS: 'true',
    BILLING_ENVIRONMENT: 'production',
  });
  expect(outcome.code).toBe(78);
  expect(outcome.stderr.trim().split('\n')).toEqual([
    'configuration error: SUBSCRIPTION_TEST_CLOCKS: test clocks are refused in production',
  ]);
  expect(existsSync(dataDir)).toBe(false);
});
