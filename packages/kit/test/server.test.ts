// The kit's server: health, both reflection versions, error mapping, HTTP/1.1 and HTTP/2 on one port.

import http2 from 'node:http2';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  CatalogService,
  GetFeatureRequestSchema,
  GetFeatureResponseSchema,
} from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { BadRequestSchema, ErrorInfoSchema } from '@billing/proto/google/rpc/error_details_pb';
import { testLogger } from '@billing/test/harness';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import {
  errorInterceptor,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  quote,
} from '../src/errors.ts';
import { type ServerHandle, startServer } from '../src/server.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));
let server: ServerHandle;
let baseUrl: string;

beforeAll(async () => {
  server = await startServer({
    host: '127.0.0.1',
    port: 0,
    services: [CatalogService],
    logger: testLogger,
    interceptors: [errorInterceptor('billing.catalog', testLogger)],
    routes(router) {
      router.service(CatalogService, {
        getFeature(req) {
          if (req.key === 'secret') throw new Error('password=hunter2 at db:5432');
          if (req.key === '')
            throw new InvalidArgumentError('the request is not valid', [
              { field: 'key', description: 'required' },
              { field: 'name', description: 'required' },
            ]);
          if (req.key === 'held')
            throw new FailedPreconditionError('FEATURE_HELD', 'the feature is held', { detail: 'held by plan p-41' });
          if (req.key === 'long') return { feature: { key: 'long', name: 'x'.repeat(10_000) } };
          if (req.key === 'echo') {
            const echoed = 'k'.repeat(1_000_000);
            throw new InvalidArgumentError(`the feature ${echoed} is not valid`, [
              { field: `metadata[${echoed}]`, description: `${echoed} is too long` },
            ]);
          }
          if (req.key !== 'sso') throw new NotFoundError('FEATURE_NOT_FOUND', `no feature "${req.key}"`);
          return { feature: { key: 'sso', name: 'SSO' } };
        },
      });
    },
  });
  baseUrl = `http://127.0.0.1:${server.port}`;
});

afterAll(async () => {
  await server.shutdown({ graceMs: 1_000 });
});

function load(file: string, dirs: string[]) {
  return grpc.loadPackageDefinition(protoLoader.loadSync(file, { includeDirs: dirs, keepCase: true, enums: String }));
}

describe('one port, every protocol', () => {
  test.each([
    ['gRPC over HTTP/2', () => createGrpcTransport({ baseUrl })],
    ['Connect over HTTP/1.1', () => createConnectTransport({ baseUrl, httpVersion: '1.1' })],
    ['Connect over HTTP/2', () => createConnectTransport({ baseUrl, httpVersion: '2' })],
    ['gRPC-Web over HTTP/1.1', () => createGrpcWebTransport({ baseUrl, httpVersion: '1.1' })],
  ])('%s', async (_name, transport) => {
    const client = createClient(CatalogService, transport());
    expect((await client.getFeature({ key: 'sso' })).feature?.name).toBe('SSO');
  });
});

test('responses are not compressed, though the client accepts gzip', async () => {
  // A raw gRPC call: each message's envelope starts with its compressed flag.
  const request = toBinary(GetFeatureRequestSchema, create(GetFeatureRequestSchema, { key: 'long' }));
  const envelope = Buffer.alloc(5 + request.length);
  envelope.writeUInt32BE(request.length, 1);
  envelope.set(request, 5);
  const chunks: Buffer[] = [];
  const session = http2.connect(baseUrl);
  try {
    const stream = session.request({
      ':method': 'POST',
      ':path': `/${CatalogService.typeName}/${CatalogService.method.getFeature.name}`,
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-accept-encoding': 'gzip',
    });
    stream.end(envelope);
    for await (const chunk of stream) chunks.push(chunk as Buffer);
  } finally {
    session.close();
  }
  const body = Buffer.concat(chunks);
  expect([body[0], body.readUInt32BE(1)]).toEqual([0, body.length - 5]);
  const response = fromBinary(GetFeatureResponseSchema, body.subarray(5));
  expect(response.feature?.name).toHaveLength(10_000);
});

describe('errors', () => {
  const client = () => createClient(CatalogService, createGrpcTransport({ baseUrl }));

  test('a domain error keeps its code and reason; bad input names its fields', async () => {
    const notFound = await client()
      .getFeature({ key: 'nope' })
      .catch((e: unknown) => ConnectError.from(e));
    expect(notFound).toMatchObject({ code: Code.NotFound, rawMessage: 'no feature "nope"' });
    expect((notFound as ConnectError).findDetails(ErrorInfoSchema)[0]).toMatchObject({
      reason: 'FEATURE_NOT_FOUND',
      domain: 'billing.catalog',
    });
    const invalid = (await client()
      .getFeature({ key: '' })
      .catch((e: unknown) => ConnectError.from(e))) as ConnectError;
    expect(invalid.code).toBe(Code.InvalidArgument);
    expect(invalid.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field)).toEqual(['key', 'name']);
  });

  test('a caller without the error details still reads the first offending field in the message', async () => {
    const invalid = await client()
      .getFeature({ key: '' })
      .catch((e: unknown) => ConnectError.from(e));
    expect(invalid).toMatchObject({ rawMessage: 'the request is not valid: key: required (and 1 more)' });
  });

  test('over gRPC, an error echoing a megabyte value whole is cut to a short answer', async () => {
    const err = (await client()
      .getFeature({ key: 'echo' })
      .catch((e: unknown) => ConnectError.from(e))) as ConnectError;
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe(`the feature ${'k'.repeat(1_000 - 'the feature '.length)}…`);
    expect(err.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => [v.field, v.description])).toEqual([
      [`metadata[${'k'.repeat(200 - 'metadata['.length)}…`, `${'k'.repeat(500)}…`],
    ]);
  });

  test("an error's internal detail stays out of the answer", async () => {
    const held = (await client()
      .getFeature({ key: 'held' })
      .catch((e: unknown) => ConnectError.from(e))) as ConnectError;
    expect(held).toMatchObject({ code: Code.FailedPrecondition, rawMessage: 'the feature is held' });
    expect(
      JSON.stringify({ message: held.message, details: held.details, metadata: [...held.metadata] }),
    ).not.toContain('p-41');
  });

  test('an unexpected error is INTERNAL and leaks nothing', async () => {
    const err = (await client()
      .getFeature({ key: 'secret' })
      .catch((e: unknown) => ConnectError.from(e))) as ConnectError;
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toBe('internal error');
    expect(JSON.stringify(err)).not.toContain('hunter2');
  });
});

