// The request guard on a real server: text PostgreSQL cannot store, over-long keys and ids, and undeclared enum
// numbers are refused with INVALID_ARGUMENT naming the field before any handler runs, over every protocol, and
// the answer never carries the value whole.

import http2 from 'node:http2';
import { AdminService } from '@billing/proto/billing/admin/v1/admin_service_pb';
import { CatalogService, CreatePlanRequestSchema } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import type { FeatureKind } from '@billing/proto/billing/catalog/v1/resources_pb';
import { EntitlementService } from '@billing/proto/billing/entitlement/v1/entitlement_service_pb';
import {
  CustomerService,
  ListCustomersRequestSchema,
} from '@billing/proto/billing/subscription/v1/customer_service_pb';
import type { SubscriptionState } from '@billing/proto/billing/subscription/v1/resources_pb';
import {
  ListSubscriptionsRequestSchema,
  SubscriptionService,
} from '@billing/proto/billing/subscription/v1/subscription_service_pb';
import { type IngestEventsResponseSchema, UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import { BadRequestSchema } from '@billing/proto/google/rpc/error_details_pb';
import { reason, rpcError, testLogger, violations } from '@billing/test/harness';
import {
  create,
  createFileRegistry,
  type DescMessage,
  type DescMethodUnary,
  fromBinary,
  type JsonObject,
  toBinary,
} from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
  file_google_protobuf_wrappers,
} from '@bufbuild/protobuf/wkt';
import { Code, type ConnectError, createClient, type Transport } from '@connectrpc/connect';
import {
  compressionGzip,
  connectNodeAdapter,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from '@connectrpc/connect-node';
import * as grpcJs from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import { routeByCodec } from '../src/codec-route.ts';
import { errorInterceptor } from '../src/errors.ts';
import { lengthLimit, MAX_ID_LENGTH, MAX_KEY_LENGTH, requestGuard, requestViolations } from '../src/request-guard.ts';
import { binaryValuesRefusal, countRequestValues, drainUnreadRequestWhenAnswered } from '../src/request-limits.ts';
import { type ServerHandle, startServer } from '../src/server.ts';

// IngestEventsRequest as a hot path reads it: the same field numbers, `events` left as bytes.
const twin = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: 'guard_test/twin.proto',
    package: 'guard_test',
    syntax: 'proto3',
    messageType: [
      {
        name: 'IngestEventsRequest',
        field: [
          {
            name: 'request_id',
            jsonName: 'requestId',
            number: 1,
            label: FieldDescriptorProto_Label.OPTIONAL,
            type: FieldDescriptorProto_Type.STRING,
          },
          {
            name: 'events',
            jsonName: 'events',
            number: 2,
            label: FieldDescriptorProto_Label.REPEATED,
            type: FieldDescriptorProto_Type.BYTES,
          },
        ],
      },
    ],
  }),
  () => undefined,
).getMessage('guard_test.IngestEventsRequest') as DescMessage;

const binaryIngestEvents = { ...UsageService.method.ingestEvents, input: twin } as DescMethodUnary<
  DescMessage,
  typeof IngestEventsResponseSchema
>;

// A contract of wrapper fields, as a future service may declare them: a StringValue key, and StringValue ids in
// a list, a map and a oneof (protobuf-es holds the singular one as a bare string, the others as messages).
const { STRING, MESSAGE } = FieldDescriptorProto_Type;
const { OPTIONAL, REPEATED } = FieldDescriptorProto_Label;
const stringValue = '.google.protobuf.StringValue';
const wrappers = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: 'guard_test/wrappers.proto',
    package: 'guard_test',
    syntax: 'proto3',
    dependency: ['google/protobuf/wrappers.proto'],
    messageType: [
      {
        name: 'PutNoteRequest',
        field: [
          { name: 'note_key', jsonName: 'noteKey', number: 1, label: OPTIONAL, type: MESSAGE, typeName: stringValue },
          { name: 'text', jsonName: 'text', number: 2, label: OPTIONAL, type: MESSAGE, typeName: stringValue },
          {
            name: 'reader_ids',
            jsonName: 'readerIds',
            number: 3,
            label: REPEATED,
            type: MESSAGE,
            typeName: stringValue,
          },
          {
            name: 'labels',
            jsonName: 'labels',
            number: 4,
            label: REPEATED,
            type: MESSAGE,
            typeName: '.guard_test.PutNoteRequest.LabelsEntry',
          },
          {
            name: 'owner_id',
            jsonName: 'ownerId',
            number: 5,
            label: OPTIONAL,
            type: MESSAGE,
            typeName: stringValue,
            oneofIndex: 0,
          },
          {
            name: 'revision',
            jsonName: 'revision',
            number: 6,
            label: OPTIONAL,
            type: MESSAGE,
            typeName: '.google.protobuf.Int64Value',
          },
        ],
        nestedType: [
          {
            name: 'LabelsEntry',
            field: [
              { name: 'key', jsonName: 'key', number: 1, label: OPTIONAL, type: STRING },
              { name: 'value', jsonName: 'value', number: 2, label: OPTIONAL, type: MESSAGE, typeName: stringValue },
            ],
            options: { mapEntry: true },
          },
        ],
        oneofDecl: [{ name: 'owner' }],
      },
    ],
    service: [
      {
        name: 'NoteService',
        method: [{ name: 'PutNote', inputType: '.guard_test.PutNoteRequest', outputType: stringValue }],
      },
    ],
  }),
  (file) => (file === 'google/protobuf/wrappers.proto' ? file_google_protobuf_wrappers : undefined),
);
const putNote = wrappers.getService('guard_test.NoteService')?.methods[0] as DescMethodUnary;

