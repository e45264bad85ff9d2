// Every error reason the contracts document, answered by the real services: the comments of the .proto files of
// the catalog, subscription, usage and admin APIs are read for the reasons they name (`fails with ALREADY_EXISTS
// reason IDEMPOTENCY_KEY_REUSED`, `Typical reasons: A, B`), each at the most specific place it is named (an RPC,
// through its own comment or its request's and response's; else a service, through the file's header; else a
// package), and each such reason gets a test that provokes it from catalog, subscription and usage running on
// real PostgreSQL and asserts the code (the documented one, where the comment names it), the ErrorInfo reason and
// its domain. The last test checks that the reasons tested are exactly the reasons documented, so that a reason
// documented anew fails until it has its test.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { catalogService } from '@billing/catalog';
import { queryBound } from '@billing/kit/db';
import { createMemoryBus } from '@billing/kit/memory-bus';
import { AdminService } from '@billing/proto/billing/admin/v1/admin_service_pb';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { BillingTiming, MeterAggregation, PriceModel } from '@billing/proto/billing/catalog/v1/resources_pb';
import { CustomerService } from '@billing/proto/billing/subscription/v1/customer_service_pb';
import { BillTo, CancelMode } from '@billing/proto/billing/subscription/v1/resources_pb';
import { ChangeTiming, SubscriptionService } from '@billing/proto/billing/subscription/v1/subscription_service_pb';
import { UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import { ErrorInfoSchema } from '@billing/proto/google/rpc/error_details_pb';
import { catalogClient, subscriptionService } from '@billing/subscription';
import {
  buildMinutes,
  buildMinutesMeter,
  privateRepos,
  reason,
  rpcError,
  startTestService,
  type TestService,
  teamSpec,
  waitFor,
} from '@billing/test/harness';
import { usageService } from '@billing/usage';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { type Client, Code, type ConnectError, createClient, type Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, expect, test } from '@jest/globals';

// ---- the reasons the contracts document ----

const PROTO_ROOT = fileURLToPath(new URL('../proto/', import.meta.url));
/** The contracts whose reasons the services answer with. */
const CONTRACTS = ['billing/catalog', 'billing/subscription', 'billing/usage', 'billing/admin'];

/** A reason a contract documents, where (`pkg.Service/Method`, `pkg.Service` or `pkg`) and with which code. */
interface DocumentedReason {
  place: string;
  reason: string;
  /** The code the comment names with the reason, if it names one. */
  code: Code | undefined;
}

/** What a comment is attached to: the declaration on the line after it. */
type Attachment =
  | { kind: 'file' }
  | { kind: 'service'; name: string }
  | { kind: 'rpc'; service: string; name: string }
  | { kind: 'type'; name: string };

interface ProtoFile {
  pkg: string;
  services: string[];
  rpcs: { service: string; name: string; types: string[] }[];
  comments: { text: string; attachedTo: Attachment }[];
}

/** Reads the declarations of a .proto file that comments attach to, and its comments. */
function parseProto(source: string): ProtoFile {
  const file: ProtoFile = { pkg: '', services: [], rpcs: [], comments: [] };
  // The blocks the current line is inside of, outermost first.
  const open: { kind: string; name: string }[] = [];
  let comment: string[] = [];
  for (const raw of source.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('//')) {
      comment.push(line.slice(2).trim());
      continue;
    }
    if (line === '') continue;
    const declared = /^(service|message|enum|oneof)\s+(\w+)/.exec(line);
    const rpc = /^rpc\s+(\w+)\s*\(\s*(?:stream\s+)?([\w.]+)\s*\)\s*returns\s*\(\s*(?:stream\s+)?([\w.]+)\s*\)/.exec(
      line,
    );
    const inside = open.at(-1);
    let attachedTo: Attachment;
    if (/^(syntax|package|import|option)\b/.test(line)) attachedTo = { kind: 'file' };
    else if (declared?.[1] === 'service' && declared[2]) attachedTo = { kind: 'service', name: declared[2] };
    else if (rpc?.[1] && inside?.kind === 'service') attachedTo = { kind: 'rpc', service: inside.name, name: rpc[1] };
    else attachedTo = { kind: 'type', name: open[0]?.name ?? declared?.[2] ?? '' };
    if (comment.length > 0) file.comments.push({ text: comment.join(' '), attachedTo });
    comment = [];
    const pkg = /^package\s+([\w.]+)\s*;/.exec(line)?.[1];
    if (pkg) file.pkg = pkg;
    if (declared?.[1] === 'service' && declared[2]) file.services.push(declared[2]);
    if (rpc?.[1] && rpc[2] && rpc[3] && inside?.kind === 'service') {
      file.rpcs.push({ service: inside.name, name: rpc[1], types: [rpc[2], rpc[3]] });
    }
    let first = true;
    for (const ch of line.replace(/"[^"]*"/g, '')) {
      if (ch === '{') {
        open.push(
          first && declared?.[1] && declared[2] ? { kind: declared[1], name: declared[2] } : { kind: '', name: '' },
        );
        first = false;
      } else if (ch === '}') open.pop();
    }
  }
  return file;
}

