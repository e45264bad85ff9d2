// Requests whose protobuf bytes cannot be decoded (a length-delimited field that promises more bytes than follow,
// a wire type that does not exist, a varint cut short, an event cut short inside a batch) sent to each service as
// a process, over gRPC, gRPC-Web, Connect, and Connect streaming: each answers INVALID_ARGUMENT, and none is
// logged as an error or with a stack.
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { CustomerService } from '@billing/proto/billing/subscription/v1/customer_service_pb';
import { UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import {
  createTestDatabase,
  type ServiceName,
  type ServiceProcess,
  startServiceProcess,
  type TestDatabase,
  waitFor,
} from '@billing/test/harness';
import type { DescMethod } from '@bufbuild/protobuf';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { logLines, WARN } from './observe.ts';
import { callWithBytes, checkHealthOnce, type WireProtocol } from './raw-protocols.ts';

/** Bytes no request message decodes from. */
const MALFORMED: Record<string, Uint8Array> = {
  // Field 1, length-delimited, promising 5 bytes; 2 follow.
  'a field longer than the message': new Uint8Array([0x0a, 0x05, 0x61, 0x62]),
  // Field 1 with wire type 7, which protobuf does not have.
  'a wire type that does not exist': new Uint8Array([0x0f, 0x01]),
  // Field 1 as a varint whose continuation bit promises another byte.
  'a varint cut short': new Uint8Array([0x08, 0xff]),
};

/** A batch whose one event (field 2, 3 bytes) holds its id field cut short: the hand decoder of ingestion reads it. */
const EVENT_CUT_SHORT = new Uint8Array([0x12, 0x03, 0x0a, 0x05, 0x61]);

const path = (method: DescMethod) => `/${method.parent.typeName}/${method.name}`;

/** The calls probed: a unary RPC of each service in every protocol, and usage's ingestion, batch and stream. */
const CALLS: { service: ServiceName; method: DescMethod; protocols: WireProtocol[] }[] = [
  { service: 'catalog', method: CatalogService.method.getFeature, protocols: ['gRPC', 'gRPC-Web', 'Connect'] },
  { service: 'subscription', method: CustomerService.method.getCustomer, protocols: ['gRPC', 'gRPC-Web', 'Connect'] },
  { service: 'usage', method: UsageService.method.listEvents, protocols: ['gRPC', 'gRPC-Web', 'Connect'] },
  { service: 'usage', method: UsageService.method.ingestEvents, protocols: ['gRPC', 'gRPC-Web', 'Connect'] },
  { service: 'usage', method: UsageService.method.ingestEventStream, protocols: ['gRPC', 'Connect streaming'] },
];

const databases: TestDatabase[] = [];
const processes = {} as Record<ServiceName, ServiceProcess>;

beforeAll(async () => {
  const names: ServiceName[] = ['catalog', 'subscription', 'usage'];
  databases.push(...(await Promise.all(names.map((n) => createTestDatabase(`malformed_${n}`)))));
  // Each alone, on the in-process bus: decoding is all this file is about.
  const started = await Promise.all(
    names.map((name, i) =>
      startServiceProcess(name, {
        [`${name.toUpperCase()}_DATABASE_URL`]: databases[i]?.url ?? '',
        NATS_URL: '',
        LOG_LEVEL: 'info',
      }),
    ),
  );
  for (const p of started) processes[p.service] = p;
  await Promise.all(
    started.map((p) =>
      waitFor(
        () => checkHealthOnce(p.baseUrl, 'readiness').catch(() => 'unreachable'),
        (answer) => answer === 'SERVING',
        30_000,
      ),
    ),
  );
}, 60_000);

afterAll(async () => {
  await Promise.all(Object.values(processes).map((p) => p.kill()));
  await Promise.all(databases.map((d) => d.drop()));
});

const cases = CALLS.flatMap(({ service, method, protocols }) =>
  protocols.flatMap((protocol) => {
    const bodies = Object.entries(MALFORMED);
    if (method === UsageService.method.ingestEvents) bodies.push(['an event cut short in the batch', EVENT_CUT_SHORT]);
    return bodies.map(([what, bytes]) => ({ service, rpc: path(method), protocol, what, bytes }));
  }),
);

test.each(cases)(
  '$rpc over $protocol with $what answers INVALID_ARGUMENT',
  async ({ service, rpc, protocol, bytes }) => {
    const answer = await callWithBytes(processes[service].baseUrl, protocol, rpc, bytes);
    expect(answer.code).toBe('InvalidArgument');
  },
);

test('no undecodable request is logged as a warning or an error, or with a stack', () => {
  const loud = Object.values(processes).flatMap((p) =>
    logLines(p)
      .filter((line) => line.level >= WARN || JSON.stringify(line).includes('"stack"'))
      .map((line) => `${p.service}: ${line.msg}`),
  );
  expect(loud).toEqual([]);
});
