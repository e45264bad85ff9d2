// Hostile input against every RPC of every service: catalog, subscription and usage run on real PostgreSQL, and
// each RPC their protobuf descriptors declare (their own services and the AdminService each serves) is sent a NUL
// in each of its string fields, a megabyte in each of its keys, ids and map keys, an empty request, and an undeclared
// number in each of its enum fields. Each answers a clear code: INVALID_ARGUMENT naming the field where it must
// refuse, never INTERNAL or UNKNOWN, with a short message; and no call changes anything (every table of every
// service, the outbox included, keeps its row count).

import { catalogService } from '@billing/catalog';
import { queryBound } from '@billing/kit/db';
import { createMemoryBus } from '@billing/kit/memory-bus';
import { AdminService } from '@billing/proto/billing/admin/v1/admin_service_pb';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { CustomerService } from '@billing/proto/billing/subscription/v1/customer_service_pb';
import { UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import { catalogClient, subscriptionService } from '@billing/subscription';
import {
  buildMinutes,
  buildMinutesMeter,
  outcome,
  privateRepos,
  startTestService,
  type TestService,
  teamSpec,
  violations,
  waitFor,
} from '@billing/test/harness';
import { usageService } from '@billing/usage';
import type { DescField, DescMessage, DescMethod, DescService } from '@bufbuild/protobuf';
import { ScalarType } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, createClient, type Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';

const NUL = 'te\u0000am';
const MEGABYTE = 'k'.repeat(1_000_000);
/** A number no enum of the contracts declares. */
const UNDECLARED = 999;
/** Field names the contract bounds in length (docs/api.md): keys, ids and tokens. */
const BOUNDED_NAME = /(^|_)(key|keys|id|ids|token)$/;
/** Longest answer text accepted for a refusal: enough to name a field and quote a prefix of a value. */
const MAX_ANSWER_TEXT = 400;

/**
 * The RPCs an empty request is valid for: lists without a required filter, and ingestion, whose request_id is
 * optional. Every other RPC needs a request_id, a key or an id, and must refuse an empty request.
 */
const EMPTY_IS_VALID = new Set([
  'billing.catalog.v1.CatalogService/ListFeatures',
  'billing.catalog.v1.CatalogService/ListMeters',
  'billing.catalog.v1.CatalogService/ListPlans',
  'billing.catalog.v1.CatalogService/ListAddOns',
  'billing.subscription.v1.CustomerService/ListCustomers',
  'billing.subscription.v1.SubscriptionService/ListSubscriptions',
  'billing.subscription.v1.SubscriptionService/ListTestClocks',
  'billing.admin.v1.AdminService/ListParkedEvents',
  'billing.usage.v1.UsageService/IngestEvents',
  'billing.usage.v1.UsageService/IngestEventStream',
]);

/** The ingestion RPCs, which refuse a bad event alone (REJECTED, its reason and field) and ingest the rest. */
const PER_EVENT = new Set([
  'billing.usage.v1.UsageService/IngestEvents',
  'billing.usage.v1.UsageService/IngestEventStream',
]);

/** One hostile request: where the hostile value is (a proto field path), and the request's init shape. */
interface Probe {
  /** The field the refusal must name. */
  field: string;
  /**
   * A map key past what any map allows, which the kit does not bound by name: the service refuses it, or
   * another field of the otherwise empty request first, as long as the answer is a short INVALID_ARGUMENT.
   */
  mapKey?: boolean;
  /** The request. */
  request: Record<string, unknown>;
}

/** What a probe puts into a field, by the field's kind; undefined when it puts nothing there. */
interface Hostility {
  /** The value of a string field (of any name), or undefined to leave it alone. */
  text?: (field: DescField) => string | undefined;
  /** The value of an enum field. */
  enumNumber?: number;
  /** A key of a map with string keys. */
  mapKey?: string;
}

/**
 * Every probe of `desc`: one per field that takes the hostile value, however deep (the first element of a list,
 * an entry of a map, the member of a oneof), each request holding the value there and nothing else.
 */
function probes(desc: DescMessage, hostility: Hostility, seen: readonly DescMessage[] = []): Probe[] {
  if (seen.includes(desc)) return [];
  const out: Probe[] = [];
  for (const field of desc.fields) {
    const place = (value: unknown): Record<string, unknown> =>
      field.oneof ? { [field.oneof.localName]: { case: field.localName, value } } : { [field.localName]: value };
    const text = hostility.text?.(field);
    switch (field.fieldKind) {
      case 'scalar':
        if (field.scalar === ScalarType.STRING && text !== undefined) {
          out.push({ field: field.name, request: place(text) });
        }
        break;
      case 'enum':
        if (hostility.enumNumber !== undefined) out.push({ field: field.name, request: place(hostility.enumNumber) });
        break;
      case 'list':
        if (field.listKind === 'scalar' && field.scalar === ScalarType.STRING && text !== undefined) {
          out.push({ field: `${field.name}[0]`, request: place([text]) });
        } else if (field.listKind === 'enum' && hostility.enumNumber !== undefined) {
          out.push({ field: `${field.name}[0]`, request: place([hostility.enumNumber]) });
        } else if (field.listKind === 'message') {
          for (const inner of probes(field.message, hostility, [...seen, desc])) {
            out.push({ ...inner, field: `${field.name}[0].${inner.field}`, request: place([inner.request]) });
          }
        }
        break;
      case 'map':
        if (field.mapKind === 'scalar' && field.scalar === ScalarType.STRING && text !== undefined) {
          out.push({ field: `${field.name}["k"]`, request: place({ k: text }) });
        }
        if (field.mapKey === ScalarType.STRING && hostility.mapKey !== undefined) {
          out.push({ field: field.name, mapKey: true, request: place({ [hostility.mapKey]: 'v' }) });
        }
        break;
      case 'message':
        if (field.message.typeName === 'google.protobuf.Struct') {
          // A Struct's contents are named by its field.
          if (text !== undefined) out.push({ field: field.name, request: place({ note: text }) });
        } else {
          for (const inner of probes(field.message, hostility, [...seen, desc])) {
            out.push({ ...inner, field: `${field.name}.${inner.field}`, request: place(inner.request) });
          }
        }
        break;
    }
  }
  return out;
}

const NUL_IN_ANY_TEXT: Hostility = { text: () => NUL };
const MEGABYTE_IN_KEYS: Hostility = {
  text: (field) => (BOUNDED_NAME.test(field.name) ? MEGABYTE : undefined),
  mapKey: MEGABYTE,
};
const UNDECLARED_ENUMS: Hostility = { enumNumber: UNDECLARED };

interface Target {
  /** The service's name, as `startTestService` runs it. */
  service: string;
  /** The protobuf services it serves. */
  services: readonly DescService[];
}

const services: Record<string, TestService> = {};
const bus = createMemoryBus();

// The RPCs, from the descriptors: what each definition declares, and the AdminService the runtime adds to each.
const catalogTarget: Target = { service: 'catalog', services: [...catalogService.services, AdminService] };
// The subscription definition is built here only to read which services it serves: its catalog is never called.
const subscriptionTarget: Target = {
  service: 'subscription',
  services: [
    ...subscriptionService({
      catalog: catalogClient('http://127.0.0.1:1'),
      testClocksEnabled: true,
      billingClockIntervalMs: 0,
    }).services,
    AdminService,
  ],
};
const usageTarget: Target = { service: 'usage', services: [...usageService.services, AdminService] };
const rpcs = [catalogTarget, subscriptionTarget, usageTarget].flatMap((target) =>
  target.services.flatMap((service) =>
    service.methods.map((method) => ({
      target,
      method,
      name: `${service.typeName}/${method.name}`,
      title: `${target.service}: ${service.typeName}/${method.name}`,
    })),
  ),
);

/** Calls made so far (the last test checks that it follows them all). */
let calls = 0;

/** How a call ended: the answer, or the refusal. */
type Answer = { ok: true; message: Record<string, unknown> } | { ok: false; error: ConnectError };

/** Calls `method` of the service running `target` with one request (one message for a client stream). */
async function call(target: Target, method: DescMethod, request: object, transport: Transport): Promise<Answer> {
  const client = createClient(method.parent, transport) as unknown as Record<
    string,
    (input: unknown) => Promise<Record<string, unknown>>
  >;
  const invoke = client[method.localName];
  if (!invoke) throw new Error(`no client method for ${method.name} of ${target.service}`);
  const input =
    method.methodKind === 'client_streaming'
      ? (async function* () {
          yield request;
        })()
      : request;
  calls++;
  try {
    return { ok: true, message: await invoke(input) };
  } catch (err) {
    return { ok: false, error: ConnectError.from(err) };
  }
}

// One transport per service and protocol, so that the calls share their connection.
const transports = new Map<string, Transport>();

function transportOf(target: Target, protocol: 'grpc' | 'json'): Transport {
  const key = `${target.service} ${protocol}`;
  const known = transports.get(key);
  if (known) return known;
  const baseUrl = services[target.service]?.baseUrl;
  if (!baseUrl) throw new Error(`${target.service} is not running`);
  const transport =
    protocol === 'grpc'
      ? createGrpcTransport({ baseUrl })
      : createConnectTransport({ baseUrl, httpVersion: '2', useBinaryFormat: false });
  transports.set(key, transport);
  return transport;
}

const grpc = (target: Target) => transportOf(target, 'grpc');
const connectJson = (target: Target) => transportOf(target, 'json');

/** An answer as the test reports it: `ok`, or the code, reason text and fields of a refusal. */
function describeAnswer(answer: Answer): string {
  if (answer.ok) return 'ok';
  return `${Code[answer.error.code]}: ${answer.error.rawMessage.slice(0, 120)} [${violations(answer.error).join(', ')}]`;
}

/** Whether every event an ingestion answer reports on was rejected (a hostile event is refused alone). */
function allRejected(message: Record<string, unknown>): boolean {
  const rejected = Number(message.rejectedCount ?? 0);
  const accepted = Number(message.acceptedCount ?? 0);
  return rejected > 0 && accepted === 0;
}

/**
 * What is wrong with the answer to a probe of `field`, or undefined when it is right: INVALID_ARGUMENT naming the
 * field (the ingestion RPCs reject the event instead), with a short message.
 */
function refusalProblem(rpc: string, probe: Probe, answer: Answer): string | undefined {
  const { field } = probe;
  if (PER_EVENT.has(rpc) && field.startsWith('events[')) {
    return answer.ok && allRejected(answer.message)
      ? undefined
      : `expected the event rejected, got ${describeAnswer(answer)}`;
  }
  if (answer.ok) return 'expected INVALID_ARGUMENT, got ok';
  const { error } = answer;
  if (error.code !== Code.InvalidArgument || !(probe.mapKey === true || violations(error).includes(field))) {
    return `expected INVALID_ARGUMENT on ${field}, got ${describeAnswer(answer)}`;
  }
  if (error.rawMessage.length > MAX_ANSWER_TEXT) return `the message is ${error.rawMessage.length} characters long`;
  return undefined;
}

/** Sends every probe to `rpc` over `transport` and returns what was wrong, by field (empty when all was right). */
async function problems(
  rpc: (typeof rpcs)[number],
  found: Probe[],
  transport: (target: Target) => Transport,
): Promise<Record<string, string>> {
  const wrong: Record<string, string> = {};
  for (const probe of found) {
    const answer = await call(rpc.target, rpc.method, probe.request, transport(rpc.target));
    const problem = refusalProblem(rpc.name, probe, answer);
    if (problem) wrong[probe.field] = problem;
  }
  return wrong;
}

/**
 * A digest of every table of a service's database (the outbox, idempotency keys, consumer records and its own
 * tables): each table's row count and an md5 of its rows as text, in order, so that an update or an insert
 * and a delete show as well as an added row.
 */
async function tableDigests(service: TestService): Promise<Record<string, string>> {
  const em = service.context.db.fork();
  const tables = await queryBound<{ name: string }>(
    em,
    `select quote_ident(table_name) as name from information_schema.tables
      where table_schema = 'public' and table_type = 'BASE TABLE' order by table_name`,
    [],
  );
  const digests: Record<string, string> = {};
  for (const { name } of tables) {
    const [row] = await queryBound<{ n: string; digest: string }>(
      em,
      `select count(*) as n, md5(coalesce(string_agg(t::text, e'\\n' order by t::text), '')) as digest from ${name} t`,
      [],
    );
    digests[name] = `${row?.n} rows, ${row?.digest}`;
  }
  return digests;
}

async function allTableDigests(): Promise<Record<string, Record<string, string>>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [name, service] of Object.entries(services)) out[name] = await tableDigests(service);
  return out;
}