/** The connect Code of a gRPC code name (`FAILED_PRECONDITION`), or undefined for any other word. */
function codeNamed(name: string | undefined): Code | undefined {
  if (!name) return undefined;
  const pascal = name.toLowerCase().replace(/(^|_)([a-z])/g, (_, _sep, c: string) => c.toUpperCase());
  const code = (Code as unknown as Record<string, Code | undefined>)[pascal];
  return typeof code === 'number' ? code : undefined;
}

// `... FAILED_PRECONDITION, reason CURRENCY_LOCKED`, `fails with ALREADY_EXISTS reason X`, `reason X`.
const REASON = /(?:\b([A-Z][A-Z_]*[A-Z]),?\s+)?\breason\s+([A-Z][A-Z0-9_]*[A-Z0-9])\b/g;
// `Typical reasons: A, B, C`.
const REASON_LIST = /\breasons:\s*([A-Z][A-Z0-9_]*(?:,\s*[A-Z][A-Z0-9_]*)*)/g;

/** The reasons a comment names, with the code it names before each, if any. */
function reasonsIn(text: string): { reason: string; code: Code | undefined }[] {
  const out: { reason: string; code: Code | undefined }[] = [];
  for (const [, code, named] of text.matchAll(REASON)) if (named) out.push({ reason: named, code: codeNamed(code) });
  for (const [, list] of text.matchAll(REASON_LIST)) {
    for (const named of list?.split(/,\s*/) ?? []) out.push({ reason: named, code: undefined });
  }
  return out;
}

/** Whether `inner` is a place inside `outer` (an RPC of a service, a service of a package). */
const isInside = (inner: string, outer: string) => inner.startsWith(`${outer}.`) || inner.startsWith(`${outer}/`);

/**
 * The reasons the contracts document, each at the most specific places it is named: a reason named by a service's
 * header and by some of its RPCs is documented for those RPCs (taking the header's code if they name none).
 */
function documentedReasons(): DocumentedReason[] {
  const files = CONTRACTS.flatMap((dir) =>
    readdirSync(join(PROTO_ROOT, dir), { recursive: true, encoding: 'utf8' })
      .filter((name) => name.endsWith('.proto'))
      .map((name) => parseProto(readFileSync(join(PROTO_ROOT, dir, name), 'utf8'))),
  );
  // Each RPC's request and response types, by full name: their comments document the RPC.
  const rpcOfType = new Map<string, string>();
  for (const file of files) {
    for (const rpc of file.rpcs) {
      for (const type of rpc.types) {
        rpcOfType.set(type.includes('.') ? type : `${file.pkg}.${type}`, `${file.pkg}.${rpc.service}/${rpc.name}`);
      }
    }
  }
  const mentions: DocumentedReason[] = [];
  for (const file of files) {
    for (const { text, attachedTo: at } of file.comments) {
      let place: string;
      if (at.kind === 'file') place = file.services.length === 1 ? `${file.pkg}.${file.services[0]}` : file.pkg;
      else if (at.kind === 'service') place = `${file.pkg}.${at.name}`;
      else if (at.kind === 'rpc') place = `${file.pkg}.${at.service}/${at.name}`;
      else place = rpcOfType.get(`${file.pkg}.${at.name}`) ?? file.pkg;
      for (const found of reasonsIn(text)) mentions.push({ place, ...found });
    }
  }
  const byKey = new Map<string, DocumentedReason>();
  for (const m of mentions) {
    if (mentions.some((o) => o.reason === m.reason && isInside(o.place, m.place))) continue;
    const code =
      m.code ?? mentions.find((o) => o.reason === m.reason && o.code !== undefined && isInside(m.place, o.place))?.code;
    const key = `${m.place} ${m.reason}`;
    const known = byKey.get(key);
    if (known?.code !== undefined && code !== undefined && known.code !== code) {
      throw new Error(`${key} is documented with two codes, ${Code[known.code]} and ${Code[code]}`);
    }
    byKey.set(key, { place: m.place, reason: m.reason, code: known?.code ?? code });
  }
  return [...byKey.values()];
}

// ---- the services ----

type ServiceName = 'catalog' | 'subscription' | 'usage';

const bus = createMemoryBus();
const running: Partial<Record<ServiceName, TestService>> = {};
const service = (name: ServiceName) => {
  const found = running[name];
  if (!found) throw new Error(`${name} is not running`);
  return found;
};
// One gRPC transport per service, so that its calls share a connection.
const transports = new Map<ServiceName, Transport>();
function grpc(name: ServiceName): Transport {
  const known = transports.get(name);
  if (known) return known;
  const transport = createGrpcTransport({ baseUrl: service(name).baseUrl });
  transports.set(name, transport);
  return transport;
}

let catalog: Client<typeof CatalogService>;
let customers: Client<typeof CustomerService>;
let subscriptions: Client<typeof SubscriptionService>;
let usage: Client<typeof UsageService>;
const admin = (name: ServiceName) => createClient(AdminService, grpc(name));

let n = 0;
/** A fresh request id. */
const rid = () => `reasons-${process.pid}-${n++}`;
/** A fresh key or external id. */
const fresh = (label: string) => `${label}_${n++}`;

const FROZEN = '2026-01-15T00:00:00Z';
const ts = (iso: string) => timestampFromDate(new Date(iso));

