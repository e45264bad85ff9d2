// The catalog called the way outside callers call it: a real @grpc/grpc-js client (Go and Python clients
// behave alike), `buf curl` through server reflection with no schema files, and plain HTTP/1.1 JSON.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createMemoryBus } from '@billing/kit/memory-bus';
import { startTestService, type TestService } from '@billing/test/harness';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { catalogService } from '../src/definition.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const run = promisify(execFile);
const bus = createMemoryBus();
let service: TestService;

type Callback = (err: grpc.ServiceError | null, value?: Record<string, unknown>) => void;
type CatalogStub = grpc.Client & Record<string, (request: object, callback: Callback) => void>;
let stub: CatalogStub;

function call(method: string, request: object): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const fn = stub[method];
    if (!fn) throw new Error(`no method ${method}`);
    fn.call(stub, request, (err, value) => (err ? reject(err) : resolve(value ?? {})));
  });
}

beforeAll(async () => {
  service = await startTestService(catalogService, { bus });
  const definition = protoLoader.loadSync('billing/catalog/v1/catalog_service.proto', {
    includeDirs: [`${root}proto`, `${root}node_modules/google-proto-files`],
    keepCase: true,
    defaults: true,
    enums: String,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    billing: { catalog: { v1: { CatalogService: grpc.ServiceClientConstructor } } };
  };
  stub = new loaded.billing.catalog.v1.CatalogService(
    `127.0.0.1:${service.port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as CatalogStub;
});

afterAll(async () => {
  stub.close();
  await service.destroy();
  await bus.close();
});

describe('grpc-js client', () => {
  test('creates and reads a feature', async () => {
    const created = await call('CreateFeature', {
      request_id: 'grpcjs-1',
      feature: { key: 'sso', name: 'Single sign-on', kind: 'FEATURE_KIND_BOOLEAN' },
    });
    expect(created.feature).toMatchObject({
      key: 'sso',
      name: 'Single sign-on',
      kind: 'FEATURE_KIND_BOOLEAN',
      archived: false,
    });
    const read = await call('GetFeature', { key: 'sso' });
    expect(read.feature).toMatchObject({ key: 'sso', kind: 'FEATURE_KIND_BOOLEAN' });
  });

  test('a malformed request is INVALID_ARGUMENT with the field in the status details', async () => {
    const err = (await call('CreateFeature', {
      request_id: 'grpcjs-2',
      feature: { key: 'Not A Key', name: '', kind: 'FEATURE_KIND_BOOLEAN' },
    }).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    const details = err.metadata.get('grpc-status-details-bin')[0];
    expect(Buffer.isBuffer(details)).toBe(true);
    // The serialized google.rpc.Status carries BadRequest with the field paths.
    expect(String(details)).toContain('feature.key');
    expect(String(details)).toContain('feature.name');
    const missing = (await call('GetFeature', { key: 'Not A Key' }).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(missing.code).toBe(grpc.status.NOT_FOUND);
  });
});

describe('buf curl through server reflection', () => {
  const buf = `${root}node_modules/.bin/buf`;

  test('lists the services and calls an RPC without any schema file', async () => {
    const listed = await run(buf, [
      'curl',
      '--protocol',
      'grpc',
      '--http2-prior-knowledge',
      '--list-services',
      service.baseUrl,
    ]);
    expect(listed.stdout.split('\n')).toContain('billing.catalog.v1.CatalogService');
    const created = await run(buf, [
      'curl',
      '--protocol',
      'grpc',
      '--http2-prior-knowledge',
      '-d',
      JSON.stringify({
        requestId: 'bufcurl-1',
        feature: { key: 'audit_log', name: 'Audit log', kind: 'FEATURE_KIND_BOOLEAN' },
      }),
      `${service.baseUrl}/billing.catalog.v1.CatalogService/CreateFeature`,
    ]);
    expect(JSON.parse(created.stdout).feature).toMatchObject({ key: 'audit_log', kind: 'FEATURE_KIND_BOOLEAN' });
  });
});

describe('HTTP/1.1 Connect JSON', () => {
  test('plain fetch can call the catalog', async () => {
    const response = await fetch(`${service.baseUrl}/billing.catalog.v1.CatalogService/GetFeature`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key: 'sso' }),
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { feature: { key: string } }).feature.key).toBe('sso');
  });
});
