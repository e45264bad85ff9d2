// A fresh usage database at the latest schema, for tests that call the store and services directly.
import { type Database, openDatabase } from '@billing/kit/db';
import { createTestDatabase, testLogger } from '@billing/test/harness';
import { USAGE_MIGRATIONS } from '../src/migrations/index.ts';

/** A migrated usage database named after `name`, and how to close and drop it. */
export async function migratedUsageDatabase(name: string): Promise<{ db: Database; drop(): Promise<void> }> {
  const database = await createTestDatabase(name);
  const db = await openDatabase({
    service: 'usage',
    url: database.url,
    entities: [],
    migrations: USAGE_MIGRATIONS,
    logger: testLogger,
  });
  await db.migrate();
  return {
    db,
    async drop() {
      await db.close();
      await database.drop();
    },
  };
}