beforeAll(async () => {
  running.catalog = await startTestService(catalogService, { bus });
  catalog = createClient(CatalogService, grpc('catalog'));
  await catalog.createMeter({ requestId: rid(), meter: buildMinutesMeter });
  await catalog.createFeature({ requestId: rid(), feature: privateRepos });
  await catalog.createFeature({ requestId: rid(), feature: buildMinutes });
  // team and pro: one published version each; legacy: two, so that its version 1 can be migrated.
  for (const [key, spec] of [
    ['team', teamSpec()],
    ['pro', teamSpec({ name: 'Pro' })],
    ['legacy', teamSpec({ name: 'Legacy' })],
  ] as const) {
    await catalog.createPlan({ requestId: rid(), key, spec });
    await catalog.publishPlan({ requestId: rid(), planKey: key });
  }
  await catalog.updatePlanDraft({ requestId: rid(), planKey: 'legacy', spec: teamSpec({ name: 'Legacy 2' }) });
  await catalog.publishPlan({ requestId: rid(), planKey: 'legacy' });
  running.subscription = await startTestService(
    subscriptionService({
      catalog: catalogClient(running.catalog.baseUrl),
      testClocksEnabled: true,
      billingClockIntervalMs: 0,
    }),
    { bus },
  );
  customers = createClient(CustomerService, grpc('subscription'));
  subscriptions = createClient(SubscriptionService, grpc('subscription'));
  running.usage = await startTestService(usageService, { bus });
  usage = createClient(UsageService, grpc('usage'));
}, 120_000);

afterAll(async () => {
  for (const name of ['usage', 'subscription', 'catalog'] as const) await running[name]?.destroy();
  await bus.close();
});

/** A customer billed in USD, on a test clock frozen at FROZEN unless `onClock` is false. */
async function newCustomer(onClock = true, extra: Record<string, unknown> = {}) {
  const testClockId = onClock
    ? (await subscriptions.createTestClock({ requestId: rid(), name: 'reasons', frozenTime: ts(FROZEN) })).testClock?.id
    : undefined;
  const created = await customers.createCustomer({
    requestId: rid(),
    customer: { externalId: fresh('cust'), name: 'Customer', testClockId, billing: { currencyCode: 'USD' }, ...extra },
  });
  if (!created.customer) throw new Error('no customer');
  return created.customer;
}

/** A new subscription to the team plan (of a new customer on a test clock); its id. */
async function newSubscription(planKey = 'team', planVersion = 0): Promise<string> {
  const customer = await newCustomer();
  const created = await subscriptions.createSubscription({
    requestId: rid(),
    customerId: customer.id,
    planKey,
    planVersion,
  });
  const id = created.subscription?.id;
  if (!id) throw new Error('no subscription');
  return id;
}

/** A new test clock frozen at FROZEN; its id. */
async function newTestClock(): Promise<string> {
  const clock = (await subscriptions.createTestClock({ requestId: rid(), name: 'reasons', frozenTime: ts(FROZEN) }))
    .testClock;
  if (!clock) throw new Error('no test clock');
  return clock.id;
}

/**
 * The refusal of a request_id used again with other parameters: `send` is called with a fresh request id, first
 * with `other` false (which must succeed), then with `other` true.
 */
async function reusedRequestId(send: (requestId: string, other: boolean) => Promise<unknown>): Promise<ConnectError> {
  const requestId = rid();
  await send(requestId, false);
  return rpcError(send(requestId, true));
}

/** An event of the usage service, at a minute ago. */
const usageEvent = (id: string, customer: string, minutes = 3) => ({
  id,
  customerExternalId: customer,
  type: 'build.finished',
  eventTime: timestampFromDate(new Date(Date.now() - 60_000)),
  properties: { minutes },
});

/** A stored event of a new customer of the usage service; its customer and id. */
async function storedEvent(): Promise<{ customer: string; eventId: string }> {
  const customer = fresh('usage_cust');
  const eventId = fresh('evt');
  const ingested = await usage.ingestEvents({ events: [usageEvent(eventId, customer)] });
  expect(ingested.acceptedCount).toBe(1);
  return { customer, eventId };
}

/**
 * A catalog meter whose creation the usage service's consumer `usage-meters` parked: a check constraint of the
 * usage database refuses the meter until it is dropped (`fix`), as a cause an operator fixes before a replay.
 */
async function parkedMeterEvent(): Promise<{ eventId: string; fix: () => Promise<void> }> {
  const key = fresh('parked');
  const constraint = `refuse_${key}`;
  const db = () => service('usage').context.db.fork();
  await queryBound(db(), `alter table meter add constraint ${constraint} check (key <> '${key}')`, []);
  await catalog.createMeter({
    requestId: rid(),
    meter: { key, name: key, eventType: `${key}.seen`, aggregation: MeterAggregation.COUNT },
  });
  const listed = await waitFor(
    () => admin('usage').listParkedEvents({ consumer: 'usage-meters' }),
    (page) => page.parkedEvents.some((p) => p.error.includes(constraint)),
  );
  const parked = listed.parkedEvents.find((p) => p.error.includes(constraint));
  if (!parked) throw new Error('nothing parked');
  return {
    eventId: parked.eventId,
    fix: async () => {
      await queryBound(db(), `alter table meter drop constraint ${constraint}`, []);
    },
  };
}

// ---- one test per documented reason ----

