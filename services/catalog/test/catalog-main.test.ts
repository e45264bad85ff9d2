// The catalog process as operators run it: a bad setting stops it with one line naming the setting, and
// `main.ts migrate` applies the migrations and exits.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createTestDatabase, type TestDatabase } from '@billing/test/harness';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import pg from 'pg';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const run = promisify(execFile);
let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase('main');
});

afterAll(async () => {
  await database.drop();
});

const env = (extra: Record<string, string>) => ({ ...process.env, NODE_OPTIONS: '', LOG_LEVEL: 'warn', ...extra });

test('a malformed setting stops the service with one line naming it', async () => {
  const failure = await run(process.execPath, [MAIN], { env: env({ CATALOG_PORT: 'seventy' }) }).catch(
    (err: { code: number; stderr: string }) => err,
  );
  expect(failure).toMatchObject({ code: 78 });
  expect((failure as { stderr: string }).stderr.trim().split('\n')).toEqual([
    'configuration error: CATALOG_PORT: expected a port number 0-65535, got "seventy"',
  ]);
});

test('`main.ts migrate` applies the migrations and exits', async () => {
  await run(process.execPath, [MAIN, 'migrate'], { env: env({ CATALOG_DATABASE_URL: database.url }) });
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  const { rows } = await client.query<{ name: string }>('select name from mikro_orm_migrations order by id');
  const tables = await client.query<{ n: string }>(
    "select count(*) as n from information_schema.tables where table_name in ('plan', 'plan_version', 'outbox_event')",
  );
  await client.end();
  expect(rows.map((r) => r.name)).toEqual(['0000_kit', '0001_catalog']);
  expect(Number(tables.rows[0]?.n)).toBe(3);
});