let server: ServerHandle;
let baseUrl: string;
/** The RPCs whose handler ran, by name, since the test started. */
let handled: string[] = [];
/** How many messages the ingestion stream's handler read. */
let streamed = 0;

/** A handler that only records that it ran, under `name`. */
const recorded = (name: string) => () => {
  handled.push(name);
  return {};
};

beforeAll(async () => {
  server = await startServer({
    host: '127.0.0.1',
    port: 0,
    services: [AdminService, CatalogService, CustomerService, EntitlementService, SubscriptionService, UsageService],
    logger: testLogger,
    interceptors: [errorInterceptor('billing.test', testLogger), requestGuard()],
    routes(router) {
      router.service(AdminService, {
        republishEvents: recorded('republishEvents'),
      });
      router.service(EntitlementService, {
        reserve: recorded('reserve'),
      });
      router.rpc(putNote, recorded('putNote'));
      router.service(CatalogService, {
        getPlan: (req) => {
          handled.push('getPlan');
          return { plan: { key: req.planKey } };
        },
        createPlan: recorded('createPlan'),
        createFeature: recorded('createFeature'),
        listFeatures: recorded('listFeatures'),
      });
      router.service(CustomerService, {
        createCustomer: recorded('createCustomer'),
      });
      router.service(SubscriptionService, {
        listSubscriptions: recorded('listSubscriptions'),
      });
      router.service(UsageService, {
        async ingestEventStream(requests) {
          handled.push('ingestEventStream');
          for await (const _ of requests) streamed++;
          return {};
        },
      });
      routeByCodec(
        router,
        {
          method: UsageService.method.ingestEvents,
          impl: (req) => {
            handled.push(`ingestEvents json ${req.events[0]?.id ?? ''}`);
            return {};
          },
        },
        {
          method: binaryIngestEvents,
          impl: () => {
            handled.push('ingestEvents binary');
            return {};
          },
        },
      );
    },
  });
  baseUrl = `http://127.0.0.1:${server.port}`;
});

afterAll(async () => {
  await server.shutdown({ graceMs: 1_000 });
});

beforeEach(() => {
  handled = [];
  streamed = 0;
});

/** The field violations of an INVALID_ARGUMENT, as [field, description]. */
const fieldViolations = (err: ConnectError) =>
  err.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations.map((v) => [v.field, v.description]));

const grpc = () => createGrpcTransport({ baseUrl });
const json = () => createConnectTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: false });
const catalog = (transport: Transport = grpc()) => createClient(CatalogService, transport);
const customers = (transport: Transport = grpc()) => createClient(CustomerService, transport);
const usage = (transport: Transport = grpc()) => createClient(UsageService, transport);

