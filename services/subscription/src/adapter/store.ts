// Reads and writes of the subscription database. No business rules here: use cases in service/ decide.
// Documents are kept as protobuf JSON beside the columns that are queried, locked or joined.
import type { Em } from '@billing/kit/db';
import type { PlanVersion } from '@billing/proto/billing/catalog/v1/resources_pb';
import { ChargeSchema, PlanVersionSchema } from '@billing/proto/billing/catalog/v1/resources_pb';
import { PeriodSegmentSchema } from '@billing/proto/billing/subscription/events/v1/events_pb';
import {
  type Customer,
  CustomerSchema,
  ProrationBilling,
  type ProrationItem,
  ProrationItemSchema,
  SubscriptionSchema,
  SubscriptionState,
  type TestClock,
  TestClockSchema,
  TestClockStatus,
} from '@billing/proto/billing/subscription/v1/resources_pb';
import { create, fromJson, type JsonValue, toJson } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { BillingSchedule } from '../domain/billing-calendar.ts';
import { nextDue, type SubscriptionRecord } from '../domain/subscription.ts';

const json = (value: unknown) => JSON.stringify(value);

// ---- test clocks ----

interface ClockRow {
  id: string;
  name: string;
  frozen_time: Date;
  created_at: Date;
  customer_count: string;
}

const CLOCK_COLUMNS = `id, name, frozen_time, created_at,
  (select count(*) from customer c where c.test_clock_id = test_clock.id) as customer_count`;

function toTestClock(row: ClockRow, busy: ReadonlySet<string>): TestClock {
  return create(TestClockSchema, {
    id: row.id,
    name: row.name,
    frozenTime: timestampFromDate(new Date(row.frozen_time)),
    status: busy.has(row.id) ? TestClockStatus.ADVANCING : TestClockStatus.READY,
    customerCount: Number(row.customer_count),
    createTime: timestampFromDate(new Date(row.created_at)),
  });
}

/** Inserts a test clock. */
export async function insertTestClock(em: Em, clock: { id: string; name: string; frozenTime: Date; now: Date }) {
  await em.execute('insert into test_clock (id, name, frozen_time, created_at) values (?, ?, ?, ?)', [
    clock.id,
    clock.name,
    clock.frozenTime,
    clock.now,
  ]);
}

/** Of these clocks, those whose row another transaction holds: an advance (or a deletion) is under way. */
async function busyClocks(em: Em, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const free = await em.execute<{ id: string }[]>(
    'select id from test_clock where id in (select jsonb_array_elements_text(?::jsonb)) for update skip locked',
    [json(ids)],
  );
  const freeIds = new Set(free.map((r) => r.id));
  return new Set(ids.filter((id) => !freeIds.has(id)));
}

/** A test clock; `lock` takes its row lock without waiting (an advance in progress makes this throw). */
export async function findTestClock(em: Em, id: string, lock?: 'nowait'): Promise<TestClock | undefined> {
  const rows = await em.execute<ClockRow[]>(
    `select ${CLOCK_COLUMNS} from test_clock where id = ?${lock ? ' for update nowait' : ''}`,
    [id],
  );
  const row = rows[0];
  if (!row) return undefined;
  return toTestClock(row, lock ? new Set() : await busyClocks(em, [row.id]));
}

/** A page of test clocks in creation order. */
export async function listTestClocks(em: Em, page: { size: number; after: string | undefined }) {
  const rows = await em.execute<(ClockRow & { seq: string })[]>(
    `select seq, ${CLOCK_COLUMNS} from test_clock where seq > ? order by seq limit ?`,
    [page.after ?? '0', page.size + 1],
  );
  const busy = await busyClocks(
    em,
    rows.map((r) => r.id),
  );
  return rows.map((r) => ({ seq: String(r.seq), clock: toTestClock(r, busy) }));
}

/** Moves a test clock's time. */
export async function setTestClockTime(em: Em, id: string, time: Date) {
  await em.execute('update test_clock set frozen_time = ? where id = ?', [time, id]);
}

/** Deletes a test clock with its customers and their subscriptions; returns the customer ids. */
export async function deleteTestClock(em: Em, id: string): Promise<string[]> {
  const rows = await em.execute<{ id: string }[]>('select id from customer where test_clock_id = ? order by seq', [id]);
  await em.execute('delete from test_clock where id = ?', [id]);
  return rows.map((r) => r.id);
}

/** The time on a test clock, or `realNow` for customers on real time. */
export async function clockTime(em: Em, testClockId: string, realNow: Date): Promise<Date> {
  if (testClockId === '') return realNow;
  const rows = await em.execute<{ frozen_time: Date }[]>('select frozen_time from test_clock where id = ?', [
    testClockId,
  ]);
  return rows[0] ? new Date(rows[0].frozen_time) : realNow;
}

