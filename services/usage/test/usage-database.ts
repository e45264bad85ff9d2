// A fresh usage database at the latest schema, for tests that call the store and services directly.
import { type Database, openDatabase } from '@billing/kit/db';
import { MeterSchema } from '@billing/proto/billing/catalog/v1/resources_pb';
import { createTestDatabase, testLogger } from '@billing/test/harness';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { USAGE_ENTITIES } from '../src/adapter/entities.ts';
import { saveMeter } from '../src/adapter/meter-repository.ts';
import { USAGE_MIGRATIONS } from '../src/migrations/index.ts';

/** A migrated usage database named after `name`, and how to close and drop it. */
export async function migratedUsageDatabase(name: string): Promise<{ db: Database; drop(): Promise<void> }> {
  const database = await createTestDatabase(name);
  const db = await openDatabase({
    service: 'usage',
    url: database.url,
    entities: USAGE_ENTITIES,
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

/** Saves a meter in `db` as the catalog's events would (named by its key when it has no name). */
export async function saveTestMeter(
  db: Database,
  meter: MessageInitShape<typeof MeterSchema>,
  now: Date,
): Promise<void> {
  await db.transaction((em) =>
    saveMeter(em, create(MeterSchema, { ...meter, name: meter.name || meter.key || '' }), now),
  );
}
