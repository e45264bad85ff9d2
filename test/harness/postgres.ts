// Test databases: each test file gets its own, created on the configured PostgreSQL and dropped after, so
// runs and workers never collide.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The server tests use: TEST_DATABASE_URL, or the local one. */
export const TEST_POSTGRES_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A database created for one test file. */
export interface TestDatabase {
  /** Its URL. */
  url: string;
  /** Its name. */
  name: string;
  /** Drops it (closing other sessions first). */
  drop(): Promise<void>;
}

function urlFor(database: string): string {
  const url = new URL(TEST_POSTGRES_URL);
  url.pathname = `/${database}`;
  return url.toString();
}

async function withAdmin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Creates a fresh, empty database named after `label`, the Jest worker and a random suffix. */
export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const worker = process.env.JEST_WORKER_ID ?? '0';
  const name = `t_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_w${worker}_${randomBytes(4).toString('hex')}`;
  await withAdmin((c) => c.query(`create database "${name}"`));
  return {
    url: urlFor(name),
    name,
    drop: () => withAdmin((c) => c.query(`drop database if exists "${name}" with (force)`)).then(() => undefined),
  };
}