describe('text PostgreSQL cannot store', () => {
  test.each([
    ['gRPC', grpc],
    ['Connect JSON over HTTP/1.1', json],
    ['gRPC-Web', () => createGrpcWebTransport({ baseUrl, httpVersion: '1.1' })],
  ])('a NUL in a nested string is INVALID_ARGUMENT naming it, before the handler (%s)', async (_name, transport) => {
    const err = await rpcError(
      customers(transport()).createCustomer({ requestId: 'r', customer: { externalId: 'acme', name: 'Ac\u0000me' } }),
    );
    expect([err.code, reason(err), violations(err)]).toEqual([
      Code.InvalidArgument,
      'INVALID_ARGUMENT',
      ['customer.name'],
    ]);
    expect(err.rawMessage).toBe('the request is not valid: customer.name: "Ac\\u0000me" holds a NUL character');
    expect(handled).toEqual([]);
  });

  test('a NUL in an element of a nested list is named by its index', async () => {
    const spec = { charges: [{ key: 'seats' }, { key: 'minutes', prices: [{ currencyCode: 'US\u0000D' }] }] };
    const err = await rpcError(catalog().createPlan({ requestId: 'r', key: 'team', spec }));
    expect(violations(err)).toEqual(['spec.charges[1].prices[0].currency_code']);
    expect(handled).toEqual([]);
  });

  test('a NUL in a map key or value is named by its key', async () => {
    const metadata = { 'k\u0000': 'v', fine: 'v\u0000' };
    const err = await rpcError(customers().createCustomer({ requestId: 'r', customer: { name: 'Acme', metadata } }));
    expect(violations(err)).toEqual(['customer.metadata["k\\u0000"]', 'customer.metadata["fine"]']);
    expect(handled).toEqual([]);
  });

  test('a NUL anywhere in a google.protobuf.Struct (a key, a nested string) is named by the field, where in it by the description', async () => {
    const config: JsonObject = { regions: ['eu', 'us\u0000'], limits: { 'seats\u0000': 10, plain: 'text' } };
    const spec = { entitlements: [{ featureKey: 'regions', value: { case: 'config' as const, value: config } }] };
    const err = await rpcError(catalog().createPlan({ requestId: 'r', key: 'team', spec }));
    expect(fieldViolations(err)).toEqual([
      ['spec.entitlements[0].config', 'at ["regions"][1]: "us\\u0000" holds a NUL character'],
      ['spec.entitlements[0].config', 'at ["limits"]["seats\\u0000"]: the key "seats\\u0000" holds a NUL character'],
    ]);
    expect(handled).toEqual([]);
  });

  test('a UTF-16 surrogate without its pair in a Struct is refused; a pair (an emoji) passes', async () => {
    const plan = (note: string) => ({
      requestId: 'r',
      key: 'team',
      spec: { entitlements: [{ featureKey: 'notes', value: { case: 'config' as const, value: { note } } }] },
    });
    const refused = await rpcError(catalog(json()).createPlan(plan('half \ud83d')));
    expect(fieldViolations(refused)).toEqual([
      ['spec.entitlements[0].config', 'at ["note"]: "half \\ud83d" holds a UTF-16 surrogate without its pair'],
    ]);
    await catalog(json()).createPlan(plan('whole \ud83d\ude00'));
    expect(handled).toEqual(['createPlan']);
    // In a string field, protobuf-es refuses it while decoding the JSON, as INVALID_ARGUMENT too.
    const decoded = await rpcError(
      customers(json()).createCustomer({ requestId: 'r', customer: { name: 'A \ud83d' } }),
    );
    expect(decoded.code).toBe(Code.InvalidArgument);
    expect(handled).toEqual(['createPlan']);
  });

  test('a Struct nested a hundred thousand deep is walked without exhausting the stack', () => {
    let deep: JsonObject = { leaf: 'a\u0000' };
    for (let i = 0; i < 100_000; i++) deep = { d: deep };
    const request = create(CreatePlanRequestSchema, {
      spec: { entitlements: [{ value: { case: 'config', value: {} } }] },
    });
    const entitlement = request.spec?.entitlements[0];
    if (entitlement?.value.case !== 'config') throw new Error('the entitlement was not built');
    entitlement.value.value = deep;
    const [found] = requestViolations(CreatePlanRequestSchema, request);
    expect(found?.field).toBe('spec.entitlements[0].config');
    expect(found?.description).toBe('at …["d"]["d"]["leaf"]: "a\\u0000" holds a NUL character');
  });

  test('a place deep in a Struct is described by its last three segments, each key quoted as a prefix', () => {
    const long = 'k'.repeat(60);
    const config: JsonObject = { a: { b: { [long]: [{ c: 'x\u0000' }] } } };
    const request = create(CreatePlanRequestSchema, {
      spec: { entitlements: [{ value: { case: 'config', value: config } }] },
    });
    expect(requestViolations(CreatePlanRequestSchema, request)).toEqual([
      {
        field: 'spec.entitlements[0].config',
        description: `at …["${'k'.repeat(40)}…"][0]["c"]: "x\\u0000" holds a NUL character`,
      },
    ]);
  });

  test('over gRPC, a hundred and fifty refusals deep in Structs are an INVALID_ARGUMENT listing what fits in 4 KiB', async () => {
    // Nine keys of 46 characters and a NUL at the leaf: each violation's place is long, and there are many.
    const keys = Array.from({ length: 9 }, (_, depth) => `level_${depth}_${'x'.repeat(38)}`);
    const config = keys.reduceRight<JsonObject>((inner, key) => ({ [key]: inner }), { leaf: 'a\u0000' });
    const entitlements = Array.from({ length: 150 }, (_, i) => ({
      featureKey: `feature_${i}`,
      value: { case: 'config' as const, value: config },
    }));
    const err = await rpcError(catalog().createPlan({ requestId: 'r', key: 'team', spec: { entitlements } }));
    expect([err.code, reason(err)]).toEqual([Code.InvalidArgument, 'INVALID_ARGUMENT']);
    const place = `at …["level_7_${'x'.repeat(32)}…"]["level_8_${'x'.repeat(32)}…"]["leaf"]`;
    expect(err.rawMessage).toBe(
      `the request is not valid: spec.entitlements[0].config: ${place}: "a\\u0000" holds a NUL character (and 149 more)`,
    );
    // Each violation: 28-29 bytes of field, 136 of description, at most 9 of framing; 4,096 bytes hold 23.
    const [detail] = err.findDetails(BadRequestSchema);
    expect(detail?.fieldViolations.map((v) => v.field)).toEqual(
      Array.from({ length: 23 }, (_, i) => `spec.entitlements[${i}].config`),
    );
    expect(toBinary(BadRequestSchema, create(BadRequestSchema, detail)).length).toBeLessThanOrEqual(4_096);
    // What gRPC's C-core clients count against their 8 KiB: each trailer's name and value, and 32 bytes more.
    const trailers = [...err.metadata].reduce((sum, [name, value]) => sum + name.length + value.length + 32, 0);
    expect(trailers).toBeLessThan(8_192);
    expect(handled).toEqual([]);
  });
});

