// The kit's server: one port for Connect, gRPC and gRPC-Web over HTTP/2 and HTTP/1.1; health; reflection
// good enough for `buf curl` without schema files; errors as clients see them; graceful shutdown.

import { execFile } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { BadRequestSchema, ErrorInfoSchema } from '@billing/proto/google/rpc/error_details_pb';
import { ServerReflection } from '@billing/proto/grpc/reflection/v1/reflection_pb';
import { Health, HealthCheckResponse_ServingStatus } from '@billing/proto/health/v1/health_pb';
import { fromBinary } from '@bufbuild/protobuf';
import { type FileDescriptorProto, FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type ConnectRouter, createClient, type Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { errorInterceptor, NotFoundError, Violations } from '../src/errors.ts';
import { createLogger, type Logger } from '../src/log.ts';
import { protocolOf, type ServerHandle, startServer } from '../src/server.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const CATALOG = 'billing.catalog.v1.CatalogService';

/** A logger whose lines the test can read. */
function capturingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    service: 'test',
    level: 'debug',
    destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  return { logger, lines };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** What the fake catalog's slow calls report. */
interface SlowCalls {
  /** Keys of the calls whose handler ran. */
  accepted: Set<string>;
  /** Called each time a handler starts. */
  onEnter?: (entered: number) => void;
}

/**
 * A tiny fake of the catalog: GetFeature answers `sso`, refuses `''` and `bad-tiers` with field violations,
 * throws an unexpected error with secrets in it for `boom`, sleeps 50-200 ms for `slow-N`, waits for its
 * call to be aborted for `hang`, and does not know anything else.
 */
function fakeCatalog(slow: SlowCalls = { accepted: new Set() }, hung: AbortSignal[] = []) {
  return (router: ConnectRouter) => {
    router.service(CatalogService, {
      async getFeature(req, context) {
        if (req.key === 'sso') return { feature: { key: 'sso', name: 'SSO' } };
        if (req.key === '') new Violations().add('key', 'required').throwIfAny('key is required');
        if (req.key === 'bad-tiers') {
          new Violations()
            .at('spec', 'charges', 0, 'prices', 1)
            .add('tiers', 'tiers must be contiguous and ascending')
            .throwIfAny('the plan is not valid', 'PLAN_INVALID');
        }
        if (req.key === 'boom') throw new Error('password=hunter2 at db.internal:5432');
        if (req.key.startsWith('slow-')) {
          slow.accepted.add(req.key);
          slow.onEnter?.(slow.accepted.size);
          const n = Number(req.key.slice(5));
          await sleep(50 + ((n * 37) % 151));
          return { feature: { key: req.key, name: 'slow' } };
        }
        if (req.key === 'hang') {
          hung.push(context.signal);
          await new Promise((resolve) => context.signal.addEventListener('abort', resolve));
          throw context.signal.reason;
        }
        throw new NotFoundError('FEATURE_NOT_FOUND', `no feature "${req.key}"`);
      },
    });
  };
}

async function startCatalog(logger: Logger, slow?: SlowCalls, hung?: AbortSignal[]): Promise<ServerHandle> {
  return startServer({
    host: '127.0.0.1',
    port: 0,
    services: [CatalogService],
    logger,
    interceptors: [errorInterceptor('billing.catalog', logger)],
    routes: fakeCatalog(slow, hung),
  });
}

// The catalog, health and reflection services as grpc-js clients, loaded from the .proto files.
const includeDirs = [
  `${root}proto`,
  `${root}node_modules/google-proto-files`,
  `${root}node_modules/grpc-health-check/proto`,
  `${root}node_modules/@grpc/reflection/build/proto`,
];
function grpcService(file: string, path: string[]): grpc.ServiceClientConstructor {
  let node: unknown = grpc.loadPackageDefinition(
    protoLoader.loadSync(file, { includeDirs, keepCase: true, enums: String, longs: String, defaults: true }),
  );
  for (const part of path) node = (node as Record<string, unknown>)[part];
  return node as grpc.ServiceClientConstructor;
}

type Callback<T> = (err: grpc.ServiceError | null, res?: T) => void;
interface GrpcCatalog extends grpc.Client {
  GetFeature(req: { key: string }, callback: Callback<{ feature: { key: string; name: string } }>): void;
}
interface GrpcHealth extends grpc.Client {
  Check(req: { service: string }, callback: Callback<{ status: string }>): void;
}
interface ReflectionReply {
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
}
interface GrpcReflection extends grpc.Client {
  ServerReflectionInfo(): grpc.ClientDuplexStream<Record<string, unknown>, ReflectionReply>;
}

function grpcCatalog(port: number): GrpcCatalog {
  const Ctor = grpcService('billing/catalog/v1/catalog_service.proto', ['billing', 'catalog', 'v1', 'CatalogService']);
  return new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as GrpcCatalog;
}

function unary<T>(call: (callback: Callback<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => call((err, res) => (err || res === undefined ? reject(err) : resolve(res))));
}

/** Runs `buf curl` (the pinned binary) and returns its exit code and output. */
function bufCurl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(`${root}node_modules/.bin/buf`, ['curl', ...args], { cwd: root }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('the first bytes of a connection', () => {
  test('the HTTP/2 preface, whole or in pieces, means HTTP/2; anything else HTTP/1.1', () => {
    const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    expect(protocolOf(Buffer.concat([preface, Buffer.from([0, 0, 0, 4])]))).toBe('http2');
    expect(protocolOf(preface)).toBe('http2');
    for (let n = 1; n < preface.length; n++) expect(protocolOf(preface.subarray(0, n))).toBeUndefined();
    expect(protocolOf(Buffer.from('POST /x HTTP/1.1\r\n'))).toBe('http1');
    expect(protocolOf(Buffer.from('PO'))).toBe('http1');
    expect(protocolOf(Buffer.from('PRI * HTTP/1.1\r\n'))).toBe('http1');
  });
});

describe('a running server', () => {
  const { logger, lines } = capturingLogger();
  let server: ServerHandle;
  let baseUrl: string;

  beforeAll(async () => {
    server = await startCatalog(logger);
    baseUrl = `http://127.0.0.1:${server.port}`;
  });

  afterAll(async () => {
    await server.shutdown({ graceMs: 5_000 });
  });

  describe('one port, every protocol', () => {
    test.each<[string, () => Transport]>([
      ['gRPC over HTTP/2', () => createGrpcTransport({ baseUrl })],
      ['gRPC-Web over HTTP/1.1', () => createGrpcWebTransport({ baseUrl, httpVersion: '1.1' })],
      ['gRPC-Web over HTTP/2', () => createGrpcWebTransport({ baseUrl, httpVersion: '2' })],
      ['Connect JSON over HTTP/1.1', () => createConnectTransport({ baseUrl, httpVersion: '1.1' })],
      ['Connect binary over HTTP/1.1', () => createConnectTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: true })],
      ['Connect JSON over HTTP/2', () => createConnectTransport({ baseUrl, httpVersion: '2' })],
      ['Connect binary over HTTP/2', () => createConnectTransport({ baseUrl, httpVersion: '2', useBinaryFormat: true })],
    ])('%s', async (_name, transport) => {
      const client = createClient(CatalogService, transport());
      expect((await client.getFeature({ key: 'sso' })).feature?.name).toBe('SSO');
    });

    test('a @grpc/grpc-js client', async () => {
      const client = grpcCatalog(server.port);
      try {
        const res = await unary<{ feature: { key: string; name: string } }>((cb) => client.GetFeature({ key: 'sso' }, cb));
        expect(res.feature).toMatchObject({ key: 'sso', name: 'SSO' });
      } finally {
        client.close();
      }
    });

    test('a plain HTTP/1.1 JSON POST (fetch), with the request id echoed', async () => {
      const res = await fetch(`${baseUrl}/${CATALOG}/GetFeature`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': 'req-fetch-1' },
        body: JSON.stringify({ key: 'sso' }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-request-id')).toBe('req-fetch-1');
      expect(await res.json()).toEqual({ feature: { key: 'sso', name: 'SSO' } });
      expect(lines).toContainEqual(
        expect.objectContaining({ request_id: 'req-fetch-1', method: `${CATALOG}/GetFeature`, code: 'OK' }),
      );
    });

    test('an HTTP/1.1 request that arrives a byte at a time', async () => {
      const body = JSON.stringify({ key: 'sso' });
      const request = Buffer.from(
        `POST /${CATALOG}/GetFeature HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      );
      const socket = net.connect(server.port, '127.0.0.1');
      socket.setNoDelay(true);
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      const ended = new Promise((resolve) => socket.on('close', resolve));
      for (let i = 0; i < 8; i++) {
        socket.write(request.subarray(i, i + 1));
        await sleep(5);
      }
      socket.end(request.subarray(8));
      await ended;
      const response = Buffer.concat(chunks).toString();
      expect(response).toMatch(/^HTTP\/1\.1 200/);
      expect(response).toContain('"name":"SSO"');
    });

    test('an HTTP/2 client whose preface arrives in pieces', async () => {
      // A proxy that relays the first 30 bytes one at a time, then everything as it comes.
      const proxy = net.createServer((client) => {
        const upstream = net.connect(server.port, '127.0.0.1');
        upstream.setNoDelay(true);
        upstream.pipe(client);
        client.once('data', async (first: Buffer) => {
          client.pause();
          for (let i = 0; i < Math.min(first.length, 30); i++) {
            upstream.write(first.subarray(i, i + 1));
            await sleep(2);
          }
          upstream.write(first.subarray(30));
          client.pipe(upstream);
          client.resume();
        });
        client.on('error', () => upstream.destroy());
        upstream.on('error', () => client.destroy());
      });
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      const address = proxy.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      try {
        const client = createClient(CatalogService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
        expect((await client.getFeature({ key: 'sso' })).feature?.name).toBe('SSO');
      } finally {
        proxy.close();
      }
    });
  });

  describe('errors as clients see them', () => {
    const grpcClient = () => createClient(CatalogService, createGrpcTransport({ baseUrl }));
    const connectClient = () => createClient(CatalogService, createConnectTransport({ baseUrl, httpVersion: '1.1' }));
    const failure = (p: Promise<unknown>) =>
      p.then(
        () => {
          throw new Error('expected the call to fail');
        },
        (e: unknown) => ConnectError.from(e),
      );

    test('a domain error keeps its code, message and reason, with the service domain', async () => {
      const err = await failure(grpcClient().getFeature({ key: 'nope' }));
      expect(err.code).toBe(Code.NotFound);
      expect(err.rawMessage).toBe('no feature "nope"');
      expect(err.findDetails(ErrorInfoSchema)[0]).toMatchObject({ reason: 'FEATURE_NOT_FOUND', domain: 'billing.catalog' });
    });

    test.each([
      ['gRPC', grpcClient],
      ['Connect over HTTP/1.1', connectClient],
    ])('bad input names the offending field with its full path (%s)', async (_name, client) => {
      const err = await failure(client().getFeature({ key: 'bad-tiers' }));
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toBe('the plan is not valid');
      expect(err.findDetails(ErrorInfoSchema)[0]?.reason).toBe('PLAN_INVALID');
      expect(err.findDetails(BadRequestSchema)[0]?.fieldViolations).toEqual([
        expect.objectContaining({
          field: 'spec.charges[0].prices[1].tiers',
          description: 'tiers must be contiguous and ascending',
        }),
      ]);
    });

    test('grpc-js reads INVALID_ARGUMENT and its message', async () => {
      const client = grpcCatalog(server.port);
      try {
        const err = await unary((cb) => client.GetFeature({ key: '' }, cb)).catch((e: grpc.ServiceError) => e);
        expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'key is required' });
      } finally {
        client.close();
      }
    });

    test('an unexpected error is INTERNAL, leaks nothing, and is logged with its stack', async () => {
      const viaGrpc = await failure(grpcClient().getFeature({ key: 'boom' }));
      const viaConnect = await failure(connectClient().getFeature({ key: 'boom' }));
      for (const err of [viaGrpc, viaConnect]) {
        expect(err.code).toBe(Code.Internal);
        expect(err.rawMessage).toBe('internal error');
        expect(err.findDetails(ErrorInfoSchema)[0]?.reason).toBe('INTERNAL');
        expect(JSON.stringify(err)).not.toContain('hunter2');
        expect(String(err.stack)).not.toContain('hunter2');
      }
      const raw = await fetch(`${baseUrl}/${CATALOG}/GetFeature`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ key: 'boom' }),
      });
      expect(raw.status).toBe(500);
      const body = await raw.text();
      expect(body).toContain('internal error');
      expect(body).not.toContain('hunter2');
      const logged = lines.filter((l) => l.msg === 'rpc failed unexpectedly');
      expect(logged.length).toBe(3);
      expect(logged[0]).toMatchObject({ level: 'error', code: 'INTERNAL', method: `${CATALOG}/GetFeature` });
      expect(JSON.stringify(logged[0])).toContain('at Object.getFeature');
    });
  });

  describe('health', () => {
    test('grpc.health.v1 Check, through grpc-js: SERVING for the server and its services, NOT_FOUND else', async () => {
      const Ctor = grpcService('health/v1/health.proto', ['grpc', 'health', 'v1', 'Health']);
      const client = new Ctor(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure()) as unknown as GrpcHealth;
      try {
        const check = (service: string) => unary<{ status: string }>((cb) => client.Check({ service }, cb));
        expect((await check('')).status).toBe('SERVING');
        expect((await check(CATALOG)).status).toBe('SERVING');
        await expect(check('no.such.Service')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
      } finally {
        client.close();
      }
    });

    test('Watch sends the status, then every change', async () => {
      const client = createClient(Health, createGrpcTransport({ baseUrl }));
      const abort = new AbortController();
      const seen: HealthCheckResponse_ServingStatus[] = [];
      try {
        for await (const res of client.watch({ service: 'custom' }, { signal: abort.signal })) {
          seen.push(res.status);
          if (seen.length === 1) server.health.setStatus('custom', HealthCheckResponse_ServingStatus.SERVING);
          if (seen.length === 2) server.health.setStatus('custom', HealthCheckResponse_ServingStatus.NOT_SERVING);
          if (seen.length === 3) abort.abort();
        }
      } catch (err) {
        if (ConnectError.from(err).code !== Code.Canceled) throw err;
      }
      expect(seen).toEqual([
        HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN,
        HealthCheckResponse_ServingStatus.SERVING,
        HealthCheckResponse_ServingStatus.NOT_SERVING,
      ]);
    });

    test('health calls are not logged per call', async () => {
      const before = lines.length;
      const client = createClient(Health, createGrpcTransport({ baseUrl }));
      await client.check({ service: '' });
      expect(lines.slice(before).filter((l) => String(l.method).startsWith('grpc.health'))).toEqual([]);
    });
  });

  describe('reflection', () => {
    // Asks a reflection stream some questions through grpc-js and returns the answers in order.
    async function ask(version: 'v1' | 'v1alpha', questions: Record<string, unknown>[]): Promise<ReflectionReply[]> {
      const Ctor = grpcService(`grpc/reflection/${version}/reflection.proto`, [
        'grpc',
        'reflection',
        version,
        'ServerReflection',
      ]);
      const client = new Ctor(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure()) as unknown as GrpcReflection;
      try {
        const call = client.ServerReflectionInfo();
        const replies: ReflectionReply[] = [];
        call.on('data', (reply: ReflectionReply) => replies.push(reply));
        const ended = new Promise((resolve, reject) => {
          call.on('end', resolve);
          call.on('error', reject);
        });
        for (const q of questions) call.write(q);
        call.end();
        await ended;
        return replies;
      } finally {
        client.close();
      }
    }
    const decode = (files: Buffer[] | undefined): FileDescriptorProto[] =>
      (files ?? []).map((f) => fromBinary(FileDescriptorProtoSchema, f));

    test.each(['v1', 'v1alpha'] as const)('%s: lists services and resolves symbols to files with their imports', async (v) => {
      const [list, bySymbol, unknown] = await ask(v, [
        { list_services: '' },
        { file_containing_symbol: `${CATALOG}.GetFeature` },
        { file_containing_symbol: 'no.such.Symbol' },
      ]);
      expect(list?.list_services_response?.service.map((s) => s.name)).toEqual(
        expect.arrayContaining([
          CATALOG,
          'grpc.health.v1.Health',
          'grpc.reflection.v1.ServerReflection',
          'grpc.reflection.v1alpha.ServerReflection',
        ]),
      );
      const files = decode(bySymbol?.file_descriptor_response?.file_descriptor_proto);
      // The requested file first, then everything it imports, transitively, so a client can build it.
      expect(files[0]?.name).toBe('billing/catalog/v1/catalog_service.proto');
      expect(files[0]?.service[0]?.method.map((m) => m.name)).toContain('GetFeature');
      const names = new Set(files.map((f) => f.name));
      for (const f of files) for (const d of f.dependency) expect(names).toContain(d);
      expect(names).toContain('google/protobuf/timestamp.proto');
      expect(unknown?.error_response?.error_code).toBe(grpc.status.NOT_FOUND);
    });

    test('files already sent on a stream are not sent again, but the one asked for always is', async () => {
      const [first, again, byName, missing] = await ask('v1', [
        { file_containing_symbol: CATALOG },
        { file_containing_symbol: 'billing.catalog.v1.Feature' },
        { file_by_filename: 'google/protobuf/timestamp.proto' },
        { file_by_filename: 'nope.proto' },
      ]);
      expect(decode(first?.file_descriptor_response?.file_descriptor_proto).length).toBeGreaterThan(2);
      expect(decode(again?.file_descriptor_response?.file_descriptor_proto).map((f) => f.name)).toEqual([
        'billing/catalog/v1/resources.proto',
      ]);
      expect(decode(byName?.file_descriptor_response?.file_descriptor_proto).map((f) => f.name)).toEqual([
        'google/protobuf/timestamp.proto',
      ]);
      expect(missing?.error_response?.error_code).toBe(grpc.status.NOT_FOUND);
    });

    test('the error details are described, so that grpcurl can print them', async () => {
      const [reply] = await ask('v1', [{ file_containing_symbol: 'google.rpc.BadRequest' }]);
      expect(decode(reply?.file_descriptor_response?.file_descriptor_proto)[0]?.name).toBe(
        'google/rpc/error_details.proto',
      );
    });

    test('buf curl calls the service over gRPC with no schema, through reflection', async () => {
      const res = await bufCurl([
        '--protocol',
        'grpc',
        '--http2-prior-knowledge',
        `${baseUrl}/${CATALOG}/GetFeature`,
        '-d',
        '{"key":"sso"}',
      ]);
      expect(res).toMatchObject({ code: 0, stderr: '' });
      expect(JSON.parse(res.stdout)).toEqual({ feature: { key: 'sso', name: 'SSO' } });
    });

    test.each([
      ['Connect', []],
      ['gRPC-Web', ['--protocol', 'grpcweb']],
      ['gRPC with reflection v1alpha', ['--protocol', 'grpc', '--reflect-protocol', 'grpc-v1alpha']],
    ])('buf curl, %s', async (_name, flags) => {
      const res = await bufCurl([...flags, `${baseUrl}/${CATALOG}/GetFeature`, '-d', '{"key":"sso"}']);
      expect(res.code).toBe(0);
      expect(JSON.parse(res.stdout)).toEqual({ feature: { key: 'sso', name: 'SSO' } });
    });

    test('buf curl lists services and methods', async () => {
      const services = await bufCurl(['--list-services', '--http2-prior-knowledge', baseUrl]);
      expect(services.code).toBe(0);
      expect(services.stdout.split('\n')).toEqual(expect.arrayContaining([CATALOG, 'grpc.health.v1.Health']));
      const methods = await bufCurl(['--list-methods', '--http2-prior-knowledge', baseUrl]);
      expect(methods.code).toBe(0);
      expect(methods.stdout.split('\n')).toContain(`${CATALOG}/GetFeature`);
    });

    test('buf curl shows an error with its code and reason', async () => {
      const res = await bufCurl(['--protocol', 'grpc', `${baseUrl}/${CATALOG}/GetFeature`, '-d', '{"key":""}']);
      expect(res.code).not.toBe(0);
      const shown = JSON.parse(res.stdout || res.stderr) as { code: string; message: string };
      expect(shown).toMatchObject({ code: 'invalid_argument', message: 'key is required' });
    });
  });
});

describe('shutdown', () => {
  test('a burst of calls: every call that reached its handler completes; the others are refused', async () => {
    let shutdownStarted = (): void => undefined;
    const halfway = new Promise<void>((resolve) => {
      shutdownStarted = resolve;
    });
    const slow: SlowCalls = { accepted: new Set(), onEnter: (n) => n >= 50 && shutdownStarted() };
    const server = await startCatalog(capturingLogger().logger, slow);
    const baseUrl = `http://127.0.0.1:${server.port}`;
    const viaGrpcJs = grpcCatalog(server.port);
    const viaGrpc = createClient(CatalogService, createGrpcTransport({ baseUrl }));
    const viaHttp1 = createClient(CatalogService, createConnectTransport({ baseUrl, httpVersion: '1.1' }));
    // Each call's outcome: 'ok', or the gRPC status code it failed with.
    const outcomes = new Map<string, 'ok' | number>();
    const call = async (i: number): Promise<void> => {
      const key = `slow-${i}`;
      try {
        if (i % 3 === 0) await unary((cb) => viaGrpcJs.GetFeature({ key }, cb));
        else await (i % 3 === 1 ? viaGrpc : viaHttp1).getFeature({ key });
        outcomes.set(key, 'ok');
      } catch (err) {
        const code = i % 3 === 0 ? (err as grpc.ServiceError).code : ConnectError.from(err).code;
        outcomes.set(key, code);
      }
    };

    // 100 calls before shutdown, spread out so that they arrive over time; 100 more once it has begun.
    const before: Promise<void>[] = [];
    for (let i = 0; i < 100; i++) {
      before.push(call(i));
      if (i % 10 === 9) await sleep(5);
    }
    await halfway;
    const stopped = server.shutdown({ graceMs: 30_000 });
    const after: Promise<void>[] = [];
    for (let i = 100; i < 200; i++) after.push(call(i));
    await Promise.all([...before, ...after, stopped]);
    viaGrpcJs.close();

    expect(outcomes.size).toBe(200);
    expect(slow.accepted.size).toBeGreaterThanOrEqual(50);
    const lost = [...slow.accepted].filter((key) => outcomes.get(key) !== 'ok');
    expect(lost).toEqual([]);
    for (const [key, outcome] of outcomes) {
      if (!slow.accepted.has(key)) expect({ key, outcome }).toEqual({ key, outcome: Code.Unavailable });
    }
    // Nothing that arrived after shutdown began reached a handler.
    expect([...slow.accepted].filter((key) => Number(key.slice(5)) >= 100)).toEqual([]);
  });

  test('after shutdown, calls are refused with UNAVAILABLE; shutting down twice is harmless', async () => {
    const server = await startCatalog(capturingLogger().logger);
    const baseUrl = `http://127.0.0.1:${server.port}`;
    const client = createClient(CatalogService, createGrpcTransport({ baseUrl }));
    expect((await client.getFeature({ key: 'sso' })).feature?.name).toBe('SSO');
    const first = server.shutdown({ graceMs: 5_000 });
    expect(server.shutdown({ graceMs: 5_000 })).toBe(first);
    await first;
    await expect(client.getFeature({ key: 'sso' })).rejects.toMatchObject({ code: Code.Unavailable });
    const grpcJs = grpcCatalog(server.port);
    await expect(unary((cb) => grpcJs.GetFeature({ key: 'sso' }, cb))).rejects.toMatchObject({
      code: grpc.status.UNAVAILABLE,
    });
    grpcJs.close();
    await expect(fetch(`${baseUrl}/${CATALOG}/GetFeature`, { method: 'POST', body: '{}' })).rejects.toThrow();
  });

  test('health turns NOT_SERVING; open Watch and reflection streams and idle connections do not hold it up', async () => {
    const server = await startCatalog(capturingLogger().logger);
    const baseUrl = `http://127.0.0.1:${server.port}`;
    // An idle HTTP/1.1 keep-alive connection.
    const agent = new http.Agent({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      const req = http.request(
        `${baseUrl}/${CATALOG}/GetFeature`,
        { method: 'POST', agent, headers: { 'content-type': 'application/json' } },
        (res) => {
          res.resume();
          res.on('end', resolve);
        },
      );
      req.on('error', reject);
      req.end('{"key":"sso"}');
    });
    // A Watch stream.
    const health = createClient(Health, createGrpcTransport({ baseUrl }));
    const seen: HealthCheckResponse_ServingStatus[] = [];
    let firstSeen = (): void => undefined;
    const watching = new Promise<void>((resolve) => {
      firstSeen = resolve;
    });
    const watch = (async () => {
      for await (const res of health.watch({ service: '' })) {
        seen.push(res.status);
        firstSeen();
      }
    })();
    // A reflection stream left open after one answer, as buf curl leaves it during its call.
    const reflection = createClient(ServerReflection, createGrpcTransport({ baseUrl }));
    const questions = (async function* () {
      yield { messageRequest: { case: 'listServices' as const, value: '' } };
      await new Promise(() => undefined);
    })();
    const answers: string[] = [];
    let answered = (): void => undefined;
    const gotAnswer = new Promise<void>((resolve) => {
      answered = resolve;
    });
    const reflecting = (async () => {
      for await (const res of reflection.serverReflectionInfo(questions)) {
        answers.push(res.messageResponse.case ?? '');
        answered();
      }
    })();
    await Promise.all([watching, gotAnswer]);

    // A grace far longer than any test: if shutdown waited for these streams, the test would time out.
    await server.shutdown({ graceMs: 600_000 });
    await Promise.all([watch, reflecting]);
    agent.destroy();
    expect(seen).toEqual([HealthCheckResponse_ServingStatus.SERVING, HealthCheckResponse_ServingStatus.NOT_SERVING]);
    expect(answers).toEqual(['listServicesResponse']);
    expect(server.health.status('')).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
    expect(server.health.status(CATALOG)).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
  });

  test('after the grace period, calls still running are aborted and the connections closed', async () => {
    const hung: AbortSignal[] = [];
    const server = await startCatalog(capturingLogger().logger, undefined, hung);
    const client = createClient(CatalogService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.port}` }));
    const call = client.getFeature({ key: 'hang' }).catch((e: unknown) => ConnectError.from(e));
    while (hung.length === 0) await sleep(5);
    await server.shutdown({ graceMs: 100 });
    expect(hung[0]?.aborted).toBe(true);
    expect(await call).toMatchObject({ code: Code.Unavailable });
  });
});