// ---- customers ----

/** Inserts a customer; false when its external id is taken (even by a concurrent insert). */
export async function insertCustomer(em: Em, customer: Customer): Promise<boolean> {
  const rows = await em.execute<{ id: string }[]>(
    `insert into customer (id, external_id, parent_id, test_clock_id, name, body)
     values (?, ?, ?, ?, ?, ?::jsonb) on conflict (external_id) do nothing returning id`,
    [
      customer.id,
      customer.externalId,
      customer.parentId || null,
      customer.testClockId || null,
      customer.name,
      json(toJson(CustomerSchema, customer)),
    ],
  );
  return rows.length === 1;
}

/** Replaces a customer's row. */
export async function saveCustomer(em: Em, customer: Customer) {
  await em.execute('update customer set parent_id = ?, name = ?, body = ?::jsonb where id = ?', [
    customer.parentId || null,
    customer.name,
    json(toJson(CustomerSchema, customer)),
    customer.id,
  ]);
}

const fromCustomerRow = (row: { body: JsonValue }) => fromJson(CustomerSchema, row.body);

/** A customer by id (with its row locked when `lock`). */
export async function findCustomer(em: Em, id: string, lock = false): Promise<Customer | undefined> {
  const rows = await em.execute<{ body: JsonValue }[]>(
    `select body from customer where id = ?${lock ? ' for update' : ''}`,
    [id],
  );
  return rows[0] ? fromCustomerRow(rows[0]) : undefined;
}

/** A customer by external id. */
export async function findCustomerByExternalId(em: Em, externalId: string): Promise<Customer | undefined> {
  const rows = await em.execute<{ body: JsonValue }[]>('select body from customer where external_id = ?', [externalId]);
  return rows[0] ? fromCustomerRow(rows[0]) : undefined;
}

/** Filters of ListCustomers. */
export interface CustomerFilters {
  /** Children of this customer only. */
  parentId: string;
  /** Roots only. */
  rootsOnly: boolean;
  /** Customers of this test clock only. */
  testClockId: string;
  /** These external ids only. */
  externalIds: string[];
  /** Name or external id containing this text. */
  query: string;
}

/** A page of customers in creation order. */
export async function listCustomers(
  em: Em,
  filters: CustomerFilters,
  page: { size: number; after: string | undefined },
) {
  const where = ['seq > ?'];
  const params: unknown[] = [page.after ?? '0'];
  if (filters.parentId) {
    where.push('parent_id = ?');
    params.push(filters.parentId);
  }
  if (filters.rootsOnly) where.push('parent_id is null');
  if (filters.testClockId) {
    where.push('test_clock_id = ?');
    params.push(filters.testClockId);
  }
  if (filters.externalIds.length > 0) {
    where.push('external_id in (select jsonb_array_elements_text(?::jsonb))');
    params.push(json(filters.externalIds));
  }
  if (filters.query) {
    where.push('(strpos(lower(name), lower(?)) > 0 or strpos(lower(external_id), lower(?)) > 0)');
    params.push(filters.query, filters.query);
  }
  params.push(page.size + 1);
  const rows = await em.execute<{ seq: string; body: JsonValue }[]>(
    `select seq, body from customer where ${where.join(' and ')} order by seq limit ?`,
    params,
  );
  return rows.map((r) => ({ seq: String(r.seq), customer: fromCustomerRow(r) }));
}

/** The subtree under a customer (itself first), breadth first, with depths relative to it. */
export async function subtree(em: Em, id: string): Promise<{ customer: Customer; depth: number }[]> {
  const rows = await em.execute<{ body: JsonValue; depth: number }[]>(
    `with recursive down (id, depth) as (
       select id, 0 from customer where id = ?
       union all
       select c.id, down.depth + 1 from customer c join down on c.parent_id = down.id
     )
     select c.body, down.depth from down join customer c on c.id = down.id order by down.depth, c.seq`,
    [id],
  );
  return rows.map((r) => ({ customer: fromCustomerRow(r), depth: Number(r.depth) }));
}

// ---- plan versions ----

/** Keeps a published plan version (they never change, so the first copy is kept). */
export async function savePlanVersion(em: Em, version: PlanVersion) {
  await em.execute(
    `insert into plan_version (plan_key, version, body) values (?, ?, ?::jsonb)
     on conflict (plan_key, version) do nothing`,
    [version.planKey, version.version, json(toJson(PlanVersionSchema, version))],
  );
}

/** A plan version kept before. */
export async function findPlanVersion(em: Em, planKey: string, version: number): Promise<PlanVersion | undefined> {
  const rows = await em.execute<{ body: JsonValue }[]>(
    'select body from plan_version where plan_key = ? and version = ?',
    [planKey, version],
  );
  return rows[0] ? fromJson(PlanVersionSchema, rows[0].body) : undefined;
}