/** How many events of a service's outbox the relay has still to publish. */
async function unpublished(service: TestService): Promise<number> {
  const [row] = await queryBound<{ n: number }>(
    service.context.db.fork(),
    'select count(*)::int as n from outbox_event where published_at is null',
    [],
  );
  return row?.n ?? 0;
}

let before: Record<string, Record<string, string>>;

beforeAll(async () => {
  const catalog = await startTestService(catalogService, { bus });
  services.catalog = catalog;
  services.subscription = await startTestService(
    subscriptionService({
      catalog: catalogClient(catalog.baseUrl),
      testClocksEnabled: true,
      billingClockIntervalMs: 0,
    }),
    { bus },
  );
  const usage = await startTestService(usageService, { bus });
  services.usage = usage;
  // Something in every service, so that a refusal has something to leave alone.
  const catalogApi = createClient(CatalogService, createGrpcTransport({ baseUrl: catalog.baseUrl }));
  await catalogApi.createMeter({ requestId: 'seed-meter', meter: buildMinutesMeter });
  await catalogApi.createFeature({ requestId: 'seed-f1', feature: privateRepos });
  await catalogApi.createFeature({ requestId: 'seed-f2', feature: buildMinutes });
  await catalogApi.createPlan({ requestId: 'seed-plan', key: 'team', spec: teamSpec() });
  await catalogApi.publishPlan({ requestId: 'seed-publish', planKey: 'team' });
  const customers = createClient(CustomerService, createGrpcTransport({ baseUrl: services.subscription.baseUrl }));
  await customers.createCustomer({
    requestId: 'seed-customer',
    customer: { externalId: 'acme', name: 'Acme', billing: { currencyCode: 'USD' } },
  });
  const usageApi = createClient(UsageService, createGrpcTransport({ baseUrl: usage.baseUrl }));
  // The usage service learns the meter from the catalog's events, then counts an event for it.
  const now = Date.now();
  const period = { startTime: timestampFromDate(new Date(now - 3_600_000)), endTime: timestampFromDate(new Date(now)) };
  await waitFor(
    () => outcome(usageApi.getPeriodUsage({ customerExternalId: 'acme', meterKey: 'build_minutes', period })),
    (known) => known === 'ok',
  );
  const event = { id: 'seed-1', customerExternalId: 'acme', type: 'build.finished', properties: { minutes: 3 } };
  const seeded = await usageApi.ingestEvents({
    events: [{ ...event, eventTime: timestampFromDate(new Date(now - 60_000)) }],
  });
  expect(seeded.acceptedCount).toBe(1);
  // Its usage is published (a meter delta in the outbox) within a pass of the delta publisher; after that
  // nothing moves in the usage service until something is ingested.
  const deltas = async () =>
    (await queryBound<{ n: number }>(usage.context.db.fork(), 'select count(*)::int as n from outbox_event', []))[0]
      ?.n ?? 0;
  await waitFor(deltas, (events) => events > 0);
  // The relays stamp what they publish: the digests are taken once every outbox is published.
  for (const service of Object.values(services))
    await waitFor(
      () => unpublished(service),
      (n) => n === 0,
    );
  before = await allTableDigests();
}, 120_000);

