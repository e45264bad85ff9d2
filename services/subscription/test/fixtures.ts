// A catalog and a subscription service running for real (each on its own PostgreSQL database, both on one
// bus), with the plans of the acceptance scenarios, a clock the test moves, and helpers to read what was published.
import { catalogService } from '@billing/catalog';
import type { EventBus } from '@billing/kit/bus';
import type { Clock } from '@billing/kit/clock';
import { createMemoryBus } from '@billing/kit/memory-bus';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import {
  BillingTiming,
  type PlanVersionSpec,
  PlanVersionSpecSchema,
  PriceModel,
} from '@billing/proto/billing/catalog/v1/resources_pb';
import { CustomerService } from '@billing/proto/billing/subscription/v1/customer_service_pb';
import { SubscriptionService } from '@billing/proto/billing/subscription/v1/subscription_service_pb';
import { BillingInterval } from '@billing/proto/billing/type/v1/types_pb';
import {
  buildMinutes,
  buildMinutesMeter,
  privateRepos,
  recordedEvents,
  startTestService,
  type TestService,
} from '@billing/test/harness';
import { create, type DescMessage } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { type Client, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { ChangeSetComputer, EntityFactory } from '@mikro-orm/core';
import { catalogClient } from '../src/adapter/catalog-client.ts';
import { subscriptionService } from '../src/definition.ts';

/** A clock the test sets. */
export function manualClock(start: Date): Clock & { set(time: Date): void } {
  let now = start;
  return {
    now: () => new Date(now),
    set(time: Date) {
      now = time;
    },
  };
}

/**
 * A plan version spec like the harness's team plan (teamSpec), with its own seat price, a flat charge, interval,
 * trial or currencies: per-seat and flat charges in advance, build minutes in arrears.
 */
export function planSpec(input: {
  name: string;
  seat: string;
  flat?: string;
  interval?: BillingInterval;
  trialDays?: number;
  currencies?: Record<string, { seat: string; flat?: string }>;
}): PlanVersionSpec {
  const prices = input.currencies ?? { USD: { seat: input.seat, flat: input.flat } };
  const codes = Object.keys(prices);
  return create(PlanVersionSpecSchema, {
    name: input.name,
    interval: input.interval ?? BillingInterval.MONTH,
    currencyCodes: codes,
    trialDays: input.trialDays ?? 0,
    charges: [
      {
        key: 'seats',
        name: 'Seats',
        model: PriceModel.PER_SEAT,
        timing: BillingTiming.IN_ADVANCE,
        prices: codes.map((c) => ({ currencyCode: c, unitAmount: prices[c]?.seat ?? '0' })),
      },
      ...(input.flat
        ? [
            {
              key: 'platform',
              name: 'Platform fee',
              model: PriceModel.FLAT,
              timing: BillingTiming.IN_ADVANCE,
              prices: codes.map((c) => ({ currencyCode: c, unitAmount: prices[c]?.flat ?? '0' })),
            },
          ]
        : []),
      {
        key: 'build_minutes',
        name: 'Build minutes',
        model: PriceModel.PER_UNIT,
        timing: BillingTiming.IN_ARREARS,
        meterKey: 'build_minutes',
        includedUnits: '500',
        prices: codes.map((c) => ({ currencyCode: c, unitAmount: '0.005' })),
      },
    ],
  });
}

/** The services and clients of a test file. */
export interface Platform {
  catalog: TestService;
  service: TestService;
  clock: ReturnType<typeof manualClock>;
  catalogApi: Client<typeof CatalogService>;
  customers: Client<typeof CustomerService>;
  subscriptions: Client<typeof SubscriptionService>;
  rid(): string;
  stop(): Promise<void>;
}

let n = 0;

/** Starts catalog and subscription (billing clock driven by the test), and publishes `plans`. */
export async function startPlatform(
  plans: Record<string, PlanVersionSpec>,
  options: { bus?: EventBus; now?: Date; testClocks?: boolean } = {},
): Promise<Platform> {
  const bus = options.bus ?? createMemoryBus();
  const clock = manualClock(options.now ?? new Date('2026-01-15T00:00:00Z'));
  const catalog = await startTestService(catalogService, { bus });
  const catalogApi = createClient(CatalogService, createGrpcTransport({ baseUrl: catalog.baseUrl }));
  const rid = () => `req-${process.pid}-${Date.now()}-${n++}`;
  // The team plan of the harness (teamSpec) is entitled to these features.
  await catalogApi.createMeter({ requestId: rid(), meter: buildMinutesMeter });
  await catalogApi.createFeature({ requestId: rid(), feature: privateRepos });
  await catalogApi.createFeature({ requestId: rid(), feature: buildMinutes });
  for (const [key, spec] of Object.entries(plans)) {
    await catalogApi.createPlan({ requestId: rid(), key, spec });
    await catalogApi.publishPlan({ requestId: rid(), planKey: key });
  }
  const service = await startTestService(
    subscriptionService({
      catalog: catalogClient(catalog.baseUrl),
      testClocksEnabled: options.testClocks ?? true,
      billingClockIntervalMs: 0,
    }),
    { bus, clock },
  );
  const transport = createGrpcTransport({ baseUrl: service.baseUrl });
  return {
    catalog,
    service,
    clock,
    catalogApi,
    customers: createClient(CustomerService, transport),
    subscriptions: createClient(SubscriptionService, transport),
    rid,
    async stop() {
      await service.destroy();
      await catalog.destroy();
      if (!options.bus) await bus.close();
    },
  };
}

/** A timestamp. */
export const ts = (iso: string) => timestampFromDate(new Date(iso));

/** The events of one type written by the subscription service so far (from its outbox), oldest first. */
export function published<S extends DescMessage>(
  platform: Platform,
  event: { type: string; schema: S },
  aggregateId?: string,
) {
  return recordedEvents(platform.service.context.db, event, aggregateId);
}

/** A timestamp as an ISO string (undefined stays undefined). */
export const iso = (t: Parameters<typeof timestampDate>[0] | undefined) =>
  t ? timestampDate(t).toISOString() : undefined;

let clocked = 0;

/** A USD customer (in `zone`) on a fresh test clock frozen at `at`, and a way to advance that clock. */
export async function customerOnClock(platform: Platform, at: string, zone = 'UTC') {
  const clock = (
    await platform.subscriptions.createTestClock({
      requestId: platform.rid(),
      name: `clock ${clocked}`,
      frozenTime: ts(at),
    })
  ).testClock;
  if (!clock) throw new Error('no clock');
  const customer = (
    await platform.customers.createCustomer({
      requestId: platform.rid(),
      customer: {
        externalId: `clocked-${clocked++}`,
        name: 'Customer',
        testClockId: clock.id,
        billing: { currencyCode: 'USD', timeZone: zone },
      },
    })
  ).customer;
  if (!customer) throw new Error('no customer');
  const advance = (to: string) =>
    platform.subscriptions.advanceTestClock({ requestId: platform.rid(), id: clock.id, frozenTime: ts(to) });
  return { clockId: clock.id, customer, customerId: customer.id, advance };
}

/** What the ORM did in this process while some work ran. */
export interface OrmWork {
  /** Entities built from rows read. */
  loaded: number;
  /** Entities a flush compared with their loaded state to find what changed. */
  compared: number;
}

/**
 * Counts the ORM's work per entity while `work` runs (in every service of the process): the entities built from
 * rows, and those a flush compares. A flush compares every entity its entity manager holds, so a transaction
 * that flushes once per row it loaded does work that grows with the square of its rows.
 */
export async function ormWork(work: () => Promise<unknown>): Promise<OrmWork> {
  const counts: OrmWork = { loaded: 0, compared: 0 };
  const create = EntityFactory.prototype.create;
  const compare = ChangeSetComputer.prototype.computeChangeSet;
  EntityFactory.prototype.create = function (this: EntityFactory, ...args: Parameters<typeof create>) {
    counts.loaded += 1;
    return create.apply(this, args);
  } as typeof create;
  ChangeSetComputer.prototype.computeChangeSet = function (
    this: ChangeSetComputer,
    ...args: Parameters<typeof compare>
  ) {
    counts.compared += 1;
    return compare.apply(this, args);
  } as typeof compare;
  try {
    await work();
  } finally {
    EntityFactory.prototype.create = create;
    ChangeSetComputer.prototype.computeChangeSet = compare;
  }
  return counts;
}
