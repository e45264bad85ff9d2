// Services of one process that keep their embedded data in the same folder share one PGlite cluster, each in the
// schema named after it: their tables, migrations and kit tables stay apart, PGlite's one session serialises
// them without mixing their statements, and the cluster outlives each service but the last.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Database, openDatabase, queryBound } from '@billing/kit/db';
import type { SqlMigration } from '@billing/kit/migration';
import { testLogger } from '@billing/test/harness';
import { afterAll, expect, test } from '@jest/globals';

const root = mkdtempSync(join(tmpdir(), 'kit-embedded-'));

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

// The same migration in both services: each gets its own `item` table.
const ITEM: SqlMigration = { name: '0001_item', statements: ['create table item (name text primary key)'] };

function open(service: string, dataDir: string): Promise<Database> {
  return openDatabase({ service, dataDir, entities: [], migrations: [ITEM], logger: testLogger });
}

async function items(db: Database): Promise<string[]> {
  const rows = await queryBound<{ name: string }>(db.fork(), 'select name from item order by name', []);
  return rows.map((r) => r.name);
}

async function addItem(db: Database, name: string): Promise<void> {
  await db.transaction((em) => queryBound(em, 'insert into item (name) values ($1)', [name]));
}

async function schemasHolding(db: Database, table: string): Promise<string[]> {
  const rows = await queryBound<{ schema: string }>(
    db.fork(),
    'select table_schema as schema from information_schema.tables where table_name = $1 order by 1',
    [table],
  );
  return rows.map((r) => r.schema);
}

/** Opens the services alpha and beta on one folder, runs `work` and closes both. */
async function withAlphaAndBeta(folder: string, work: (alpha: Database, beta: Database) => Promise<void>) {
  const alpha = await open('alpha', join(root, folder));
  const beta = await open('beta', join(root, folder));
  try {
    await work(alpha, beta);
  } finally {
    await alpha.close();
    await beta.close();
  }
}

test('services sharing a folder keep their tables, migrations and kit tables in schemas of their own', async () => {
  await withAlphaAndBeta('apart', async (alpha, beta) => {
    expect(await alpha.migrate()).toEqual(['0000_kit', '0001_item']);
    expect(await beta.migrate()).toEqual(['0000_kit', '0001_item']);
    await addItem(alpha, 'from alpha');
    await addItem(beta, 'from beta');

    expect(await items(alpha)).toEqual(['from alpha']);
    expect(await items(beta)).toEqual(['from beta']);
    for (const table of ['item', 'outbox_event', 'idempotency_key', 'processed_event', 'mikro_orm_migrations']) {
      expect(await schemasHolding(alpha, table)).toEqual(['alpha', 'beta']);
    }
  });
});

test('a statement of one service waits for the transaction another has open, then runs on its own schema', async () => {
  await withAlphaAndBeta('turns', async (alpha, beta) => {
    await alpha.migrate();
    await beta.migrate();
    await addItem(beta, 'from beta');
    const order: string[] = [];
    let betaRead: Promise<string[]> | undefined;
    await alpha.transaction(async (em) => {
      await queryBound(em, 'insert into item (name) values ($1)', ['from alpha']);
      betaRead = items(beta).then((names) => {
        order.push('beta read');
        return names;
      });
      await queryBound(em, 'select count(*) from item', []);
      order.push('alpha committing');
    });
    expect(await betaRead).toEqual(['from beta']);
    expect(order).toEqual(['alpha committing', 'beta read']);
  });
});

test('the cluster stays open for the services left, and keeps every schema after the last closes', async () => {
  const dir = join(root, 'kept');
  const alpha = await open('alpha', dir);
  const beta = await open('beta', dir);
  await alpha.migrate();
  await beta.migrate();
  await addItem(alpha, 'kept by alpha');
  await alpha.close();
  await addItem(beta, 'kept by beta');
  expect(await items(beta)).toEqual(['kept by beta']);
  await beta.close();

  const reopened = await open('alpha', dir);
  try {
    expect(await reopened.migrate()).toEqual([]);
    expect(await items(reopened)).toEqual(['kept by alpha']);
  } finally {
    await reopened.close();
  }
});

test('a service opens a folder once in a process', async () => {
  const dir = join(root, 'once');
  const alpha = await open('alpha', dir);
  try {
    await expect(open('alpha', dir)).rejects.toThrow(
      `the alpha service is already open on the embedded database in ${dir}`,
    );
  } finally {
    await alpha.close();
  }
});
