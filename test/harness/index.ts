// What integration and end-to-end tests use to stand up real services on real PostgreSQL and NATS.
import type { EventBus } from '@billing/kit/bus';
import type { Clock } from '@billing/kit/clock';
import { systemClock } from '@billing/kit/clock';
import { type RunningService, runService, type ServiceDefinition } from '@billing/kit/runtime';
import { pino } from 'pino';
import { createTestDatabase, type TestDatabase } from './postgres.ts';

export * from './nats.ts';
export * from './postgres.ts';

/** A logger for tests: silent unless TEST_LOG_LEVEL is set. */
export const testLogger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

/** A service running on its own fresh PostgreSQL database. */
export interface TestService extends RunningService {
  /** Its database. */
  database: TestDatabase;
  /** Base URL for clients. */
  baseUrl: string;
  /** Stops the service and drops its database. */
  destroy(): Promise<void>;
}

/** Starts a service on a fresh database and an ephemeral port. */
export async function startTestService(
  definition: ServiceDefinition,
  options: { bus: EventBus; clock?: Clock },
): Promise<TestService> {
  const database = await createTestDatabase(definition.name);
  const running = await runService(definition, {
    host: '127.0.0.1',
    port: 0,
    databaseUrl: database.url,
    bus: options.bus,
    logger: testLogger,
    clock: options.clock ?? systemClock,
    shutdownGraceMs: 5_000,
  });
  return {
    ...running,
    database,
    baseUrl: `http://127.0.0.1:${running.port}`,
    async destroy() {
      await running.stop();
      await database.drop();
    },
  };
}
