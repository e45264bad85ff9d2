// SIGTERM during a burst of calls loses no accepted call: the real service process is started, hammered,
// and stopped; every call it answered OK is in the database, and calls it refused were refused cleanly.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { FeatureKind } from '@billing/proto/billing/catalog/v1/resources_pb';
import { createTestDatabase, outcome, sparePort, type TestDatabase, waitFor } from '@billing/test/harness';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import pg from 'pg';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase('shutdown');
});

afterAll(async () => {
  await database.drop();
});

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

test('SIGTERM during a burst of calls loses no accepted call', async () => {
  const port = await sparePort();
  const child = spawn(process.execPath, [MAIN], {
    env: {
      ...process.env,
      NODE_OPTIONS: '',
      CATALOG_PORT: String(port),
      CATALOG_DATABASE_URL: database.url,
      NATS_URL: '',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exit = exited(child);
  const client = createClient(CatalogService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
  await waitFor(
    () => outcome(client.listFeatures({})),
    (answered) => answered === 'ok',
    30_000,
  );

  const accepted: string[] = [];
  const refused: ConnectError[] = [];
  let sent = 0;
  let signalled = false;
  const worker = async () => {
    while (sent < 400) {
      const key = `burst_${sent++}`;
      if (!signalled && accepted.length >= 60) {
        signalled = true;
        child.kill('SIGTERM');
      }
      try {
        await client.createFeature({ requestId: key, feature: { key, name: key, kind: FeatureKind.BOOLEAN } });
        accepted.push(key);
      } catch (err) {
        refused.push(ConnectError.from(err));
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  expect(signalled).toBe(true);
  expect(await exit).toBe(0);

  // Refusals after shutdown began are clean: the call never started (UNAVAILABLE, a refused stream after
  // GOAWAY, or a refused connection once the port closed; grpc-js reports all three as UNAVAILABLE, the
  // Connect client the last two as INTERNAL with the transport's error). Nothing failed half-way.
  const neverStarted = (err: ConnectError) =>
    err.code === Code.Unavailable || /NGHTTP2_REFUSED_STREAM|ECONNREFUSED/.test(err.message);
  expect(refused.filter((err) => !neverStarted(err)).map((err) => err.message)).toEqual([]);
  const db = new pg.Client({ connectionString: database.url });
  await db.connect();
  const { rows } = await db.query<{ key: string }>("select key from feature where key like 'burst_%'");
  await db.end();
  const stored = new Set(rows.map((r) => r.key));
  expect(accepted.filter((key) => !stored.has(key))).toEqual([]);
  expect(accepted.length).toBeGreaterThanOrEqual(60);
});
