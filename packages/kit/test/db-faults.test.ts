// The kit's database under faults of a real PostgreSQL server of the test's own: a crash under load, a frozen
// server, a stopped one. No connection is leaked, no statement hangs past the timeout, closing is bounded, every
// failure answers UNAVAILABLE (reads included), and an outage is logged once when it starts and once when it ends.
// An 'error' event or a rejection nobody handles fails the test run.

import { Writable } from 'node:stream';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { type PrivatePostgres, privatePostgres, reason, rpcError, testLogger, waitFor } from '@billing/test/harness';
import { Code, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { EntitySchema } from '@mikro-orm/core';
import pg from 'pg';
import { pino } from 'pino';
import { type Database, type DatabaseOptions, openDatabase, queryBound } from '../src/db.ts';
import { deadlineInterceptor } from '../src/deadline.ts';
import { errorInterceptor, isDatabaseUnavailable, toConnectError } from '../src/errors.ts';
import { startServer } from '../src/server.ts';

interface Note {
  id: string;
  body: string;
}

const NoteRow = new EntitySchema<Note>({
  name: 'Note',
  tableName: 'note',
  properties: { id: { type: 'string', primary: true }, body: { type: 'string' } },
});

const NOTES = [{ name: '0001_note', statements: ['create table note (id text primary key, body text not null)'] }];

let server: PrivatePostgres;
let databases = 0;

beforeAll(async () => {
  server = await privatePostgres();
  await server.start();
});

afterAll(async () => {
  await server.destroy();
});

/** A fresh, migrated database on the private server. */
async function openNotes(options: Partial<DatabaseOptions> = {}): Promise<Database> {
  const name = `faults_${++databases}`;
  const url = await server.createDatabase(name);
  const db = await openDatabase({
    service: 'notes',
    url,
    entities: [NoteRow],
    migrations: NOTES,
    logger: testLogger,
    poolSize: 4,
    ...options,
  });
  await db.migrate();
  return db;
}

/** The pool's own counts of its connections. */
async function poolCounts(db: Database) {
  const connection = db.orm.em.getConnection() as unknown as {
    getNativeClient(): Promise<{ totalCount: number; idleCount: number; waitingCount: number }>;
  };
  const pool = await connection.getNativeClient();
  return { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount };
}

/** The server's sessions on `database`, from an admin connection of the test's own. */
async function sessions(database: string): Promise<number> {
  const client = new pg.Client({ connectionString: server.url() });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>(
      'select count(*) as n from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
      [database],
    );
    return Number(rows[0]?.n);
  } finally {
    await client.end();
  }
}

/** The name of the database `db` works in. */
async function databaseName(db: Database): Promise<string> {
  const [row] = await queryBound<{ name: string }>(db.fork(), 'select current_database() as name', []);
  return row?.name ?? '';
}

/** Fails with `what` if `promise` has not settled within `ms`: the generous bound of "did not hang". */
function notHanging<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, hung]).finally(() => clearTimeout(timer));
}