describe('keys and ids', () => {
  test('a key, an id, a request id and a token are bounded by their field names', () => {
    expect(
      ['key', 'plan_key', 'plan_keys', 'id', 'customer_id', 'ancestor_ids', 'request_id', 'stripe_customer_id'].map(
        lengthLimit,
      ),
    ).toEqual([64, 64, 64, 128, 128, 128, 128, 255]);
    expect(['page_token', 'name', 'description', 'document'].map(lengthLimit)).toEqual([
      1_024,
      undefined,
      undefined,
      undefined,
    ]);
  });

  test('a key at its limit reaches the handler; one character more is INVALID_ARGUMENT on the field', async () => {
    await catalog().getPlan({ planKey: 'k'.repeat(MAX_KEY_LENGTH) });
    expect(handled).toEqual(['getPlan']);
    const err = await rpcError(catalog().getPlan({ planKey: 'k'.repeat(MAX_KEY_LENGTH + 1) }));
    expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, ['plan_key']]);
    expect(err.rawMessage).toBe('the request is not valid: plan_key: at most 64 characters (got 65)');
    expect(handled).toEqual(['getPlan']);
  });

  test('ids, request ids and page tokens past their limits are refused by name', async () => {
    const err = await rpcError(
      customers().createCustomer({
        requestId: 'r'.repeat(MAX_ID_LENGTH + 1),
        customer: { parentId: 'p'.repeat(MAX_ID_LENGTH + 1), ancestorIds: ['a', 'a'.repeat(MAX_ID_LENGTH + 1)] },
      }),
    );
    expect(violations(err)).toEqual(['request_id', 'customer.parent_id', 'customer.ancestor_ids[1]']);
    const token = await rpcError(catalog().listFeatures({ pageToken: 't'.repeat(1_025) }));
    expect(violations(token)).toEqual(['page_token']);
    expect(handled).toEqual([]);
  });

  test('over gRPC fifty thousand bad ids are an INVALID_ARGUMENT listing the first that fit in 4 KiB, counting all', async () => {
    const ancestorIds = Array.from({ length: 50_000 }, (_, i) => `a${i}\u0000`);
    const err = await rpcError(customers().createCustomer({ requestId: 'r', customer: { ancestorIds } }));
    expect(err.code).toBe(Code.InvalidArgument);
    // Ids 0-9 take 24 + 32 + 9 bytes each (field, description, framing), ids 10-99 take 25 + 33 + 9: ten of the
    // first and 51 of the second make 4,067 bytes, and a 62nd would pass 4,096.
    expect(violations(err)).toEqual(Array.from({ length: 61 }, (_, i) => `customer.ancestor_ids[${i}]`));
    expect(err.rawMessage).toBe(
      'the request is not valid: customer.ancestor_ids[0]: "a0\\u0000" holds a NUL character (and 49999 more)',
    );
  });

  test('over gRPC a megabyte key is a short INVALID_ARGUMENT, with no part of it in the answer but a prefix', async () => {
    const megabyte = `${'x'.repeat(1_000_000)}\u0000`;
    const err = await rpcError(catalog().getPlan({ planKey: megabyte }));
    expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, ['plan_key']]);
    expect(err.rawMessage).toBe('the request is not valid: plan_key: at most 64 characters (got 1000001)');
    const answer = JSON.stringify({ message: err.rawMessage, details: err.details, metadata: [...err.metadata] });
    expect(answer.length).toBeLessThan(2_000);
    const nul = await rpcError(catalog().listFeatures({ pageToken: `${'y'.repeat(500)}\u0000` }));
    expect(nul.rawMessage).toBe(`the request is not valid: page_token: "${'y'.repeat(40)}…" holds a NUL character`);
  });
});