// ---- subscriptions ----

interface InternalJson {
  schedule: { start: string; zone: string; interval: string; anchor: BillingSchedule['anchor'] } | null;
  periodIndex: number;
  segments: JsonValue[];
  stateBeforeCancel: number;
  trialEndingNotified: boolean;
  addonCharges: Record<string, JsonValue[]>;
}

function toInternal(r: SubscriptionRecord): InternalJson {
  return {
    schedule: r.schedule ? { ...r.schedule, start: r.schedule.start.toISOString() } : null,
    periodIndex: r.periodIndex,
    segments: r.segments.map((s) => toJson(PeriodSegmentSchema, s)),
    stateBeforeCancel: r.stateBeforeCancel,
    trialEndingNotified: r.trialEndingNotified,
    addonCharges: Object.fromEntries(
      Object.entries(r.addonCharges).map(([k, charges]) => [k, charges.map((c) => toJson(ChargeSchema, c))]),
    ),
  };
}

interface SubscriptionRow {
  body: JsonValue;
  internal: InternalJson;
  test_clock_id: string | null;
  payer_id: string | null;
}

function fromSubscriptionRow(row: SubscriptionRow): SubscriptionRecord {
  const i = row.internal;
  const subscription = fromJson(SubscriptionSchema, row.body);
  // The payer follows the customer's tree as it is now.
  subscription.payerId = row.payer_id ?? subscription.customerId;
  return {
    subscription,
    testClockId: row.test_clock_id ?? '',
    schedule: i.schedule
      ? {
          start: new Date(i.schedule.start),
          zone: i.schedule.zone,
          interval: i.schedule.interval as BillingSchedule['interval'],
          anchor: i.schedule.anchor,
        }
      : undefined,
    periodIndex: i.periodIndex,
    segments: i.segments.map((s) => fromJson(PeriodSegmentSchema, s)),
    stateBeforeCancel: i.stateBeforeCancel as SubscriptionState,
    trialEndingNotified: i.trialEndingNotified,
    addonCharges: Object.fromEntries(
      Object.entries(i.addonCharges).map(([k, charges]) => [k, charges.map((c) => fromJson(ChargeSchema, c))]),
    ),
  };
}

/** Inserts a subscription. */
export async function insertSubscription(em: Em, record: SubscriptionRecord) {
  const s = record.subscription;
  await em.execute(
    `insert into subscription (id, customer_id, test_clock_id, state, plan_key, plan_version, has_scheduled_change,
       due_at, body, internal)
     values (?, ?, ?, ?, ?, ?, ?, ?, ?::jsonb, ?::jsonb)`,
    [
      s.id,
      s.customerId,
      record.testClockId || null,
      String(s.state),
      s.planKey,
      s.planVersion,
      s.scheduledChange !== undefined,
      nextDue(record) ?? null,
      json(toJson(SubscriptionSchema, s)),
      json(toInternal(record)),
    ],
  );
}

/** Replaces a subscription's row, recomputing when it is next due. */
export async function saveSubscription(em: Em, record: SubscriptionRecord) {
  const s = record.subscription;
  await em.execute(
    `update subscription set state = ?, plan_key = ?, plan_version = ?, has_scheduled_change = ?, due_at = ?,
       body = ?::jsonb, internal = ?::jsonb where id = ?`,
    [
      String(s.state),
      s.planKey,
      s.planVersion,
      s.scheduledChange !== undefined,
      nextDue(record) ?? null,
      json(toJson(SubscriptionSchema, s)),
      json(toInternal(record)),
      s.id,
    ],
  );
}

const SUBSCRIPTION_COLUMNS = `body, internal, test_clock_id,
  (select c.body->>'payerId' from customer c where c.id = subscription.customer_id) as payer_id`;

/** A subscription by id, with its row locked when `lock`. */
export async function findSubscription(em: Em, id: string, lock = false): Promise<SubscriptionRecord | undefined> {
  const rows = await em.execute<SubscriptionRow[]>(
    `select ${SUBSCRIPTION_COLUMNS} from subscription where id = ?${lock ? ' for update' : ''}`,
    [id],
  );
  return rows[0] ? fromSubscriptionRow(rows[0]) : undefined;
}

/** Filters of ListSubscriptions. */
export interface SubscriptionFilters {
  /** This customer only. */
  customerId: string;
  /** Customers this payer pays for. */
  payerId: string;
  /** This plan only. */
  planKey: string;
  /** This plan version only. */
  planVersion: number;
  /** These states only (empty: all). */
  states: SubscriptionState[];
  /** With a scheduled change only. */
  scheduledChangeOnly: boolean;
}

