// A database that cannot be reached when a service starts. The service listens at once, answers liveness SERVING
// and readiness NOT_SERVING (every other call UNAVAILABLE), retries, and serves once the database comes up. Past
// DATABASE_START_TIMEOUT, whether nothing listens on the database's port or the server there is frozen, it exits
// with one line and code 75 (EX_TEMPFAIL), and no line it wrote carries the password of its database URL.
import { UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import {
  outcome,
  type PrivatePostgres,
  privatePostgres,
  type ServiceExit,
  type ServiceProcess,
  sparePort,
  spawnServiceProcess,
  startServiceProcess,
} from '@billing/test/harness';
import { Code, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { readUntil } from './observe.ts';
import { DATABASE_PASSWORD, healthOf, withCredentials } from './platform.ts';

/** EX_TEMPFAIL: the database could not be reached at start. */
const EXIT_DATABASE_UNREACHABLE = 75;
/** DATABASE_START_TIMEOUT of the services that are to give up. */
const START_TIMEOUT_MS = 2_000;
/** What a process that gives up may take past its start timeout to exit, on a loaded machine. */
const EXIT_MARGIN_MS = 8_000;

let postgres: PrivatePostgres;
const started: ServiceProcess[] = [];

beforeAll(async () => {
  postgres = await privatePostgres();
  await postgres.start();
  await postgres.createDatabase('usage');
  await postgres.stop();
}, 60_000);

afterAll(async () => {
  await Promise.all(started.map((p) => p.kill()));
  await postgres?.destroy();
});

/** Usage alone (the in-process bus) on `databaseUrl`, with small database timeouts. */
const usageEnvironment = (databaseUrl: string, startTimeout: string) => ({
  USAGE_DATABASE_URL: databaseUrl,
  NATS_URL: '',
  DATABASE_START_TIMEOUT: startTimeout,
  DATABASE_TIMEOUT: '1s',
  LOG_LEVEL: 'info',
});

/** Everything a process wrote, stdout and stderr, line by line. */
const everyLine = (p: ServiceProcess) => [...p.stdout, ...p.stderr];

test('a service whose database is down at start reports not ready, answers UNAVAILABLE, and serves once the database is up', async () => {
  const usage = await startServiceProcess(
    'usage',
    usageEnvironment(withCredentials(postgres.url('usage'), 'postgres', DATABASE_PASSWORD), '60s'),
  );
  started.push(usage);
  const health = healthOf(usage.baseUrl);
  const client = createClient(UsageService, createGrpcTransport({ baseUrl: usage.baseUrl }));
  const list = () => client.listEvents({ customerExternalId: 'nobody', pageSize: 5 }, { timeoutMs: 10_000 });

  const waiting = await readUntil(
    () => Promise.all([health('liveness'), health('readiness')]),
    ([liveness, readiness]) => liveness === 'SERVING' && readiness === 'NOT_SERVING',
    15_000,
  );
  expect(waiting).toEqual(['SERVING', 'NOT_SERVING']);
  expect(await outcome(list())).toBe(Code.Unavailable);
  expect(usage.running()).toBe(true);

  await postgres.start();
  const ready = await readUntil(
    () => health('readiness'),
    (answer) => answer === 'SERVING',
    30_000,
  );
  expect(ready).toBe('SERVING');
  expect(await outcome(list())).toBe('ok');

  const exit = await usage.signal('SIGTERM');
  expect([exit.code, exit.signal]).toEqual([0, null]);
  expect(everyLine(usage).filter((line) => line.includes(DATABASE_PASSWORD))).toEqual([]);
}, 90_000);

/** Checks how a service that gave up on its database ended, and what it wrote. */
function expectGaveUp(usage: ServiceProcess, exit: ServiceExit, spawnedAt: number) {
  expect([exit.code, exit.signal]).toEqual([EXIT_DATABASE_UNREACHABLE, null]);
  expect(exit.at - spawnedAt).toBeLessThan(START_TIMEOUT_MS + EXIT_MARGIN_MS);
  // One line says why it stopped, naming the setting; no stack trace anywhere.
  expect(usage.stderr.filter((line) => line.trim() !== '')).toEqual([expect.stringContaining('USAGE_DATABASE_URL')]);
  expect(everyLine(usage).filter((line) => /^\s+at /.test(line))).toEqual([]);
  expect(everyLine(usage).filter((line) => line.includes(DATABASE_PASSWORD))).toEqual([]);
}

test('a service whose database port refuses connections exits with one line and code 75 past DATABASE_START_TIMEOUT', async () => {
  const nothing = await sparePort();
  const spawnedAt = Date.now();
  const usage = await spawnServiceProcess(
    'usage',
    usageEnvironment(`postgres://billing:${DATABASE_PASSWORD}@127.0.0.1:${nothing}/usage`, `${START_TIMEOUT_MS}ms`),
  );
  started.push(usage);
  const exit = await usage.exitWithin(30_000);
  expect(exit).toBeDefined();
  if (exit) expectGaveUp(usage, exit, spawnedAt);
}, 60_000);

test('a service whose database is frozen at start exits with one line and code 75 past DATABASE_START_TIMEOUT', async () => {
  // Running (whatever the tests before left), then frozen: a new connection is accepted and never answered.
  await postgres.stop();
  await postgres.start();
  postgres.freeze();
  try {
    const spawnedAt = Date.now();
    const usage = await spawnServiceProcess(
      'usage',
      usageEnvironment(withCredentials(postgres.url('usage'), 'postgres', DATABASE_PASSWORD), `${START_TIMEOUT_MS}ms`),
    );
    started.push(usage);
    const exit = await usage.exitWithin(30_000);
    expect(exit).toBeDefined();
    if (exit) expectGaveUp(usage, exit, spawnedAt);
  } finally {
    postgres.thaw();
  }
}, 60_000);