/** A documented reason as a test provokes it. */
interface Refusal {
  /** Where the contract documents it: an RPC (`billing.usage.v1.UsageService/IngestEvents`), a service or a package. */
  place: string;
  reason: string;
  /** The code it is answered with. */
  code: Code;
  /** What provokes it, for the test's name. */
  when: string;
  /** The services it is provoked from (ErrorInfo.domain is `billing.<service>`), each by `provoke`. */
  services: readonly ServiceName[];
  provoke: (service: ServiceName) => Promise<ConnectError>;
}

const tested: Refusal[] = [];

/** Registers the test of one documented reason. */
function refusal(r: Omit<Refusal, 'services'> & { services?: readonly ServiceName[] }): void {
  const services = r.services ?? [serviceOf(r.place)];
  const entry: Refusal = { ...r, services };
  tested.push(entry);
  test(`${r.place.replace(/^billing\./, '')}: ${Code[r.code]} ${r.reason} when ${r.when}`, async () => {
    for (const name of services) {
      const err = await entry.provoke(name);
      const info = err.findDetails(ErrorInfoSchema)[0];
      expect({ service: name, code: Code[err.code], reason: reason(err), domain: info?.domain }).toEqual({
        service: name,
        code: Code[r.code],
        reason: r.reason,
        domain: `billing.${name}`,
      });
    }
  });
}

/** The service serving the contract of `place` (`billing.catalog.v1...` is the catalog). */
function serviceOf(place: string): ServiceName {
  const name = /^billing\.(\w+)\./.exec(place)?.[1];
  if (name === 'catalog' || name === 'subscription' || name === 'usage') return name;
  throw new Error(`no service serves ${place} alone`);
}

/**
 * Registers the test of IDEMPOTENCY_KEY_REUSED for the RPC `place`, provoked by `send` (see reusedRequestId) from
 * each of `services`.
 */
function reusedKeyRefusal(
  place: string,
  send: (requestId: string, other: boolean, service: ServiceName) => Promise<unknown>,
  services?: readonly ServiceName[],
): void {
  refusal({
    place,
    reason: 'IDEMPOTENCY_KEY_REUSED',
    code: Code.AlreadyExists,
    when: 'a request_id is used again with other parameters',
    services,
    provoke: (name) => reusedRequestId((requestId, other) => send(requestId, other, name)),
  });
}

// ---- catalog ----

const CATALOG = 'billing.catalog.v1.CatalogService';

reusedKeyRefusal(`${CATALOG}/CreateFeature`, (requestId, other) =>
  catalog.createFeature({ requestId, feature: { ...privateRepos, key: fresh(other ? 'other' : 'feature') } }),
);

reusedKeyRefusal(`${CATALOG}/ArchiveFeature`, async (requestId, other) => {
  const key = fresh('feature');
  await catalog.createFeature({ requestId: rid(), feature: { ...privateRepos, key } });
  return catalog.archiveFeature({ requestId, key: other ? 'private_repos' : key });
});

reusedKeyRefusal(`${CATALOG}/CreateMeter`, (requestId, other) =>
  catalog.createMeter({ requestId, meter: { ...buildMinutesMeter, key: fresh(other ? 'other' : 'meter') } }),
);

reusedKeyRefusal(`${CATALOG}/ArchiveMeter`, async (requestId, other) => {
  const key = fresh('meter');
  await catalog.createMeter({ requestId: rid(), meter: { ...buildMinutesMeter, key } });
  return catalog.archiveMeter({ requestId, key: other ? 'build_minutes' : key });
});

reusedKeyRefusal(`${CATALOG}/CreatePlan`, (requestId, other) =>
  catalog.createPlan({ requestId, key: fresh(other ? 'other' : 'plan'), spec: teamSpec() }),
);

reusedKeyRefusal(`${CATALOG}/UpdatePlanDraft`, (requestId, other) =>
  catalog.updatePlanDraft({ requestId, planKey: 'team', spec: teamSpec({ name: other ? 'Team B' : 'Team A' }) }),
);

reusedKeyRefusal(`${CATALOG}/PublishPlan`, async (requestId, other) => {
  const key = fresh('plan');
  await catalog.createPlan({ requestId: rid(), key, spec: teamSpec() });
  return catalog.publishPlan({ requestId, planKey: other ? 'team' : key });
});

reusedKeyRefusal(`${CATALOG}/ArchivePlan`, async (requestId, other) => {
  const key = fresh('plan');
  await catalog.createPlan({ requestId: rid(), key, spec: teamSpec() });
  return catalog.archivePlan({ requestId, planKey: other ? 'team' : key });
});

/** A recurring add-on of the team plan. */
const addOn = (key: string, name = 'Support') => ({
  key,
  name,
  planKeys: ['team'],
  currencyCodes: ['USD'],
  charges: [
    {
      key: 'support_fee',
      name: 'Support',
      model: PriceModel.FLAT,
      timing: BillingTiming.IN_ADVANCE,
      prices: [{ currencyCode: 'USD', unitAmount: '31.00' }],
    },
  ],
});

reusedKeyRefusal(`${CATALOG}/UpsertAddOn`, (requestId, other) =>
  catalog.upsertAddOn({ requestId, addOn: addOn('support', other ? 'Support B' : 'Support A') }),
);

