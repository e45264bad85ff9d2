// The health convention Kubernetes probes rely on: `liveness` is SERVING from the server's start until it has
// stopped; `readiness`, '' and each service's full name follow setReady, the routes and draining. A server
// started before its service is ready answers health and reflection, and UNAVAILABLE ("starting") for the rest.
// Checked with a real grpc-js health client and with Connect, by Check and by Watch.
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { ServerReflection } from '@billing/proto/grpc/reflection/v1/reflection_pb';
import { Health, HealthCheckResponse_ServingStatus as Status } from '@billing/proto/health/v1/health_pb';
import { testLogger, waitFor } from '@billing/test/harness';
import { Code, ConnectError, type ConnectRouter, createClient } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import * as grpc from '@grpc/grpc-js';
import { afterEach, expect, test } from '@jest/globals';
import { service as healthService } from 'grpc-health-check';
import { type ServerHandle, startServer } from '../src/server.ts';

const CATALOG = CatalogService.typeName;
const READINESS_CHECKS = ['readiness', '', CATALOG];

const routes = (router: ConnectRouter) => {
  router.service(CatalogService, { getFeature: () => ({ feature: { key: 'sso', name: 'SSO' } }) });
};

const running: ServerHandle[] = [];
const grpcClients: grpc.Client[] = [];
afterEach(async () => {
  for (const client of grpcClients.splice(0)) client.close();
  await Promise.all(running.splice(0).map((server) => server.shutdown({ graceMs: 1_000 })));
});

async function serve(withRoutes: boolean): Promise<ServerHandle> {
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    services: [CatalogService],
    logger: testLogger,
    ...(withRoutes ? { routes } : {}),
  });
  running.push(server);
  return server;
}

type GrpcHealthClient = grpc.Client & {
  Check(req: { service: string }, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
  Watch(req: { service: string }): grpc.ClientReadableStream<{ status: string }>;
};

/** A grpc-js client of grpc.health.v1, as a load balancer or `grpc_health_probe` speaks it. */
function grpcHealth(port: number): GrpcHealthClient {
  const Client = grpc.makeGenericClientConstructor(healthService, 'Health');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as GrpcHealthClient;
  grpcClients.push(client);
  return client;
}

const grpcCheck = (client: GrpcHealthClient, service: string) =>
  new Promise<string>((resolve, reject) =>
    client.Check({ service }, (err, res) => (err ? reject(err) : resolve(res?.status ?? ''))),
  );

const connectHealth = (port: number) =>
  createClient(Health, createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: '1.1' }));

/** Every status a Watch stream has sent so far, and whether it has ended. */
function grpcWatch(client: GrpcHealthClient, service: string) {
  const seen: { statuses: string[]; ended: boolean } = { statuses: [], ended: false };
  const call = client.Watch({ service });
  call.on('data', (res: { status: string }) => seen.statuses.push(res.status));
  call.on('error', () => undefined);
  call.on('close', () => {
    seen.ended = true;
  });
  return seen;
}

function connectWatch(port: number, service: string) {
  const seen: { statuses: Status[]; ended: boolean } = { statuses: [], ended: false };
  const client = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
  void (async () => {
    try {
      for await (const res of client.watch({ service })) seen.statuses.push(res.status);
    } finally {
      seen.ended = true;
    }
  })().catch(() => undefined);
  return seen;
}

test('before its routes, a server is live and not ready, and its calls answer UNAVAILABLE "starting"', async () => {
  const server = await serve(false);
  const health = grpcHealth(server.port);
  expect(await grpcCheck(health, 'liveness')).toBe('SERVING');
  for (const check of READINESS_CHECKS) expect(await grpcCheck(health, check)).toBe('NOT_SERVING');
  // A ready flag alone does not make a server without its routes ready.
  server.setReady(true);
  expect(await grpcCheck(health, 'readiness')).toBe('NOT_SERVING');

  const baseUrl = `http://127.0.0.1:${server.port}`;
  for (const transport of [createGrpcTransport({ baseUrl }), createConnectTransport({ baseUrl, httpVersion: '1.1' })]) {
    const err = await createClient(CatalogService, transport)
      .getFeature({ key: 'sso' })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.Unavailable, rawMessage: 'starting' });
  }
  // Reflection answers meanwhile.
  const reflection = createClient(ServerReflection, createGrpcTransport({ baseUrl }));
  const names: string[] = [];
  for await (const res of reflection.serverReflectionInfo(
    (async function* () {
      yield { messageRequest: { case: 'listServices' as const, value: '' } };
    })(),
  )) {
    if (res.messageResponse.case === 'listServicesResponse')
      names.push(...res.messageResponse.value.service.map((s) => s.name));
  }
  expect(names).toEqual(expect.arrayContaining([CATALOG, 'grpc.health.v1.Health']));
});