/** A page of subscriptions in creation order. */
export async function listSubscriptions(
  em: Em,
  filters: SubscriptionFilters,
  page: { size: number; after: string | undefined },
): Promise<{ seq: string; record: SubscriptionRecord }[]> {
  const where = ['seq > ?'];
  const params: unknown[] = [page.after ?? '0'];
  if (filters.customerId) {
    where.push('customer_id = ?');
    params.push(filters.customerId);
  }
  if (filters.payerId) {
    where.push("customer_id in (select id from customer where body->>'payerId' = ? or id = ?)");
    params.push(filters.payerId, filters.payerId);
  }
  if (filters.planKey) {
    where.push('plan_key = ?');
    params.push(filters.planKey);
  }
  if (filters.planVersion) {
    where.push('plan_version = ?');
    params.push(filters.planVersion);
  }
  if (filters.states.length > 0) {
    where.push('state in (select jsonb_array_elements_text(?::jsonb))');
    params.push(json(filters.states.map(String)));
  }
  if (filters.scheduledChangeOnly) where.push('has_scheduled_change');
  params.push(page.size + 1);
  const rows = await em.execute<(SubscriptionRow & { seq: string })[]>(
    `select seq, ${SUBSCRIPTION_COLUMNS} from subscription where ${where.join(' and ')} order by seq limit ?`,
    params,
  );
  return rows.map((r) => ({ seq: String(r.seq), record: fromSubscriptionRow(r) }));
}

/** Locks and returns up to `limit` real-time subscriptions due by `now`, skipping rows another replica holds. */
export async function claimDueSubscriptions(em: Em, now: Date, limit: number): Promise<SubscriptionRecord[]> {
  const rows = await em.execute<SubscriptionRow[]>(
    `select ${SUBSCRIPTION_COLUMNS} from subscription
     where due_at <= ? and test_clock_id is null
     order by due_at, seq limit ? for update skip locked`,
    [now, limit],
  );
  return rows.map(fromSubscriptionRow);
}

/** Locks and returns the test clock's subscription due first by `until`, if any. */
export async function nextDueOnTestClock(em: Em, testClockId: string, until: Date) {
  const rows = await em.execute<SubscriptionRow[]>(
    `select ${SUBSCRIPTION_COLUMNS} from subscription
     where due_at <= ? and test_clock_id = ? order by due_at, seq limit 1 for update`,
    [until, testClockId],
  );
  return rows[0] ? fromSubscriptionRow(rows[0]) : undefined;
}

/** Live subscriptions on one plan version (for migrations), locked, oldest first. */
export async function liveSubscriptionsOn(em: Em, planKey: string, version: number): Promise<SubscriptionRecord[]> {
  const rows = await em.execute<SubscriptionRow[]>(
    `select ${SUBSCRIPTION_COLUMNS} from subscription
     where plan_key = ? and plan_version = ? and state <> ? order by seq for update`,
    [planKey, version, String(SubscriptionState.ENDED)],
  );
  return rows.map(fromSubscriptionRow);
}

// ---- proration items and period closes ----

/** Inserts proration items of a subscription's period. */
export async function insertProrationItems(em: Em, periodNumber: number, items: readonly ProrationItem[]) {
  for (const item of items) {
    await em.execute(
      `insert into proration_item (id, subscription_id, period_number, billing, body) values (?, ?, ?, ?, ?::jsonb)`,
      [item.id, item.subscriptionId, periodNumber, String(item.billing), json(toJson(ProrationItemSchema, item))],
    );
  }
}

/** The items of a period carried to its close (NEXT_INVOICE), oldest first. */
export async function itemsCarriedToClose(em: Em, subscriptionId: string, periodNumber: number) {
  const rows = await em.execute<{ body: JsonValue }[]>(
    'select body from proration_item where subscription_id = ? and period_number = ? and billing = ? order by seq',
    [subscriptionId, periodNumber, String(ProrationBilling.NEXT_INVOICE)],
  );
  return rows.map((r) => fromJson(ProrationItemSchema, r.body));
}

/** A page of a subscription's proration items, oldest first. */
export async function listProrationItems(
  em: Em,
  subscriptionId: string,
  page: { size: number; after: string | undefined },
) {
  const rows = await em.execute<{ seq: string; body: JsonValue }[]>(
    'select seq, body from proration_item where subscription_id = ? and seq > ? order by seq limit ?',
    [subscriptionId, page.after ?? '0', page.size + 1],
  );
  return rows.map((r) => ({ seq: String(r.seq), item: fromJson(ProrationItemSchema, r.body) }));
}

/** Records that a period closed; throws if it was closed before (the exactly-once key). */
export async function recordPeriodClose(em: Em, subscriptionId: string, periodNumber: number, at: Date) {
  await em.execute('insert into period_close (subscription_id, period_number, closed_at) values (?, ?, ?)', [
    subscriptionId,
    periodNumber,
    at,
  ]);
}