reusedKeyRefusal(`${CATALOG}/ArchiveAddOn`, async (requestId, other) => {
  const key = fresh('addon');
  await catalog.upsertAddOn({ requestId: rid(), addOn: addOn(key) });
  return catalog.archiveAddOn({ requestId, key: other ? 'support' : key });
});

reusedKeyRefusal(`${CATALOG}/ApplyCatalog`, (requestId, other) =>
  catalog.applyCatalog({
    requestId,
    document: 'meters:\n  - { key: applied, name: Applied, event_type: applied.seen, aggregation: count }',
    dryRun: other,
  }),
);

refusal({
  place: `${CATALOG}/UpdatePlanDraft`,
  reason: 'VERSION_IMMUTABLE',
  code: Code.FailedPrecondition,
  when: 'the version named is published',
  provoke: () => rpcError(catalog.updatePlanDraft({ requestId: rid(), planKey: 'pro', spec: teamSpec(), version: 1 })),
});

// ---- customers ----

const CUSTOMERS = 'billing.subscription.v1.CustomerService';

refusal({
  place: CUSTOMERS,
  reason: 'CUSTOMER_NOT_FOUND',
  code: Code.NotFound,
  when: 'GetCustomer names no customer',
  provoke: () => rpcError(customers.getCustomer({ key: { case: 'id', value: 'cus_00000000000000000000000000' } })),
});

refusal({
  place: CUSTOMERS,
  reason: 'EXTERNAL_ID_TAKEN',
  code: Code.AlreadyExists,
  when: 'CreateCustomer names the external id of another customer',
  provoke: async () => {
    const taken = await newCustomer(false);
    return rpcError(
      customers.createCustomer({ requestId: rid(), customer: { externalId: taken.externalId, name: 'Again' } }),
    );
  },
});

refusal({
  place: `${CUSTOMERS}/UpdateCustomer`,
  reason: 'CURRENCY_LOCKED',
  code: Code.FailedPrecondition,
  when: 'the currency of a customer that has had a subscription changes',
  provoke: async () => {
    const customer = await newCustomer();
    await subscriptions.createSubscription({ requestId: rid(), customerId: customer.id, planKey: 'team' });
    return rpcError(
      customers.updateCustomer({
        requestId: rid(),
        customer: { id: customer.id, billing: { currencyCode: 'EUR' } },
        updateMask: { paths: ['billing.currency_code'] },
      }),
    );
  },
});

refusal({
  place: CUSTOMERS,
  reason: 'TREE_CYCLE',
  code: Code.FailedPrecondition,
  when: 'SetCustomerParent moves a customer under its child',
  provoke: async () => {
    const parent = await newCustomer(false);
    const child = await newCustomer(false, { parentId: parent.id, billTo: BillTo.PARENT });
    return rpcError(
      customers.setCustomerParent({ requestId: rid(), customerId: parent.id, parentId: child.id, billTo: BillTo.SELF }),
    );
  },
});

refusal({
  place: CUSTOMERS,
  reason: 'TREE_TOO_DEEP',
  code: Code.FailedPrecondition,
  when: 'CreateCustomer would make a tree six levels deep',
  provoke: async () => {
    let parentId: string | undefined;
    for (let level = 0; level < 5; level++) parentId = (await newCustomer(false, { parentId })).id;
    return rpcError(
      customers.createCustomer({ requestId: rid(), customer: { externalId: fresh('deep'), name: 'Deep', parentId } }),
    );
  },
});

refusal({
  place: CUSTOMERS,
  reason: 'TEST_CLOCK_MISMATCH',
  code: Code.FailedPrecondition,
  when: 'CreateCustomer puts a customer under a parent on a test clock it is not on',
  provoke: async () => {
    const parent = await newCustomer(true);
    return rpcError(
      customers.createCustomer({
        requestId: rid(),
        customer: { externalId: fresh('child'), name: 'Child', parentId: parent.id },
      }),
    );
  },
});

reusedKeyRefusal(`${CUSTOMERS}/CreateCustomer`, (requestId, other) =>
  customers.createCustomer({ requestId, customer: { externalId: fresh(other ? 'other' : 'cust'), name: 'C' } }),
);

reusedKeyRefusal(`${CUSTOMERS}/UpdateCustomer`, async (requestId, other) => {
  const customer = await newCustomer(false);
  return customers.updateCustomer({
    requestId,
    customer: { id: customer.id, name: other ? 'Renamed B' : 'Renamed A' },
    updateMask: { paths: ['name'] },
  });
});

reusedKeyRefusal(`${CUSTOMERS}/SetCustomerParent`, async (requestId, other) => {
  const parent = await newCustomer(false);
  const child = await newCustomer(false);
  return customers.setCustomerParent({
    requestId,
    customerId: child.id,
    parentId: other ? '' : parent.id,
    billTo: BillTo.SELF,
  });
});

// ---- subscriptions ----

const SUBSCRIPTIONS = 'billing.subscription.v1.SubscriptionService';

refusal({
  place: SUBSCRIPTIONS,
  reason: 'INVALID_TRANSITION',
  code: Code.FailedPrecondition,
  when: 'ResumeSubscription names a subscription that is not canceled',
  provoke: async () =>
    rpcError(subscriptions.resumeSubscription({ requestId: rid(), subscriptionId: await newSubscription() })),
});

