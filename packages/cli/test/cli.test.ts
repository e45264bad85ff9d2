// `billing catalog apply` against a real catalog service, as an operator runs it.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { catalogService } from '@billing/catalog';
import { createMemoryBus } from '@billing/kit/memory-bus';
import { startTestService, type TestService } from '@billing/test/harness';
import { afterAll, beforeAll, expect, test } from '@jest/globals';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const EXAMPLE = fileURLToPath(new URL('../../../examples/catalog.yaml', import.meta.url));
const run = promisify(execFile);
const bus = createMemoryBus();
const dir = mkdtempSync(join(tmpdir(), 'cli-'));
let service: TestService;

beforeAll(async () => {
  service = await startTestService(catalogService, { bus });
});

afterAll(async () => {
  await service.destroy();
  await bus.close();
  rmSync(dir, { recursive: true, force: true });
});

async function billing(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, NODE_OPTIONS: '', BILLING_CATALOG_URL: service.baseUrl };
  try {
    const { stdout, stderr } = await run(process.execPath, [MAIN, ...args], { env });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('a dry run lists the changes, applying makes them, and a second apply has nothing to do', async () => {
  const dry = await billing('catalog', 'apply', EXAMPLE, '--dry-run');
  expect(dry.code).toBe(0);
  expect(dry.stdout.split('\n').filter(Boolean)).toEqual([
    'dry run: these changes would be made:',
    '  create meter build_minutes',
    '  create meter api_calls',
    '  create feature private_repos',
    '  create feature build_minutes',
    '  create feature api_calls',
    '  create feature support_tier',
    '  add plan team v1',
    '  add plan business v1',
    '  upsert add-on build_minutes_pack',
  ]);
  const applied = await billing('catalog', 'apply', EXAMPLE);
  expect(applied.stdout.split('\n')[0]).toBe('applied:');
  expect((await billing('catalog', 'apply', EXAMPLE)).stdout.trim()).toBe(
    'the catalog already matches the document: nothing to do',
  );
});

test('an invalid document exits 1 and names every offending field', async () => {
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, 'plans:\n  - key: pro\n    name: Pro\n    interval: weekly\n    currencies: [usd]\n');
  const result = await billing('catalog', 'apply', file);
  expect(result.code).toBe(1);
  expect(result.stderr).toContain('document.plans[0].interval: must be one of month, quarter, year');
  expect(result.stderr).toContain('invalid_argument');
});

test('a wrong command prints the usage and exits 2', async () => {
  const result = await billing('catalog', 'publish');
  expect(result.code).toBe(2);
  expect(result.stderr).toContain('usage:');
});

test('`events parked` and `events republish` speak to any service through its AdminService', async () => {
  expect((await billing('events', 'parked', '--service', service.baseUrl)).stdout.trim()).toBe('no parked events');
  // The apply of the first test recorded 9 events (meters, features, plans, add-on) in the catalog's outbox.
  const republished = await billing(
    'events',
    'republish',
    '--since',
    '2000-01-01T00:00:00Z',
    '--service',
    service.baseUrl,
  );
  expect(republished.stdout.trim()).toBe('9 events will be published again');
  const bad = await billing('events', 'republish', '--since', 'yesterday', '--service', service.baseUrl);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain('--since: not a time');
});
