// A process whose port is in use stops before it opens anything: one line naming the port and its setting,
// exit code 69, and no database created. A service alone binds its port first; `pnpm start` binds every
// service's port before the first opens its database, so the last port in use is the telling case. An address
// it cannot listen on at all (an interface that is not this machine's) stops it alike, with one line naming
// the host and port settings and exit code 71.
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
  expect([outcome.code, outcome.signal]).toEqual([69, null]);
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
  expect([outcome.code, outcome.signal]).toEqual([69, null]);
  expect(outcome.stderr.trim().split('\n')).toEqual([`USAGE_PORT=${occupied.port}: the port is already in use`]);
  expect(outcome.stdout).toBe('');
  for (const dataDir of Object.values(dataDirs)) expect(existsSync(dataDir)).toBe(false);
});

test('a service whose host is not an address of this machine stops with one line naming host and port, exit code 71, and no database', async () => {
  const dataDir = join(dir, 'catalog-elsewhere');
  // 192.0.2.1 is reserved for documentation (RFC 5737): no machine has it.
  const outcome = await runNodeScript(CATALOG_MAIN, [], {
    NATS_URL: '',
    CATALOG_HOST: '192.0.2.1',
    CATALOG_PORT: '7101',
    CATALOG_DATA_DIR: dataDir,
  });
  expect([outcome.code, outcome.signal]).toEqual([71, null]);
  expect(outcome.stderr.trim().split('\n')).toEqual([
    'CATALOG_HOST=192.0.2.1 CATALOG_PORT=7101: cannot listen: address not available',
  ]);
  expect(outcome.stdout).toBe('');
  expect(existsSync(dataDir)).toBe(false);
});