test('quote keeps a short value whole and cuts a long one to a marked prefix', () => {
  expect(quote('team')).toBe('"team"');
  expect(quote('a"b')).toBe('"a\\"b"');
  expect(quote('x'.repeat(40))).toBe(`"${'x'.repeat(40)}"`);
  expect(quote('y'.repeat(1_000_000))).toBe(`"${'y'.repeat(40)}…"`);
});

describe('health and reflection', () => {
  test('grpc.health.v1 reports SERVING for the server and its services', async () => {
    const health = load('health/v1/health.proto', [`${root}node_modules/grpc-health-check/proto`]) as unknown as {
      grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
    };
    const client = new health.grpc.health.v1.Health(
      `127.0.0.1:${server.port}`,
      grpc.credentials.createInsecure(),
    ) as grpc.Client & Record<string, (req: object, cb: (err: Error | null, res?: { status: string }) => void) => void>;
    const check = (service: string) =>
      new Promise<string>((resolve, reject) =>
        client.Check?.({ service }, (err, res) => (err ? reject(err) : resolve(res?.status ?? ''))),
      );
    expect(await check('')).toBe('SERVING');
    expect(await check('billing.catalog.v1.CatalogService')).toBe('SERVING');
    client.close();
  });

  test.each(['v1', 'v1alpha'])('reflection %s lists services and resolves a symbol to its files', async (version) => {
    const defs = load(`grpc/reflection/${version}/reflection.proto`, [
      `${root}node_modules/@grpc/reflection/build/proto`,
    ]) as unknown as {
      grpc: { reflection: Record<string, { ServerReflection: grpc.ServiceClientConstructor }> };
    };
    const Ctor = defs.grpc.reflection[version]?.ServerReflection;
    if (!Ctor) throw new Error('no reflection client');
    const client = new Ctor(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure()) as grpc.Client &
      Record<
        string,
        () => grpc.ClientDuplexStream<
          object,
          Record<string, { service?: { name: string }[]; file_descriptor_proto?: Buffer[]; error_code?: number }>
        >
      >;
    const call = client.ServerReflectionInfo?.();
    if (!call) throw new Error('no stream');
    const responses: Record<
      string,
      { service?: { name: string }[]; file_descriptor_proto?: Buffer[]; error_code?: number }
    >[] = [];
    call.on('data', (d) => responses.push(d));
    const ended = new Promise((resolve) => call.on('end', resolve));
    call.write({ list_services: '' });
    call.write({ file_containing_symbol: 'billing.catalog.v1.CatalogService' });
    call.write({ file_containing_symbol: 'no.such.Symbol' });
    call.end();
    await ended;
    client.close();
    expect(responses[0]?.list_services_response?.service?.map((s) => s.name)).toEqual(
      expect.arrayContaining(['billing.catalog.v1.CatalogService', 'grpc.health.v1.Health']),
    );
    const files = responses[1]?.file_descriptor_response?.file_descriptor_proto ?? [];
    // The service's file, its imports (resources, types, timestamp, struct) and theirs.
    expect(files.length).toBeGreaterThanOrEqual(4);
    expect(
      files.map((f) => f.toString('latin1')).some((f) => f.includes('billing/catalog/v1/catalog_service.proto')),
    ).toBe(true);
    expect(responses[2]?.error_response?.error_code).toBe(5);
  });
});

describe('connections', () => {
  test('a client that connects and resets before sending anything does not take the server down', async () => {
    await new Promise<void>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: server.port }, () => {
        socket.resetAndDestroy();
        resolve();
      });
    });
    await new Promise((r) => setTimeout(r, 50));
    const client = createClient(CatalogService, createGrpcTransport({ baseUrl }));
    expect((await client.getFeature({ key: 'sso' })).feature?.name).toBe('SSO');
  });

  test('an HTTP/1.1 POST arriving one byte at a time is routed to HTTP/1.1, not mistaken for HTTP/2', async () => {
    const body = JSON.stringify({ key: 'sso' });
    const request =
      `POST /billing.catalog.v1.CatalogService/GetFeature HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
    const response = await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: server.port }, async () => {
        for (const byte of request.slice(0, 6)) {
          socket.write(byte);
          await new Promise((r) => setTimeout(r, 20));
        }
        socket.write(request.slice(6));
      });
      let text = '';
      socket.on('data', (d) => {
        text += d.toString();
      });
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    expect(response.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    expect(response).toContain('"name":"SSO"');
  });
});