refusal({
  place: SUBSCRIPTIONS,
  reason: 'SUBSCRIPTION_NOT_FOUND',
  code: Code.NotFound,
  when: 'GetSubscription names no subscription',
  provoke: () => rpcError(subscriptions.getSubscription({ id: 'sub_00000000000000000000000000' })),
});

refusal({
  place: SUBSCRIPTIONS,
  reason: 'CUSTOMER_NOT_FOUND',
  code: Code.NotFound,
  when: 'CreateSubscription names no customer',
  provoke: () =>
    rpcError(
      subscriptions.createSubscription({
        requestId: rid(),
        customerId: 'cus_00000000000000000000000000',
        planKey: 'team',
      }),
    ),
});

refusal({
  place: SUBSCRIPTIONS,
  reason: 'PLAN_NOT_FOUND',
  code: Code.NotFound,
  when: 'CreateSubscription names no plan of the catalog',
  provoke: async () => {
    const customer = await newCustomer();
    return rpcError(
      subscriptions.createSubscription({ requestId: rid(), customerId: customer.id, planKey: 'no_such_plan' }),
    );
  },
});

refusal({
  place: SUBSCRIPTIONS,
  reason: 'PLAN_VERSION_NOT_FOUND',
  code: Code.NotFound,
  when: 'CreateSubscription names a version the plan does not have',
  provoke: async () => {
    const customer = await newCustomer();
    return rpcError(
      subscriptions.createSubscription({ requestId: rid(), customerId: customer.id, planKey: 'team', planVersion: 99 }),
    );
  },
});

refusal({
  place: SUBSCRIPTIONS,
  reason: 'CHARGE_NOT_FOUND',
  code: Code.NotFound,
  when: 'CreateSubscription sets the quantity of a charge the plan version does not have',
  provoke: async () => {
    const customer = await newCustomer();
    return rpcError(
      subscriptions.createSubscription({
        requestId: rid(),
        customerId: customer.id,
        planKey: 'team',
        quantities: [{ chargeKey: 'no_such_charge', quantity: '2' }],
      }),
    );
  },
});

refusal({
  place: `${SUBSCRIPTIONS}/CreateSubscription`,
  reason: 'CURRENCY_MISMATCH',
  code: Code.FailedPrecondition,
  when: "the currency asked for is not the customer's",
  provoke: async () => {
    const customer = await newCustomer();
    return rpcError(
      subscriptions.createSubscription({
        requestId: rid(),
        customerId: customer.id,
        planKey: 'team',
        currencyCode: 'EUR',
      }),
    );
  },
});

refusal({
  place: `${SUBSCRIPTIONS}/CreateTestClock`,
  reason: 'TEST_CLOCKS_DISABLED',
  code: Code.FailedPrecondition,
  when: 'the configuration does not enable test clocks',
  provoke: async () => {
    // A bus of its own: the durable consumers of a service run once per bus.
    const lockedBus = createMemoryBus();
    const locked = await startTestService(
      subscriptionService({
        catalog: catalogClient(service('catalog').baseUrl),
        testClocksEnabled: false,
        billingClockIntervalMs: 0,
      }),
      { bus: lockedBus },
    );
    try {
      const client = createClient(SubscriptionService, createGrpcTransport({ baseUrl: locked.baseUrl }));
      return await rpcError(client.createTestClock({ requestId: rid(), name: 'refused', frozenTime: ts(FROZEN) }));
    } finally {
      await locked.destroy();
      await lockedBus.close();
    }
  },
});

refusal({
  place: SUBSCRIPTIONS,
  reason: 'TEST_CLOCK_BUSY',
  code: Code.FailedPrecondition,
  when: 'AdvanceTestClock names a clock another advance holds',
  provoke: async () => {
    const clockId = await newTestClock();
    // Another transaction holds the clock's row, as an advance in progress does.
    return service('subscription').context.db.transaction(async (em) => {
      await queryBound(em, 'select id from test_clock where id = $1 for update', [clockId]);
      return rpcError(
        subscriptions.advanceTestClock({ requestId: rid(), id: clockId, frozenTime: ts('2026-02-01T00:00:00Z') }),
      );
    });
  },
});

reusedKeyRefusal(`${SUBSCRIPTIONS}/CreateSubscription`, async (requestId, other) => {
  const customer = await newCustomer();
  return subscriptions.createSubscription({
    requestId,
    customerId: customer.id,
    planKey: 'team',
    metadata: { try: other ? 'b' : 'a' },
  });
});

reusedKeyRefusal(`${SUBSCRIPTIONS}/ChangePlan`, async (requestId, other) => {
  const subscriptionId = await newSubscription();
  return subscriptions.changePlan({
    requestId,
    subscriptionId,
    planKey: 'pro',
    timing: other ? ChangeTiming.IMMEDIATELY : ChangeTiming.PERIOD_END,
  });
});

reusedKeyRefusal(`${SUBSCRIPTIONS}/ChangeQuantity`, async (requestId, other) => {
  const subscriptionId = await newSubscription();
  return subscriptions.changeQuantity({
    requestId,
    subscriptionId,
    quantities: [{ chargeKey: 'seats', quantity: other ? '4' : '3' }],
  });
});

