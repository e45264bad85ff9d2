// The ORM's own statements reach PostgreSQL with bound parameters: the text holds `$n`, the values travel
// beside it, and whatever a value holds (quotes, backslashes, question marks, JSON) comes back unchanged.
import { createTestDatabase, type TestDatabase, testLogger, waitFor } from '@billing/test/harness';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { defineEntity, p, raw } from '@mikro-orm/core';
import pg from 'pg';
import { bindParameters } from '../src/bound-parameters.ts';
import { type Database, openDatabase, queryBound } from '../src/db.ts';

const NoteRow = defineEntity({
  name: 'NoteRow',
  tableName: 'note',
  properties: {
    id: p.string().primary(),
    body: p.json<Record<string, unknown>>(),
    count: p.bigint(),
    writtenAt: p.datetime(),
  },
});

let database: TestDatabase;
let db: Database;
// Every statement the pg driver sends, inside transactions or not: its text and its values.
const sent: { sql: string; parameters: unknown[] }[] = [];
const query = pg.Client.prototype.query;
beforeAll(() => {
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const [text, values] = args;
    if (typeof text === 'string') sent.push({ sql: text, parameters: Array.isArray(values) ? values : [] });
    return (query as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof query;
});
afterAll(() => {
  pg.Client.prototype.query = query;
});

beforeAll(async () => {
  database = await createTestDatabase('bound_parameters');
  db = await openDatabase({
    service: 'notes',
    url: database.url,
    entities: [NoteRow],
    migrations: [
      {
        name: '0001_note',
        statements: [
          'create table note (id text primary key, body jsonb not null, count bigint not null, written_at timestamptz not null)',
        ],
      },
    ],
    logger: testLogger,
  });
  await db.migrate();
});

afterAll(async () => {
  await db.close();
  await database.drop();
});

const awkward = `o'hara \\ "x" ? ?? \\? $1 --`;

test('an entity read sends its condition as a bound value', async () => {
  sent.length = 0;
  expect(await db.fork().findOne(NoteRow, { id: awkward })).toBeNull();
  const select = sent.find((q) => q.sql.startsWith('select'));
  expect(select?.sql).toContain('where "n0"."id" = $1');
  expect(select?.sql).not.toContain('hara');
  expect(select?.parameters).toEqual([awkward]);
});

test('what an entity write binds comes back unchanged', async () => {
  const writtenAt = new Date('2026-12-07T10:11:12.345Z');
  const body = { text: awkward, nested: { list: [1, 'two', null] } };
  await db.transaction(async (em) => {
    em.create(NoteRow, { id: awkward, body, count: 9_007_199_254_740_993n, writtenAt });
  });
  const row = await db.fork().findOneOrFail(NoteRow, { id: { $in: [awkward, 'other'] } });
  expect(row).toMatchObject({ id: awkward, body, count: 9_007_199_254_740_993n, writtenAt });
  const select = sent.findLast((q) => q.sql.startsWith('select'));
  expect(select?.sql).toContain('in ($1, $2)');
  expect(select?.parameters).toEqual([awkward, 'other']);
  const insert = sent.find((q) => q.sql.startsWith('insert into "note"'));
  expect(insert?.sql).toContain('values ($1, $2, $3, $4)');
  expect(insert?.sql).not.toContain('hara');
  expect(insert?.parameters).toEqual([awkward, JSON.stringify(body), '9007199254740993', writtenAt]);
});

test('an update inside a transaction sends its values bound', async () => {
  sent.length = 0;
  await db.transaction(async (em) => {
    const row = await em.findOneOrFail(NoteRow, { id: awkward });
    row.body = { text: 'changed?' };
  });
  const update = sent.find((q) => q.sql.startsWith('update "note"'));
  expect(update?.sql).toMatch(/set "body" = \$1 where "id" = \$2/);
  expect(update?.parameters).toEqual([JSON.stringify({ text: 'changed?' }), awkward]);
});

test('a statement of more values than PostgreSQL can bind still runs, as MikroORM formats it', async () => {
  const ids = Array.from({ length: 70_000 }, (_, i) => `id-${i}`);
  expect(await db.fork().count(NoteRow, { id: { $in: [...ids, awkward] } })).toBe(1);
});

test("a statement keeps MikroORM's abort signal", async () => {
  // The signal is raised once the statement runs; without it the statement would sleep its 30 seconds and resolve.
  const controller = new AbortController();
  const em = db.orm.em.fork({
    signal: controller.signal,
    inflightQueryAbortStrategy: 'cancel query',
  }) as typeof db.orm.em;
  const sleeping = em.execute("select pg_sleep(30), 'abortable'");
  const running = () =>
    queryBound<{ n: number }>(
      db.fork(),
      `select count(*)::int as n from pg_stat_activity where query like $1 and state = 'active'`,
      ["%pg_sleep(30), 'abortable'%"],
    );
  await waitFor(running, (rows) => (rows[0]?.n ?? 0) > 0);
  controller.abort();
  await expect(sleeping).rejects.toThrow();
  // With 'cancel query' PostgreSQL stops the statement too, so it holds no connection after the test.
  await waitFor(running, (rows) => (rows[0]?.n ?? 0) === 0);
});

test('MikroORM placeholder syntax: values, identifiers, escaped marks, lists, objects, raw fragments', () => {
  const quote = (id: string) => `"${id}"`;
  expect(
    bindParameters(
      'select ?? from t where a = ? and b in (?) and c = ? and d \\? e',
      ['x', 'v', [1, 'w'], { k: 1 }],
      quote,
    ),
  ).toEqual({
    text: 'select "x" from t where a = $1 and b in (1, $2) and c = $3 and d ? e',
    values: ['v', 'w', '{"k":1}'],
  });
  expect(bindParameters('? and ? and ?', [null, true, 12n], quote)).toEqual({
    text: 'null and true and $1',
    values: ['12'],
  });
  expect(bindParameters('where a = ? and b = ?', [raw('lower(?)', ['A']), 'B'], quote)).toEqual({
    text: 'where a = lower($1) and b = $2',
    values: ['A', 'B'],
  });
});
