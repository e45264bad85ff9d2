// A service's life around its database's faults: a start that waits for an unreachable database (health served,
// not ready, calls UNAVAILABLE) and gives up after its start timeout; readiness that follows the database; a
// stop that ends within its grace period while the database is frozen.
import { systemClock } from '@billing/kit/clock';
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

function start(port: number, options: { databaseStartTimeoutMs?: number; shutdownGraceMs?: number } = {}) {
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
    const grace = new Promise((resolve) => setTimeout(resolve, 1_500 + 2_000, 'still running')).then(() => 'late');
    expect(await Promise.race([stopped, grace])).toBe('stopped');
    expect(await stuck).not.toBe('ok');
  } finally {
    postgres.thaw();
    await postgres.stop();
  }
});