describe('enums', () => {
  test('a number the enum does not declare is INVALID_ARGUMENT naming the field', async () => {
    const err = await rpcError(
      catalog().createFeature({ requestId: 'r', feature: { key: 'sso', kind: 99 as FeatureKind } }),
    );
    expect(violations(err)).toEqual(['feature.kind']);
    expect(err.rawMessage).toBe(
      'the request is not valid: feature.kind: 99 is not a value of billing.catalog.v1.FeatureKind',
    );
    expect(handled).toEqual([]);
  });

  test('in a list, the undeclared element is named by its index; declared values (0 too) pass', async () => {
    const subscriptions = createClient(SubscriptionService, json());
    const err = await rpcError(subscriptions.listSubscriptions({ states: [1, -3 as SubscriptionState] }));
    expect(violations(err)).toEqual(['states[1]']);
    await subscriptions.listSubscriptions({ states: [0, 1] });
    await catalog().createFeature({ requestId: 'r', feature: { key: 'sso', kind: 0 } });
    expect(handled).toEqual(['listSubscriptions', 'createFeature']);
  });
});

describe('times', () => {
  const admin = () => createClient(AdminService, grpc());
  const FIRST_SECOND = -62_135_596_800n; // 0001-01-01T00:00:00Z
  const LAST_SECOND = 253_402_300_799n; // 9999-12-31T23:59:59Z

  test.each([
    [
      'far in the future',
      { seconds: 10n ** 15n, nanos: 0 },
      'not a time from 0001-01-01 to 9999-12-31 (seconds 1000000000000000)',
    ],
    [
      'far in the past',
      { seconds: -(10n ** 12n), nanos: 0 },
      'not a time from 0001-01-01 to 9999-12-31 (seconds -1000000000000)',
    ],
    [
      'a second before the first',
      { seconds: FIRST_SECOND - 1n, nanos: 999_999_999 },
      'not a time from 0001-01-01 to 9999-12-31 (seconds -62135596801)',
    ],
    [
      'a second after the last',
      { seconds: LAST_SECOND + 1n, nanos: 0 },
      'not a time from 0001-01-01 to 9999-12-31 (seconds 253402300800)',
    ],
    ['with negative nanos', { seconds: 0n, nanos: -1 }, 'nanos must be from 0 to 999999999 (got -1)'],
    [
      'with a whole second of nanos',
      { seconds: 0n, nanos: 1_000_000_000 },
      'nanos must be from 0 to 999999999 (got 1000000000)',
    ],
  ])(
    'a Timestamp %s is INVALID_ARGUMENT naming the field, before the handler',
    async (_name, sinceTime, description) => {
      const err = await rpcError(admin().republishEvents({ requestId: 'r', sinceTime }));
      expect([err.code, fieldViolations(err)]).toEqual([Code.InvalidArgument, [['since_time', description]]]);
      expect(handled).toEqual([]);
    },
  );

  test('the first and the last instant a Timestamp may hold reach the handler', async () => {
    await admin().republishEvents({ requestId: 'r', sinceTime: { seconds: FIRST_SECOND, nanos: 0 } });
    await admin().republishEvents({ requestId: 'r', sinceTime: { seconds: LAST_SECOND, nanos: 999_999_999 } });
    expect(handled).toEqual(['republishEvents', 'republishEvents']);
  });

  test('a Duration past 10,000 years, or with nanos of the other sign, is INVALID_ARGUMENT naming the field', async () => {
    const entitlements = createClient(EntitlementService, grpc());
    const refused = [
      { seconds: 315_576_000_001n, nanos: 0 },
      { seconds: -315_576_000_001n, nanos: 0 },
      { seconds: 1n, nanos: -1 },
      { seconds: -1n, nanos: 1 },
      { seconds: 0n, nanos: 1_000_000_000 },
    ];
    const answers = [];
    for (const ttl of refused)
      answers.push(fieldViolations(await rpcError(entitlements.reserve({ requestId: 'r', ttl }))));
    const range = 'not a duration of at most 10000 years either way';
    const sign = 'nanos must be from -999999999 to 999999999, of the sign of seconds';
    expect(answers).toEqual([
      [['ttl', `${range} (seconds 315576000001)`]],
      [['ttl', `${range} (seconds -315576000001)`]],
      [['ttl', `${sign} (got -1)`]],
      [['ttl', `${sign} (got 1)`]],
      [['ttl', `${sign} (got 1000000000)`]],
    ]);
    expect(handled).toEqual([]);
    for (const ttl of [
      { seconds: 315_576_000_000n, nanos: 999_999_999 },
      { seconds: -315_576_000_000n, nanos: -999_999_999 },
      { seconds: 0n, nanos: -5 },
    ]) {
      await entitlements.reserve({ requestId: 'r', ttl });
    }
    expect(handled).toEqual(['reserve', 'reserve', 'reserve']);
  });
});

