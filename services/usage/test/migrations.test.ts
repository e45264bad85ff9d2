// Upgrading a usage database: rollup deltas appended before 0008 (one row per bucket) move to the rollup log,
// and folding them gives the rollups and pending period increments they stood for.
import { type Database, openDatabase, queryBound } from '@billing/kit/db';
import { createTestDatabase, type TestDatabase, testLogger } from '@billing/test/harness';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { compactRollups } from '../src/adapter/rollup-log-repository.ts';
import { USAGE_MIGRATIONS } from '../src/migrations/index.ts';

let database: TestDatabase;
const opened: Database[] = [];

async function migrated(count: number): Promise<Database> {
  const db = await openDatabase({
    service: 'usage',
    url: database.url,
    entities: [],
    migrations: USAGE_MIGRATIONS.slice(0, count),
    logger: testLogger,
  });
  opened.push(db);
  await db.migrate();
  return db;
}

beforeAll(async () => {
  database = await createTestDatabase('usage_migrations');
});

afterAll(async () => {
  for (const db of opened) await db.close();
  await database.drop();
});

// The latest time is far from 1970, where converting milliseconds with a fraction (to_timestamp) is 1 µs off.
test('0008 moves appended rollup deltas to the rollup log, and folding them counts each once', async () => {
  const before = USAGE_MIGRATIONS.findIndex((m) => m.name === '0008_rollup_log');
  const old = await migrated(before);
  await old.transaction((em) =>
    queryBound(
      em,
      `insert into usage_rollup_delta (meter_key, customer_external_id, group_key, minute, aggregation, value,
         event_count, latest_time, latest_event_id, period_start, period_end, subscription_id, period_closed,
         late_event_ids, ingested_at) values
       ('m_sum', 'acme', '[]', '2026-03-04T10:15:00Z', 'sum', 2.5, 2, null, null,
        '2026-03-01T00:00:00Z', '2026-04-01T00:00:00Z', 'sub-1', false, '[]', '2026-03-04T10:16:00Z'),
       ('m_sum', 'acme', '[]', '2026-03-04T10:15:00Z', 'sum', 1.25, 1, null, null,
        '2026-02-01T00:00:00Z', '2026-03-01T00:00:00Z', 'sub-1', true, '["late-1"]', '2026-03-04T10:17:00Z'),
       ('m_latest', 'zeta', '["eu"]', '1850-03-04T11:59:00Z', 'latest', 7, 3, '1850-03-04T11:59:30.853Z', 'e-9',
        null, null, null, false, '[]', '2026-03-04T12:00:00Z')`,
      [],
    ),
  );
  const db = await migrated(USAGE_MIGRATIONS.length);
  const log = await db.transaction((em) =>
    queryBound<{ n: string }>(em, 'select count(*) as n from usage_rollup_log', []),
  );
  expect(log[0]?.n).toBe('1');
  await db.transaction((em) => compactRollups(em, 10));
  const rollups = await db.transaction((em) =>
    queryBound<{ meter_key: string; hour: Date }>(
      em,
      // Microseconds as text: a Date would round them away.
      `select meter_key, customer_external_id, group_key, hour, value::text as value, event_count,
              to_char(latest_time at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') as latest_time, latest_event_id
         from usage_rollup order by meter_key`,
      [],
    ),
  );
  expect(rollups.map((r) => ({ ...r, hour: new Date(r.hour).toISOString() }))).toEqual([
    {
      meter_key: 'm_latest',
      customer_external_id: 'zeta',
      group_key: '["eu"]',
      hour: '1850-03-04T11:00:00.000Z',
      value: '7',
      event_count: '3',
      latest_time: '1850-03-04T11:59:30.853000',
      latest_event_id: 'e-9',
    },
    {
      meter_key: 'm_sum',
      customer_external_id: 'acme',
      group_key: '[]',
      hour: '2026-03-04T10:00:00.000Z',
      value: '3.75',
      event_count: '3',
      latest_time: null,
      latest_event_id: null,
    },
  ]);
  const pending = await db.transaction((em) =>
    queryBound<{ period_start: Date; last_ingest_at: Date }>(
      em,
      `select period_start, value::text as value, event_count, subscription_id, period_closed, late_event_ids,
              last_ingest_at from usage_pending_delta order by period_start`,
      [],
    ),
  );
  // Every moved delta was ingested, as far as the log knows, with the last of them.
  expect(
    pending.map((p) => ({
      ...p,
      period_start: new Date(p.period_start).toISOString(),
      last_ingest_at: new Date(p.last_ingest_at).toISOString(),
    })),
  ).toEqual([
    {
      period_start: '2026-02-01T00:00:00.000Z',
      value: '1.25',
      event_count: '1',
      subscription_id: 'sub-1',
      period_closed: true,
      late_event_ids: ['late-1'],
      last_ingest_at: '2026-03-04T12:00:00.000Z',
    },
    {
      period_start: '2026-03-01T00:00:00.000Z',
      value: '2.5',
      event_count: '2',
      subscription_id: 'sub-1',
      period_closed: false,
      late_event_ids: [],
      last_ingest_at: '2026-03-04T12:00:00.000Z',
    },
  ]);
});

test('0009 keys published values by subscription: earlier rows take the newest subscription whose period starts there', async () => {
  const before = USAGE_MIGRATIONS.findIndex((m) => m.name === '0009_published_value_per_subscription');
  const database = await createTestDatabase('usage_migrations_0009');
  const open = (count: number) =>
    openDatabase({
      service: 'usage',
      url: database.url,
      entities: [],
      migrations: USAGE_MIGRATIONS.slice(0, count),
      logger: testLogger,
    });
  const old = await open(before);
  try {
    await old.migrate();
    await old.transaction(async (em) => {
      await queryBound(
        em,
        `insert into billing_period (subscription_id, period_start, period_end, customer_external_id) values
           ('sub-a', '2026-03-01T00:00:00Z', '2026-04-01T00:00:00Z', 'acme'),
           ('sub-b', '2026-03-01T00:00:00Z', '2026-04-01T00:00:00Z', 'acme')`,
        [],
      );
      await queryBound(
        em,
        `insert into usage_published_value (customer_external_id, meter_key, period_start, value, event_count) values
           ('acme', 'm', '2026-03-01T00:00:00Z', 5, 1), ('acme', 'm', '2026-02-01T00:00:00Z', 2, 1)`,
        [],
      );
    });
  } finally {
    await old.close();
  }
  const upgraded = await open(USAGE_MIGRATIONS.length);
  try {
    await upgraded.migrate();
    const rows = await upgraded.transaction((em) =>
      queryBound<{ value: string; subscription_id: string }>(
        em,
        'select value::text as value, subscription_id from usage_published_value order by period_start',
        [],
      ),
    );
    expect(rows).toEqual([
      { value: '2', subscription_id: '' },
      { value: '5', subscription_id: 'sub-b' },
    ]);
  } finally {
    await upgraded.close();
    await database.drop();
  }
});
