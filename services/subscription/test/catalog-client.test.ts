// The catalog client against a real catalog service: the catalog's refusals keep their code (what it refuses as
// invalid is INVALID_ARGUMENT naming the caller's field, what it does not have is NOT_FOUND with this service's
// reasons), and only a catalog that cannot be reached or answers too late is UNAVAILABLE.
import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import { createServer, type Server, type Socket } from 'node:net';
import { catalogService } from '@billing/catalog';
import { type DomainError, InvalidArgumentError } from '@billing/kit/errors';
import { createMemoryBus } from '@billing/kit/memory-bus';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import {
  buildMinutes,
  buildMinutesMeter,
  privateRepos,
  startTestService,
  type TestService,
  teamSpec,
} from '@billing/test/harness';
import { Code, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { catalogClient } from '../src/adapter/catalog-client.ts';

const bus = createMemoryBus();
let catalog: TestService;

beforeAll(async () => {
  catalog = await startTestService(catalogService, { bus });
  const api = createClient(CatalogService, createGrpcTransport({ baseUrl: catalog.baseUrl }));
  await api.createMeter({ requestId: 'meter', meter: buildMinutesMeter });
  await api.createFeature({ requestId: 'repos', feature: privateRepos });
  await api.createFeature({ requestId: 'minutes', feature: buildMinutes });
  await api.createPlan({ requestId: 'team', key: 'team', spec: teamSpec() });
  await api.publishPlan({ requestId: 'publish', planKey: 'team' });
});
afterAll(async () => {
  await catalog.destroy();
  await bus.close();
});

/** A plan version as CreateSubscription names it (plan_key, plan_version). */
const plan = (planKey: string, version: number) => ({
  planKey,
  version,
  fields: { planKey: 'plan_key', version: 'plan_version' },
});

/** An add-on as the first of a request's `addons`. */
const addOn = (key: string) => ({ key, field: 'addons[0].addon_key' });

/** The domain error a call fails with; fails the test if it succeeds or fails otherwise. */
async function refusal(call: Promise<unknown>): Promise<DomainError> {
  try {
    await call;
  } catch (err) {
    if (err instanceof Error && 'reason' in err && 'code' in err) return err as DomainError;
    throw err;
  }
  throw new Error('the call succeeded');
}

describe('what the catalog has', () => {
  test('a published plan version is read', async () => {
    const version = await catalogClient(catalog.baseUrl).planVersion(plan('team', 0));
    expect([version.planKey, version.version]).toEqual(['team', 1]);
  });
});

/** A server on a free port; `close` ends it with its connections. */
async function listening(server: Server | Http2Server): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => sockets.add(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return {
    url: `http://127.0.0.1:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('what the catalog does not have is NOT_FOUND', () => {
  test('no plan is PLAN_NOT_FOUND', async () => {
    const err = await refusal(catalogClient(catalog.baseUrl).planVersion(plan('nope', 0)));
    expect([err.code, err.reason]).toEqual([Code.NotFound, 'PLAN_NOT_FOUND']);
  });

  test('no such version is PLAN_VERSION_NOT_FOUND', async () => {
    const err = await refusal(catalogClient(catalog.baseUrl).planVersion(plan('team', 9)));
    expect([err.code, err.reason]).toEqual([Code.NotFound, 'PLAN_VERSION_NOT_FOUND']);
  });

  test('no add-on is ADD_ON_NOT_FOUND', async () => {
    const err = await refusal(catalogClient(catalog.baseUrl).addOn(addOn('nope')));
    expect([err.code, err.reason]).toEqual([Code.NotFound, 'ADD_ON_NOT_FOUND']);
  });
});

describe('what the catalog refuses as invalid stays INVALID_ARGUMENT', () => {
  test("a negative version is refused naming the caller's field", async () => {
    const err = await refusal(catalogClient(catalog.baseUrl).planVersion(plan('team', -1)));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect([err.code, (err as InvalidArgumentError).violations.map((v) => v.field)]).toEqual([
      Code.InvalidArgument,
      ['plan_version'],
    ]);
  });

  test("a refused version names the field the caller sent it in (a migration's to_version)", async () => {
    const err = await refusal(
      catalogClient(catalog.baseUrl).planVersion({
        planKey: 'team',
        version: -1,
        fields: { planKey: 'plan_key', version: 'to_version' },
      }),
    );
    expect([err.code, (err as InvalidArgumentError).violations.map((v) => v.field)]).toEqual([
      Code.InvalidArgument,
      ['to_version'],
    ]);
  });

  test("a refused add-on key names its place in the caller's add-ons", async () => {
    const err = await refusal(catalogClient(catalog.baseUrl).addOn({ key: '', field: 'addons[2].addon_key' }));
    expect([err.code, (err as InvalidArgumentError).violations.map((v) => v.field)]).toEqual([
      Code.InvalidArgument,
      ['addons[2].addon_key'],
    ]);
  });
});

describe('only a catalog that cannot answer is UNAVAILABLE', () => {
  test('a catalog that refuses connections is UNAVAILABLE, without its transport message', async () => {
    const stopped = await startTestService(catalogService, { bus });
    const url = stopped.baseUrl;
    await stopped.destroy();
    const err = await refusal(catalogClient(url).planVersion(plan('team', 0)));
    expect([err.code, err.reason, err.message]).toEqual([
      Code.Unavailable,
      'UNAVAILABLE',
      'the catalog is unavailable; retry later',
    ]);
  });

  test('a catalog that does not answer in time is UNAVAILABLE', async () => {
    const silent = await listening(createServer());
    try {
      const err = await refusal(catalogClient(silent.url).addOn(addOn('support')));
      expect([err.code, err.reason]).toEqual([Code.Unavailable, 'UNAVAILABLE']);
      expect(err.detail).toMatch(/deadline/i);
    } finally {
      await silent.close();
    }
  }, 20_000);

  test('a catalog whose connection closes mid-call is UNAVAILABLE', async () => {
    // An HTTP/2 server that takes the request and closes the connection without answering.
    const server = createHttp2Server();
    server.on('stream', (stream) => stream.session?.destroy());
    const closing = await listening(server);
    try {
      const err = await refusal(catalogClient(closing.url).planVersion(plan('team', 0)));
      expect([err.code, err.reason]).toEqual([Code.Unavailable, 'UNAVAILABLE']);
      expect(err.detail).toMatch(/stream closed/);
    } finally {
      await closing.close();
    }
  });

  test('a catalog whose reply is not HTTP/2 is UNAVAILABLE', async () => {
    // A server that answers the request's first bytes with what no HTTP/2 client can read, then closes.
    const garbled = await listening(
      createServer((socket) => socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\n\r\nnot HTTP/2'))),
    );
    try {
      const err = await refusal(catalogClient(garbled.url).addOn(addOn('support')));
      expect([err.code, err.reason]).toEqual([Code.Unavailable, 'UNAVAILABLE']);
      expect(err.detail).toMatch(/protocol error/i);
    } finally {
      await garbled.close();
    }
  });
});