reusedKeyRefusal(`${SUBSCRIPTIONS}/CancelSubscription`, async (requestId, other) => {
  const subscriptionId = await newSubscription();
  return subscriptions.cancelSubscription({
    requestId,
    subscriptionId,
    mode: CancelMode.PERIOD_END,
    reason: other ? 'too expensive' : 'moving away',
  });
});

reusedKeyRefusal(`${SUBSCRIPTIONS}/ResumeSubscription`, async (requestId, other) => {
  const subscriptionId = await newSubscription();
  await subscriptions.cancelSubscription({ requestId: rid(), subscriptionId, mode: CancelMode.PERIOD_END });
  return subscriptions.resumeSubscription({ requestId, subscriptionId: other ? 'sub_other' : subscriptionId });
});

reusedKeyRefusal(`${SUBSCRIPTIONS}/CancelScheduledChange`, async (requestId, other) => {
  const subscriptionId = await newSubscription();
  await subscriptions.changePlan({ requestId: rid(), subscriptionId, planKey: 'pro', timing: ChangeTiming.PERIOD_END });
  return subscriptions.cancelScheduledChange({ requestId, subscriptionId: other ? 'sub_other' : subscriptionId });
});

reusedKeyRefusal(`${SUBSCRIPTIONS}/MigrateSubscriptions`, async (requestId, other) => {
  await newSubscription('legacy', 1);
  return subscriptions.migrateSubscriptions({ requestId, planKey: 'legacy', fromVersion: 1, dryRun: !other });
});

reusedKeyRefusal(`${SUBSCRIPTIONS}/CreateTestClock`, (requestId, other) =>
  subscriptions.createTestClock({ requestId, name: other ? 'clock b' : 'clock a', frozenTime: ts(FROZEN) }),
);

reusedKeyRefusal(`${SUBSCRIPTIONS}/AdvanceTestClock`, async (requestId, other) => {
  const id = await newTestClock();
  return subscriptions.advanceTestClock({
    requestId,
    id,
    frozenTime: ts(other ? '2026-01-17T00:00:00Z' : '2026-01-16T00:00:00Z'),
  });
});

reusedKeyRefusal(`${SUBSCRIPTIONS}/DeleteTestClock`, async (requestId, other) => {
  const id = await newTestClock();
  return subscriptions.deleteTestClock({ requestId, id: other ? 'clk_other' : id });
});

// ---- usage ----

const USAGE = 'billing.usage.v1.UsageService';

refusal({
  place: `${USAGE}/IngestEvents`,
  reason: 'BATCH_TOO_LARGE',
  code: Code.InvalidArgument,
  when: 'a batch holds 1,001 events, over gRPC, gRPC-Web and Connect (binary and JSON), with a request_id or not',
  provoke: async () => {
    const baseUrl = service('usage').baseUrl;
    const transports: Record<string, Transport> = {
      grpc: createGrpcTransport({ baseUrl }),
      'grpc-web': createGrpcWebTransport({ baseUrl, httpVersion: '2' }),
      connect: createConnectTransport({ baseUrl, httpVersion: '2' }),
      'connect json': createConnectTransport({ baseUrl, httpVersion: '2', useBinaryFormat: false }),
    };
    const customer = fresh('batch');
    const events = Array.from({ length: 1_001 }, (_, i) => usageEvent(`big-${i}`, customer));
    const answers: Record<string, string> = {};
    let last: ConnectError | undefined;
    for (const [name, transport] of Object.entries(transports)) {
      for (const requestId of ['', rid()]) {
        last = await rpcError(createClient(UsageService, transport).ingestEvents({ requestId, events }));
        answers[`${name}${requestId ? ' with a request_id' : ''}`] = `${Code[last.code]} ${reason(last)}`;
      }
    }
    const expected = Object.fromEntries(
      Object.keys(answers).map((asked) => [asked, 'InvalidArgument BATCH_TOO_LARGE']),
    );
    expect(answers).toEqual(expected);
    if (!last) throw new Error('no call made');
    return last;
  },
});

refusal({
  place: USAGE,
  reason: 'METER_NOT_FOUND',
  code: Code.NotFound,
  when: 'GetPeriodUsage names no meter',
  provoke: () =>
    rpcError(
      usage.getPeriodUsage({
        customerExternalId: 'anyone',
        meterKey: 'no_such_meter',
        period: { startTime: ts('2026-01-01T00:00:00Z'), endTime: ts('2026-02-01T00:00:00Z') },
      }),
    ),
});

refusal({
  place: USAGE,
  reason: 'EVENT_NOT_FOUND',
  code: Code.NotFound,
  when: 'VoidEvent names no stored event',
  provoke: () =>
    rpcError(usage.voidEvent({ requestId: rid(), customerExternalId: 'anyone', eventId: 'no_such_event' })),
});

refusal({
  place: USAGE,
  reason: 'EVENT_VOIDED',
  code: Code.FailedPrecondition,
  when: 'AmendEvent names a voided event',
  provoke: async () => {
    const { customer, eventId } = await storedEvent();
    await usage.voidEvent({ requestId: rid(), customerExternalId: customer, eventId });
    return rpcError(
      usage.amendEvent({ requestId: rid(), customerExternalId: customer, eventId, properties: { minutes: 5 } }),
    );
  },
});