test('route installs the handlers; readiness follows setReady, liveness stays SERVING', async () => {
  const server = await serve(false);
  server.route(routes);
  const client = createClient(CatalogService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.port}` }));
  expect((await client.getFeature({ key: 'sso' })).feature?.name).toBe('SSO');
  expect(() => server.route(routes)).toThrow('the server already has its routes');

  const grpcClient = grpcHealth(server.port);
  const connect = connectHealth(server.port);
  const statuses = async () => ({
    grpc: await Promise.all(['liveness', ...READINESS_CHECKS].map((check) => grpcCheck(grpcClient, check))),
    connect: await Promise.all(
      ['liveness', ...READINESS_CHECKS].map(async (service) => (await connect.check({ service })).status),
    ),
  });
  expect(await statuses()).toEqual({
    grpc: ['SERVING', 'NOT_SERVING', 'NOT_SERVING', 'NOT_SERVING'],
    connect: [Status.SERVING, Status.NOT_SERVING, Status.NOT_SERVING, Status.NOT_SERVING],
  });
  server.setReady(true);
  expect(await statuses()).toEqual({
    grpc: ['SERVING', 'SERVING', 'SERVING', 'SERVING'],
    connect: [Status.SERVING, Status.SERVING, Status.SERVING, Status.SERVING],
  });
  server.setReady(false);
  expect(await statuses()).toEqual({
    grpc: ['SERVING', 'NOT_SERVING', 'NOT_SERVING', 'NOT_SERVING'],
    connect: [Status.SERVING, Status.NOT_SERVING, Status.NOT_SERVING, Status.NOT_SERVING],
  });
});

test('a server started with its routes is ready at once', async () => {
  const server = await serve(true);
  const health = grpcHealth(server.port);
  for (const check of ['liveness', ...READINESS_CHECKS]) expect(await grpcCheck(health, check)).toBe('SERVING');
});

test('an unknown service: Check answers NOT_FOUND, Watch SERVICE_UNKNOWN', async () => {
  const server = await serve(true);
  const err = await connectHealth(server.port)
    .check({ service: 'no.such.Service' })
    .catch((e: unknown) => ConnectError.from(e));
  expect(err).toMatchObject({ code: Code.NotFound });
  const grpcSeen = grpcWatch(grpcHealth(server.port), 'no.such.Service');
  const connectSeen = connectWatch(server.port, 'no.such.Service');
  await waitFor(
    () => grpcSeen.statuses.length > 0 && connectSeen.statuses.length > 0,
    (both) => both,
  );
  expect(grpcSeen.statuses).toEqual(['SERVICE_UNKNOWN']);
  expect(connectSeen.statuses).toEqual([Status.SERVICE_UNKNOWN]);
});

test('Watch streams each change of readiness, over grpc-js and Connect', async () => {
  const server = await serve(false);
  const grpcReadiness = grpcWatch(grpcHealth(server.port), 'readiness');
  const grpcLiveness = grpcWatch(grpcHealth(server.port), 'liveness');
  const connectReadiness = connectWatch(server.port, 'readiness');
  const connectService = connectWatch(server.port, CATALOG);
  const readiness = [grpcReadiness, connectReadiness, connectService];
  const eachSent = (count: number) =>
    waitFor(
      () => [grpcLiveness, ...readiness],
      () => grpcLiveness.statuses.length === 1 && readiness.every((seen) => seen.statuses.length === count),
    );
  await eachSent(1);
  server.route(routes);
  server.setReady(true);
  await eachSent(2);
  server.setReady(false);
  await eachSent(3);
  expect(grpcReadiness.statuses).toEqual(['NOT_SERVING', 'SERVING', 'NOT_SERVING']);
  expect(connectReadiness.statuses).toEqual([Status.NOT_SERVING, Status.SERVING, Status.NOT_SERVING]);
  expect(connectService.statuses).toEqual([Status.NOT_SERVING, Status.SERVING, Status.NOT_SERVING]);
  // Readiness changed three times; liveness never.
  expect(grpcLiveness.statuses).toEqual(['SERVING']);
});

test('a server that drains tells its watchers NOT_SERVING and ends their streams, which do not hold it', async () => {
  const server = await serve(true);
  const grpcReadiness = grpcWatch(grpcHealth(server.port), 'readiness');
  const grpcLiveness = grpcWatch(grpcHealth(server.port), 'liveness');
  const connectReadiness = connectWatch(server.port, '');
  const all = [grpcReadiness, grpcLiveness, connectReadiness];
  await waitFor(
    () => all,
    (seen) => seen.every((s) => s.statuses.length === 1),
  );
  running.splice(0);
  // With a minute of grace, a shutdown held by the watch streams would outlast the test.
  await server.shutdown({ graceMs: 60_000 });
  await waitFor(
    () => all,
    (seen) => seen.every((s) => s.ended),
  );
  expect(grpcReadiness.statuses).toEqual(['SERVING', 'NOT_SERVING']);
  expect(connectReadiness.statuses).toEqual([Status.SERVING, Status.NOT_SERVING]);
  // Liveness holds until the server has stopped.
  expect(grpcLiveness.statuses).toEqual(['SERVING']);
}, 20_000);