describe('wrapper types', () => {
  const put = (input: Record<string, unknown>) => grpc().unary(putNote, undefined, undefined, undefined, input);

  test('a StringValue is checked as a string field of its name: its length limit, and text PostgreSQL cannot store', async () => {
    const err = await rpcError(
      put({
        noteKey: 'k'.repeat(MAX_KEY_LENGTH + 1),
        text: 'a\u0000b',
        readerIds: [{ value: 'fine' }, { value: 'r'.repeat(MAX_ID_LENGTH + 1) }],
        labels: { colour: { value: 'bl\u0000ue' } },
        owner: { case: 'ownerId', value: { value: 'o\u0000' } },
        revision: 7n,
      }),
    );
    expect([err.code, fieldViolations(err)]).toEqual([
      Code.InvalidArgument,
      [
        ['note_key', 'at most 64 characters (got 65)'],
        ['text', '"a\\u0000b" holds a NUL character'],
        ['reader_ids[1]', 'at most 128 characters (got 129)'],
        ['labels["colour"]', '"bl\\u0000ue" holds a NUL character'],
        ['owner_id', '"o\\u0000" holds a NUL character'],
      ],
    ]);
    expect(handled).toEqual([]);
  });

  test('StringValues within their limits reach the handler', async () => {
    await put({
      noteKey: 'k'.repeat(MAX_KEY_LENGTH),
      text: 'any length of text '.repeat(100),
      readerIds: [{ value: 'r'.repeat(MAX_ID_LENGTH) }],
      labels: { colour: { value: 'blue' } },
      owner: { case: 'ownerId', value: { value: 'owner' } },
    });
    expect(handled).toEqual(['putNote']);
  });
});

describe('a request served through routeByCodec', () => {
  test("the fields its binary twin leaves as bytes are its handler's to check, in JSON as in binary", async () => {
    const events = [{ id: 'e\u0000', customerExternalId: 'acme', type: 'build.finished' }];
    await usage(json()).ingestEvents({ events });
    await usage(grpc()).ingestEvents({ events });
    expect(handled).toEqual(['ingestEvents json e\u0000', 'ingestEvents binary']);
  });

  test('its own fields are checked in JSON and in binary', async () => {
    for (const transport of [json(), grpc()]) {
      const err = await rpcError(usage(transport).ingestEvents({ requestId: 'r\u0000', events: [] }));
      expect(violations(err)).toEqual(['request_id']);
    }
    expect(handled).toEqual([]);
  });
});