reusedKeyRefusal(`${USAGE}/IngestEvents`, (requestId, other) =>
  usage.ingestEvents({ requestId, events: [usageEvent(fresh(other ? 'other' : 'evt'), fresh('usage_cust'))] }),
);

reusedKeyRefusal(`${USAGE}/AmendEvent`, async (requestId, other) => {
  const { customer, eventId } = await storedEvent();
  return usage.amendEvent({
    requestId,
    customerExternalId: customer,
    eventId,
    properties: { minutes: other ? 7 : 5 },
  });
});

reusedKeyRefusal(`${USAGE}/VoidEvent`, async (requestId, other) => {
  const { customer, eventId } = await storedEvent();
  return usage.voidEvent({ requestId, customerExternalId: customer, eventId: other ? 'other_event' : eventId });
});

// ---- admin, served by every service ----

const ADMIN = 'billing.admin.v1.AdminService';

/** A republish of what was recorded in an hour from `hoursAhead` hours on: nothing, so the streams stay as they are. */
function republishAhead(name: ServiceName, requestId: string, hoursAhead: number) {
  const since = Date.now() + hoursAhead * 3_600_000;
  return admin(name).republishEvents({
    requestId,
    sinceTime: timestampFromDate(new Date(since)),
    untilTime: timestampFromDate(new Date(since + 3_600_000)),
  });
}

reusedKeyRefusal(
  `${ADMIN}/RepublishEvents`,
  (requestId, other, name) => republishAhead(name, requestId, other ? 2 : 1),
  ['catalog', 'subscription', 'usage'],
);

refusal({
  place: `${ADMIN}/RepublishEvents`,
  reason: 'INVALID_ARGUMENT',
  code: Code.InvalidArgument,
  when: 'the range has no end',
  services: ['catalog', 'subscription', 'usage'],
  provoke: (name) =>
    rpcError(admin(name).republishEvents({ requestId: rid(), sinceTime: timestampFromDate(new Date()) })),
});

// The republish the test above accepted on each service is less than the interval old.
refusal({
  place: `${ADMIN}/RepublishEvents`,
  reason: 'REPUBLISH_TOO_SOON',
  code: Code.ResourceExhausted,
  when: 'a republish was accepted less than the interval before',
  services: ['catalog', 'subscription', 'usage'],
  provoke: (name) => rpcError(republishAhead(name, rid(), 1)),
});

refusal({
  place: `${ADMIN}/ReplayParkedEvent`,
  reason: 'REPLAY_FAILED',
  code: Code.FailedPrecondition,
  when: 'the parked event fails again',
  services: ['usage'],
  provoke: async (name) => {
    const { eventId } = await parkedMeterEvent();
    return rpcError(admin(name).replayParkedEvent({ requestId: rid(), consumer: 'usage-meters', eventId }));
  },
});

refusal({
  place: `${ADMIN}/ReplayParkedEvent`,
  reason: 'IDEMPOTENCY_KEY_REUSED',
  code: Code.AlreadyExists,
  when: 'a request_id is used again with other parameters',
  services: ['usage'],
  provoke: async (name) => {
    const { eventId, fix } = await parkedMeterEvent();
    await fix();
    return reusedRequestId((requestId, other) =>
      admin(name).replayParkedEvent({ requestId, consumer: 'usage-meters', eventId: other ? 'other_event' : eventId }),
    );
  },
});

// Last of the usage service's tests: its relay is stopped, so an event recorded before the previous republish was
// accepted waits unpublished; that republish is made older than the interval.
refusal({
  place: `${ADMIN}/RepublishEvents`,
  reason: 'REPUBLISH_IN_PROGRESS',
  code: Code.ResourceExhausted,
  when: 'events recorded before the previous republish are not all published yet',
  services: ['usage'],
  provoke: async (name) => {
    const { db, relay } = service(name).context;
    await relay.stop();
    await queryBound(
      db.fork(),
      `update idempotency_key set created_at = created_at - interval '1 day'
        where scope = 'billing.admin.v1.AdminService/RepublishEvents'`,
      [],
    );
    await queryBound(
      db.fork(),
      `insert into outbox_event (id, subject, type, schema, aggregate_id, aggregate_seq, occurred_at, recorded_at,
         producer, payload)
       values ($1, 'waiting', 'waiting', 'waiting', $1, 1, now(), now() - interval '2 days', $2, '')`,
      [fresh('waiting'), name],
    );
    return rpcError(republishAhead(name, rid(), 1));
  },
});

// ---- the list ----

test('the reasons tested are the reasons the contracts document, each with the code documented with it', () => {
  const documented = documentedReasons();
  const key = (r: { place: string; reason: string }) => `${r.place} ${r.reason}`;
  expect(tested.map(key).sort()).toEqual(documented.map(key).sort());
  const codeOf = new Map(tested.map((r) => [key(r), r.code]));
  const wrongCodes = documented
    .filter((d) => d.code !== undefined && codeOf.get(key(d)) !== d.code)
    .map(
      (d) =>
        `${key(d)}: documented ${Code[d.code ?? Code.Unknown]}, tested ${Code[codeOf.get(key(d)) ?? Code.Unknown]}`,
    );
  expect(wrongCodes).toEqual([]);
});