afterAll(async () => {
  for (const service of Object.values(services)) await service.destroy();
  await bus.close();
});

test('every service serves RPCs, all of them enumerated', () => {
  expect(rpcs.length).toBeGreaterThan(50);
  const enumerated = new Set(rpcs.map((r) => r.name));
  expect([...EMPTY_IS_VALID, ...PER_EVENT].filter((name) => !enumerated.has(name))).toEqual([]);
});

describe.each(rpcs)('$title', (rpc) => {
  const nulProbes = probes(rpc.method.input, NUL_IN_ANY_TEXT);
  // A map key probe carries a request id, so that a mutation gets past it to the service's own checks.
  const takesRequestId = rpc.method.input.fields.some((f) => f.name === 'request_id');
  const megabyteProbes = probes(rpc.method.input, MEGABYTE_IN_KEYS).map((p) =>
    p.mapKey && takesRequestId ? { ...p, request: { requestId: 'hostile-map-key', ...p.request } } : p,
  );
  const enumProbes = probes(rpc.method.input, UNDECLARED_ENUMS);

  test('a NUL in any string field is refused naming the field, over gRPC', async () => {
    expect(nulProbes.length).toBeGreaterThan(0);
    expect(await problems(rpc, nulProbes, grpc)).toEqual({});
  });

  test('a NUL in any string field is refused naming the field, in Connect JSON', async () => {
    expect(await problems(rpc, nulProbes, connectJson)).toEqual({});
  });

  test('a megabyte in a key, an id or a map key is a short INVALID_ARGUMENT naming the field, over gRPC', async () => {
    expect(megabyteProbes.length).toBeGreaterThan(0);
    expect(await problems(rpc, megabyteProbes, grpc)).toEqual({});
  });

  // (An RPC whose request holds no enum gets no such test.)
  if (enumProbes.length > 0) {
    test('an undeclared enum number is refused naming the field', async () => {
      expect(await problems(rpc, enumProbes, grpc)).toEqual({});
    });
  }

  const emptyValid = EMPTY_IS_VALID.has(rpc.name);
  test(`an empty request is ${emptyValid ? 'answered' : 'INVALID_ARGUMENT'}`, async () => {
    const answer = await call(rpc.target, rpc.method, {}, grpc(rpc.target));
    if (emptyValid) expect(describeAnswer(answer)).toBe('ok');
    else {
      expect(answer.ok ? 'ok' : Code[answer.error.code]).toBe(Code[Code.InvalidArgument]);
      expect(answer.ok ? [] : violations(answer.error)).not.toEqual([]);
    }
  });

  // A mutation's request_id alone is no request either: the refusal names what else it needs, so a caller
  // learns of a missing field whatever it sent first.
  if (takesRequestId && !emptyValid) {
    test('a request holding only its request_id is INVALID_ARGUMENT naming another field', async () => {
      const answer = await call(rpc.target, rpc.method, { requestId: 'hostile-only-id' }, grpc(rpc.target));
      expect(answer.ok ? 'ok' : Code[answer.error.code]).toBe(Code[Code.InvalidArgument]);
      const named = answer.ok ? [] : violations(answer.error);
      expect(named.filter((field) => field !== 'request_id')).not.toEqual([]);
    });
  }
});

test('no hostile call changed anything: every table of every service holds what it held', async () => {
  // Jest runs the tests of a file in the order they are declared: this one comes after every call above.
  expect(calls).toBeGreaterThan(5 * rpcs.length);
  expect(await allTableDigests()).toEqual(before);
});
