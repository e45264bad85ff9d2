// What integration and end-to-end tests use to stand up real services on real PostgreSQL and NATS.
import type { EventBus } from '@billing/kit/bus';
import type { Clock } from '@billing/kit/clock';
import { systemClock } from '@billing/kit/clock';
import { type Database, queryBound } from '@billing/kit/db';
import { type RunningService, runService, type ServiceDefinition } from '@billing/kit/runtime';
import { type DescMessage, fromBinary, type MessageShape } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { createTestDatabase, type TestDatabase } from './postgres.ts';

export * from './catalog-fixtures.ts';
export * from './nats.ts';
export * from './postgres.ts';
export * from './private-postgres.ts';
export * from './processes.ts';
export * from './rpc-errors.ts';
export * from './service-process.ts';
export * from './wait.ts';

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

/** The events of one type a service recorded in its outbox (of one aggregate, if given), in order, decoded. */
export async function recordedEvents<S extends DescMessage>(
  db: Database,
  event: { type: string; schema: S },
  aggregateId?: string,
): Promise<{ payload: MessageShape<S>; occurredAt: Date; aggregateId: string }[]> {
  const rows = await queryBound<{ payload: Uint8Array; occurred_at: Date | string; aggregate_id: string }>(
    db.fork(),
    `select payload, occurred_at, aggregate_id from outbox_event
      where type = $1 and ($2::text is null or aggregate_id = $2)
      order by aggregate_id, aggregate_seq`,
    [event.type, aggregateId || null],
  );
  return rows.map((r) => ({
    payload: fromBinary(event.schema, new Uint8Array(r.payload)),
    occurredAt: new Date(r.occurred_at),
    aggregateId: r.aggregate_id,
  }));
}
