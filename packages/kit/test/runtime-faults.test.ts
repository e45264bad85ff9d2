// A service's life around its database's faults: a start that waits for an unreachable database (health served,
// not ready, calls UNAVAILABLE) and gives up after its start timeout; readiness that follows the database; a
// stop that ends within its grace period while the database is frozen.
import { systemClock } from '@billing/kit/clock';
import { openDatabase, queryBound } from '@billing/kit/db';
import { createMemoryBus } from '@billing/kit/memory-bus';
import {
  DatabaseUnreachableError,
  type RunningService,
  runService,
  type ServiceDefinition,
} from '@billing/kit/runtime';
import { AdminService } from '@billing/proto/billing/admin/v1/admin_service_pb';
import { Health, HealthCheckResponse_ServingStatus as Status } from '@billing/proto/health/v1/health_pb';
import { type PrivatePostgres, privatePostgres, sparePort, testLogger, waitFor } from '@billing/test/harness';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import pg from 'pg';

const definition: ServiceDefinition = {
  name: 'faulty',
  defaultPort: 0,
  entities: [],
  migrations: [],
  services: [],
  routes() {},
};

let postgres: PrivatePostgres;

beforeAll(async () => {
  postgres = await privatePostgres();
});

afterAll(async () => {
  await postgres.destroy();
});

function clients(port: number) {
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` });
  return { health: createClient(Health, transport), admin: createClient(AdminService, transport) };
}

async function status(health: ReturnType<typeof clients>['health'], service: string): Promise<Status | Code> {
  try {
    return (await health.check({ service }, { timeoutMs: 2_000 })).status;
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

async function code(call: Promise<unknown>): Promise<Code | 'ok'> {
  try {
    await call;
    return 'ok';
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

function start(
  port: number,
  options: { databaseStartTimeoutMs?: number; shutdownGraceMs?: number; databaseTimeoutMs?: number } = {},
) {
  return runService(definition, {
    host: '127.0.0.1',
    port,
    databaseUrl: postgres.url(),
    bus: createMemoryBus(),
    logger: testLogger,
    clock: systemClock,
    databaseTimeoutMs: 1_000,
    ...options,
  });
}

test('a start waits for an unreachable database: live, not ready, calls UNAVAILABLE; then it serves', async () => {
  const port = await sparePort();
  const starting = start(port, { databaseStartTimeoutMs: 60_000 });
  const { health, admin } = clients(port);
  await waitFor(
    () => status(health, 'liveness'),
    (s) => s === Status.SERVING,
  );
  expect(await status(health, 'readiness')).toBe(Status.NOT_SERVING);
  expect(await status(health, '')).toBe(Status.NOT_SERVING);
  expect(await code(admin.listParkedEvents({}))).toBe(Code.Unavailable);
  await postgres.start();
  const running = await starting;
  try {
    expect(await status(health, 'readiness')).toBe(Status.SERVING);
    expect(await code(admin.listParkedEvents({}))).toBe('ok');
  } finally {
    await running.stop();
    await postgres.stop();
  }
});

test('a start gives up on a database unreachable for its start timeout, and frees its port', async () => {
  const port = await sparePort();
  await expect(start(port, { databaseStartTimeoutMs: 1_000 })).rejects.toThrow(DatabaseUnreachableError);
  // The port is free again: a second start binds it.
  await postgres.start();
  const running = await start(port);
  await running.stop();
  await postgres.stop();
});

test('a start gives up after its start timeout on a frozen database, however long one database wait may be', async () => {
  await postgres.start();
  postgres.freeze();
  try {
    // Each attempt asks for an answer within what is left of the 1.5 s, not within the 60 s database timeout;
    // past the test's own timeout, this would fail.
    const started = Date.now();
    await expect(start(0, { databaseStartTimeoutMs: 1_500, databaseTimeoutMs: 60_000 })).rejects.toThrow(
      DatabaseUnreachableError,
    );
    expect(Date.now() - started).toBeLessThan(20_000);
  } finally {
    postgres.thaw();
    await postgres.stop();
  }
});

test('readiness follows the database: not ready while it is down, ready again when it is back', async () => {
  await postgres.start();
  const running: RunningService = await start(0);
  const { health } = clients(running.port);
  try {
    await waitFor(
      () => status(health, 'readiness'),
      (s) => s === Status.SERVING,
    );
    await postgres.stop();
    await waitFor(
      () => status(health, 'readiness'),
      (s) => s === Status.NOT_SERVING,
      15_000,
    );
    expect(await status(health, 'liveness')).toBe(Status.SERVING);
    await postgres.start();
    await waitFor(
      () => status(health, 'readiness'),
      (s) => s === Status.SERVING,
      15_000,
    );
  } finally {
    await running.stop();
    await postgres.stop();
  }
});

test('a stop ends within its grace period while the database is frozen under a call', async () => {
  await postgres.start();
  const running = await start(0, { shutdownGraceMs: 1_500 });
  const { admin } = clients(running.port);
  postgres.freeze();
  try {
    const stuck = code(admin.listParkedEvents({}));
    const stopped = running.stop().then(() => 'stopped');
    const grace = new Promise((resolve) => setTimeout(resolve, 1_500 + 2_000, 'late'));
    expect(await Promise.race([stopped, grace])).toBe('stopped');
    expect(await stuck).not.toBe('ok');
  } finally {
    postgres.thaw();
    await postgres.stop();
  }
});

test('a pool busy with slow statements is no database down: the ping answers on a connection of its own', async () => {
  await postgres.start();
  const db = await openDatabase({
    service: 'busy',
    url: postgres.url(),
    entities: [],
    migrations: [],
    logger: testLogger,
    poolSize: 2,
    timeoutMs: 5_000,
  });
  try {
    const busy = [1, 2].map(() => queryBound(db.fork(), 'select pg_sleep(2)', []));
    const admin = new pg.Client({ connectionString: postgres.url() });
    await admin.connect();
    const sleeping = () =>
      admin
        .query<{ n: number }>(
          "select count(*)::int as n from pg_stat_activity where state = 'active' and query = 'select pg_sleep(2)'",
        )
        .then((r) => r.rows[0]?.n);
    // Both slots of the pool are taken.
    await waitFor(sleeping, (n) => n === 2);
    await admin.end();
    expect(await db.ping(1_000)).toBe(true);
    await Promise.all(busy);
  } finally {
    await db.close();
    await postgres.stop();
  }
});