/** Runs reads and writes in loops until stopped; counts successes and keeps every failure. */
function load(db: Database, loops: number) {
  const state = { running: true, done: 0, failures: [] as unknown[] };
  let next = 0;
  const work = async (i: number) => {
    while (state.running) {
      try {
        if (i % 2 === 0) {
          await db.fork().find(NoteRow, {}, { limit: 5 });
          await queryBound(db.fork(), 'select count(*) from note', []);
        } else {
          await db.transaction(async (em) => {
            await queryBound(em, 'insert into note (id, body) values ($1, $2)', [`n${i}-${next++}`, 'x']);
            await queryBound(em, 'select pg_sleep(0.005)', []);
          });
        }
        state.done++;
      } catch (err) {
        state.failures.push(err);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  };
  const running = Promise.all(Array.from({ length: loops }, (_, i) => work(i)));
  return {
    state,
    async stop() {
      state.running = false;
      await running;
    },
  };
}

describe('a crash', () => {
  test('under concurrent reads and writes leaves no connection held, and calls succeed after the restart', async () => {
    const db = await openNotes({ timeoutMs: 2_000 });
    const name = await databaseName(db);
    const traffic = load(db, 8);
    try {
      for (let crash = 0; crash < 3; crash++) {
        const before = traffic.state.done;
        await waitFor(
          () => traffic.state.done,
          (done) => done >= before + 20,
        );
        await server.crash();
        await server.start();
      }
      const restarted = traffic.state.done;
      await waitFor(
        () => traffic.state.done,
        (done) => done >= restarted + 50,
      );
    } finally {
      await traffic.stop();
    }
    expect(traffic.state.failures.length).toBeGreaterThan(0);
    expect(traffic.state.failures.filter((err) => !isDatabaseUnavailable(err))).toEqual([]);
    // Every connection the pool counts is idle, back in it, and a live session of the server: none is held by
    // a statement that died with its backend.
    const counts = await poolCounts(db);
    expect(counts).toEqual({ total: counts.idle, idle: counts.idle, waiting: 0 });
    expect(await sessions(name)).toBe(counts.total);
    await db.transaction((em) => queryBound(em, 'insert into note (id, body) values ($1, $2)', ['after', 'y']));
    expect(await db.fork().count(NoteRow, { id: 'after' })).toBe(1);
    await db.close();
  });
});

describe('a frozen server', () => {
  test('answers statements UNAVAILABLE within about the timeout, and close returns while it is frozen', async () => {
    const db = await openNotes({ timeoutMs: 1_000, poolSize: 2 });
    // Two connections open, so that the frozen server holds statements in flight and one waits for the pool.
    await Promise.all([0, 1].map(() => queryBound(db.fork(), 'select pg_sleep(0.05)', [])));
    // And a database with no connection yet, whose first must be made while the server is frozen.
    const fresh = await openDatabase({
      service: 'notes',
      url: server.url(await databaseName(db)),
      entities: [NoteRow],
      migrations: NOTES,
      logger: testLogger,
      timeoutMs: 1_000,
    });
    server.freeze();
    try {
      const calls = [
        db.fork().find(NoteRow, {}),
        queryBound(db.fork(), 'select count(*) from note', []),
        db.transaction((em) => queryBound(em, 'insert into note (id, body) values ($1, $2)', ['frozen', 'z'])),
        queryBound(fresh.fork(), 'select count(*) from note', []),
      ];
      const failures = await notHanging(
        Promise.all(
          calls.map((call) =>
            call.then(
              () => 'answered',
              (err: unknown) => err,
            ),
          ),
        ),
        10_000,
        'a statement on the frozen server',
      );
      expect(failures.map((err) => toConnectError(err, 'billing.notes').code)).toEqual(
        calls.map(() => Code.Unavailable),
      );
      expect(await db.ping(500)).toBe(false);
      await notHanging(
        Promise.all([db.close(1_000), fresh.close(1_000)]),
        10_000,
        'closing while the server is frozen',
      );
    } finally {
      server.thaw();
    }
  });

  test('a statement it never answered drops its connection: after the thaw the pool serves from a new one', async () => {
    const db = await openNotes({ timeoutMs: 1_000, poolSize: 1 });
    const backend = async () => {
      const [row] = await queryBound<{ pid: number }>(db.fork(), 'select pg_backend_pid() as pid', []);
      return row?.pid;
    };
    const before = await backend();
    server.freeze();
    let failure: unknown;
    try {
      failure = await notHanging(
        queryBound(db.fork(), 'select 1', []).then(
          () => undefined,
          (err: unknown) => err,
        ),
        10_000,
        'a statement on the frozen server',
      );
    } finally {
      server.thaw();
    }
    expect(isDatabaseUnavailable(failure)).toBe(true);
    const after = await backend();
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    await db.close();
  });
});

describe('ping', () => {
  test('is true while the database answers and false, without throwing, when it is stopped', async () => {
    const db = await openNotes();
    try {
      expect(await db.ping(2_000)).toBe(true);
      await server.stop();
      expect(await db.ping(2_000)).toBe(false);
    } finally {
      await server.start();
    }
    expect(await waitFor(() => db.ping(2_000), Boolean)).toBe(true);
    await db.close();
  });

  test('an embedded database answers it too', async () => {
    const db = await openDatabase({
      service: 'notes',
      dataDir: 'memory://',
      entities: [NoteRow],
      migrations: NOTES,
      logger: testLogger,
    });
    await db.migrate();
    expect(await db.ping(5_000)).toBe(true);
    await db.close();
  });
});

/** A logger writing to memory, at debug: the lines it wrote, parsed. */
function capturedLogger() {
  const lines: { level: number; msg: string; [key: string]: unknown }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

describe('an outage seen through a server', () => {
  test('reads answer UNAVAILABLE, and the outage is logged once when it starts and once when it ends', async () => {
    const { logger, lines } = capturedLogger();
    const db = await openNotes({ logger, timeoutMs: 2_000 });
    const rpc = await startServer({
      host: '127.0.0.1',
      port: 0,
      services: [CatalogService],
      logger,
      interceptors: [errorInterceptor('billing.notes', logger, { outage: db.outage }), deadlineInterceptor(logger)],
      routes(router) {
        router.service(CatalogService, {
          // Reads of each kind: an entity read, a count, and SQL of the service's own.
          async getFeature(req) {
            if (req.key === 'entity') await db.fork().find(NoteRow, {});
            else if (req.key === 'count') await db.fork().count(NoteRow, {});
            else await queryBound(db.fork(), 'select count(*) from note', []);
            return { feature: { key: req.key, name: 'read' } };
          },
        });
      },
    });
    const client = createClient(CatalogService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${rpc.port}` }));
    const keys = ['entity', 'count', 'sql', 'entity', 'count', 'sql'];
    try {
      expect((await client.getFeature({ key: 'sql' })).feature?.name).toBe('read');
      await server.stop();
      for (const key of keys) {
        const err = await rpcError(client.getFeature({ key }));
        expect([key, err.code, reason(err)]).toEqual([key, Code.Unavailable, 'UNAVAILABLE']);
      }
    } finally {
      await server.start();
    }
    expect((await client.getFeature({ key: 'sql' })).feature?.name).toBe('read');
    await rpc.shutdown({ graceMs: 1_000 });
    await db.close();

    const said = (msg: string) => lines.filter((line) => line.msg === msg);
    expect(said('database unreachable')).toHaveLength(1);
    expect(said('database reachable again')).toEqual([
      expect.objectContaining({ level: 40, failedCalls: keys.length }),
    ]);
    expect(said('database unreachable')[0]?.level).toBe(40);
    // Each failed call is a debug line; nothing of the outage is logged as an error, nor per call above debug.
    expect(said('rpc failed by a database outage').map((line) => line.level)).toEqual(keys.map(() => 20));
    expect(lines.filter((line) => line.level >= 50)).toEqual([]);
    expect(said('rpc refused')).toEqual([]);
  });
});
