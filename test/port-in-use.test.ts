// A process whose port is in use stops before it opens anything: one line naming the port and its setting,
// exit code 69, and no database created. A service alone binds its port first; `pnpm start` binds every
// service's port before the first opens its database, so the last port in use is the telling case.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { type OccupiedPort, occupyPort, runNodeScript } from './harness/index.ts';

const CATALOG_MAIN = fileURLToPath(new URL('../services/catalog/src/main.ts', import.meta.url));
const PLATFORM_MAIN = fileURLToPath(new URL('../packages/platform/src/main.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'port-in-use-'));
let occupied: OccupiedPort;

beforeAll(async () => {
  occupied = await occupyPort();
});

afterAll(async () => {
  await occupied.release();
  rmSync(dir, { recursive: true, force: true });
});

test('a service whose port is in use stops with one line naming it, exit code 69, and no database', async () => {
  const dataDir = join(dir, 'catalog-alone');
  const outcome = await runNodeScript(CATALOG_MAIN, [], {
    NATS_URL: '',
    CATALOG_PORT: String(occupied.port),
    CATALOG_DATA_DIR: dataDir,
  });
  expect(outcome.code).toBe(69);
  expect(outcome.stderr.trim().split('\n')).toEqual([`CATALOG_PORT=${occupied.port}: the port is already in use`]);
  expect(outcome.stdout).toBe('');
  expect(existsSync(dataDir)).toBe(false);
});

test('`pnpm start` with its last port in use stops with one line naming it, exit code 69, and no database', async () => {
  const dataDirs = {
    CATALOG_DATA_DIR: join(dir, 'catalog'),
    SUBSCRIPTION_DATA_DIR: join(dir, 'subscription'),
    USAGE_DATA_DIR: join(dir, 'usage'),
  };
  const outcome = await runNodeScript(PLATFORM_MAIN, [], {
    NATS_URL: '',
    CATALOG_PORT: '0',
    SUBSCRIPTION_PORT: '0',
    USAGE_PORT: String(occupied.port),
    ...dataDirs,
  });
  expect(outcome.code).toBe(69);
  expect(outcome.stderr.trim().split('\n')).toEqual([`USAGE_PORT=${occupied.port}: the port is already in use`]);
  expect(outcome.stdout).toBe('');
  for (const dataDir of Object.values(dataDirs)) expect(existsSync(dataDir)).toBe(false);
});