test('a streamed request is checked as the handler reads it: the stream fails at the first bad message', async () => {
  async function* requests() {
    yield { events: [{ id: 'e1' }] };
    yield { events: [{ id: 'e2', customerExternalId: 'ac\u0000me' }] };
    yield { events: [{ id: 'e3' }] };
  }
  const err = await rpcError(usage().ingestEventStream(requests()));
  expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, ['events[0].customer_external_id']]);
  expect(err.rawMessage).toMatch(/^streamed request 1 is not valid: events\[0\]\.customer_external_id: /);
  expect([handled, streamed]).toEqual([['ingestEventStream'], 1]);
});

// A server whose request messages are bounded as request-limits.ts bounds them: values are counted on the wire before
// Connect decodes a message, and a call whose handler did not read its whole request has the rest drained once
// answered. Its limits are small, so that a test reaches them with small requests; it allows 4 concurrent streams
// per connection, so that a stream left open shows as a call that never starts.
describe('request messages bounded before they are decoded', () => {
  const LIMITS = { readMaxBytes: 64 * 1024, maxValues: 1_000 };
  let bounded: http2.Http2Server;
  let boundedUrl: string;
  let decoded: string[] = [];

  beforeAll(async () => {
    const handler = connectNodeAdapter({
      interceptors: [errorInterceptor('billing.test', testLogger), requestGuard()],
      readMaxBytes: LIMITS.readMaxBytes,
      routes(router) {
        router.service(CustomerService, {
          listCustomers: (req) => {
            decoded.push(`listCustomers ${req.externalIds.length}`);
            return {};
          },
          createCustomer: (req) => {
            decoded.push(`createCustomer ${Object.keys(req.customer?.metadata ?? {}).length}`);
            return {};
          },
        });
        router.service(SubscriptionService, {
          listSubscriptions: (req) => {
            decoded.push(`listSubscriptions ${req.states.length}`);
            return {};
          },
        });
        router.service(UsageService, {
          async ingestEventStream(requests) {
            for await (const batch of requests) decoded.push(`batch ${batch.events.length}`);
            return {};
          },
          amendEvent: () => {
            decoded.push('amendEvent');
            return {};
          },
        });
        countRequestValues(router, LIMITS);
      },
    });
    bounded = http2.createServer({ settings: { maxConcurrentStreams: 4 } }, (req, res) => {
      drainUnreadRequestWhenAnswered(req);
      handler(req, res);
    });
    await new Promise<void>((resolve) => bounded.listen(0, '127.0.0.1', resolve));
    const address = bounded.address();
    boundedUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => bounded.close(resolve));
  });

  beforeEach(() => {
    decoded = [];
  });

  const ids = (n: number) => Array.from({ length: n }, (_, i) => `c${i}`);
  const transports: [string, () => Transport][] = [
    ['gRPC', () => createGrpcTransport({ baseUrl: boundedUrl })],
    ['gRPC-Web', () => createGrpcWebTransport({ baseUrl: boundedUrl, httpVersion: '2' })],
    ['Connect binary', () => createConnectTransport({ baseUrl: boundedUrl, httpVersion: '2' })],
    ['Connect JSON', () => createConnectTransport({ baseUrl: boundedUrl, httpVersion: '2', useBinaryFormat: false })],
    ['gRPC, gzip', () => createGrpcTransport({ baseUrl: boundedUrl, sendCompression: compressionGzip })],
    [
      'Connect binary, gzip',
      () => createConnectTransport({ baseUrl: boundedUrl, httpVersion: '2', sendCompression: compressionGzip }),
    ],
  ];

  test.each(transports)(
    'a list past the limit is INVALID_ARGUMENT naming it, and never decoded (%s)',
    async (_name, transport) => {
      const err = await rpcError(createClient(CustomerService, transport()).listCustomers({ externalIds: ids(3_000) }));
      expect([err.code, reason(err), violations(err)]).toEqual([
        Code.InvalidArgument,
        'INVALID_ARGUMENT',
        ['external_ids'],
      ]);
      expect(err.rawMessage).toBe(
        'the request is too large: external_ids: more than 1000 values (messages, list elements and map entries) in one message',
      );
      expect(decoded).toEqual([]);
    },
  );

  test.each(transports)('a request within the limit is decoded whole (%s)', async (_name, transport) => {
    await createClient(CustomerService, transport()).listCustomers({ externalIds: ids(900) });
    expect(decoded).toEqual(['listCustomers 900']);
  });

  test('in binary, a message holding exactly the limit passes, and one value more is refused', async () => {
    const client = createClient(CustomerService, createGrpcTransport({ baseUrl: boundedUrl }));
    await client.listCustomers({ externalIds: ids(1_000) });
    expect(decoded).toEqual(['listCustomers 1000']);
    expect((await rpcError(client.listCustomers({ externalIds: ids(1_001) }))).code).toBe(Code.InvalidArgument);
  });

  test('values are counted however deep: a map in a nested message is named by its path', async () => {
    const metadata = Object.fromEntries(ids(2_000).map((id) => [id, 'v']));
    const err = await rpcError(
      createClient(CustomerService, createGrpcTransport({ baseUrl: boundedUrl })).createCustomer({
        requestId: 'r',
        customer: { metadata },
      }),
    );
    expect(violations(err)).toEqual(['customer.metadata']);
    expect(decoded).toEqual([]);
  });

  test('a Struct of many values is named by its field, not by the places inside it', async () => {
    const properties = { list: Array.from({ length: 2_000 }, (_, i) => i) };
    const err = await rpcError(
      createClient(UsageService, createGrpcTransport({ baseUrl: boundedUrl })).amendEvent({
        requestId: 'r',
        properties,
      }),
    );
    expect(violations(err)).toEqual(['properties']);
  });

  test('packed numbers count one value each', async () => {
    const packed = new BinaryWriter().tag(7, WireType.LengthDelimited).fork();
    for (let i = 0; i < 1_001; i++) packed.int32(1);
    const bytes = packed.join().finish();
    const err = await rpcError(
      createClient(SubscriptionService, createGrpcTransport({ baseUrl: boundedUrl })).listSubscriptions(
        fromBinary(ListSubscriptionsRequestSchema, bytes),
      ),
    );
    expect(violations(err)).toEqual(['states']);
    expect(decoded).toEqual([]);
    expect(binaryValuesRefusal(ListSubscriptionsRequestSchema, bytes, 1_001)).toBeUndefined();
  });

  test('unknown fields count too: a message of nothing else is refused as a whole', () => {
    const writer = new BinaryWriter();
    for (let i = 0; i < 1_001; i++) writer.tag(99, WireType.Varint).int32(0);
    expect(binaryValuesRefusal(ListCustomersRequestSchema, writer.finish(), 1_000)).toEqual({
      field: '',
      maxValues: 1_000,
    });
  });

  test('a stream is counted message by message: it fails at the first message past the limit', async () => {
    async function* batches() {
      yield { events: [{ id: 'e1' }] };
      yield { events: ids(2_000).map((id) => ({ id })) };
      yield { events: [{ id: 'e3' }] };
    }
    const err = await rpcError(
      createClient(UsageService, createGrpcTransport({ baseUrl: boundedUrl })).ingestEventStream(batches()),
    );
    expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, ['events']]);
    expect(err.rawMessage).toMatch(/^streamed request 1 is too large: /);
    expect(decoded).toEqual(['batch 1']);
  });

  test('requests past readMaxBytes on one connection are each refused, and each stream ends (the connection serves on)', async () => {
    // grpc-js stops sending once answered and leaves its side of the stream open: without the drain, the fifth of
    // these would wait for a stream slot for as long as the connection lasts.
    const client = new grpcJs.Client(new URL(boundedUrl).host, grpcJs.credentials.createInsecure());
    const call = (bytes: Buffer) =>
      new Promise<string>((resolve) => {
        client.makeUnaryRequest(
          `/${CustomerService.typeName}/${CustomerService.method.listCustomers.name}`,
          (b: Buffer) => b,
          (b: Buffer) => b,
          bytes,
          new grpcJs.Metadata(),
          // A stream that never starts answers DEADLINE_EXCEEDED rather than hanging the test.
          { deadline: Date.now() + 10_000 },
          (error) => resolve(error ? grpcJs.status[error.code] : 'OK'),
        );
      });
    const tooLarge = Buffer.alloc(LIMITS.readMaxBytes + 512 * 1024);
    try {
      const answers: string[] = [];
      for (let i = 0; i < 12; i++) answers.push(await call(tooLarge));
      expect(answers).toEqual(Array(12).fill('RESOURCE_EXHAUSTED'));
      expect(await call(Buffer.alloc(0))).toBe('OK');
    } finally {
      client.close();
    }
  });
});
