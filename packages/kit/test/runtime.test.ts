// A service whose start fails half-way closes what it had opened, so that its process can exit.
import { systemClock } from '@billing/kit/clock';
import { createMemoryBus } from '@billing/kit/memory-bus';
import { runService, type ServiceDefinition } from '@billing/kit/runtime';
import { createTestDatabase, testLogger } from '@billing/test/harness';
import { expect, test } from '@jest/globals';
import pg from 'pg';

test('a failed start closes the database connections it opened', async () => {
  const database = await createTestDatabase('runtime');
  const bus = createMemoryBus();
  const failing: ServiceDefinition = {
    name: 'failing',
    defaultPort: 0,
    entities: [],
    migrations: [],
    services: [],
    routes() {},
    async start() {
      throw new Error('cannot start');
    },
  };
  try {
    await expect(
      runService(failing, {
        host: '127.0.0.1',
        port: 0,
        databaseUrl: database.url,
        bus,
        logger: testLogger,
        clock: systemClock,
      }),
    ).rejects.toThrow('cannot start');
    const admin = new pg.Client({ connectionString: database.url.replace(/\/[^/]+$/, '/postgres') });
    await admin.connect();
    try {
      const rows = await admin.query('select count(*)::int as n from pg_stat_activity where datname = $1', [
        database.name,
      ]);
      expect(rows.rows[0]?.n).toBe(0);
    } finally {
      await admin.end();
    }
  } finally {
    await bus.close();
    await database.drop();
  }
});
