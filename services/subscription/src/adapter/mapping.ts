// Conversions between subscription rows and domain objects. Customers, subscriptions, plan versions and
// proration items are their contract messages, stored as protobuf JSON beside the columns that are queried.

import { ChargeSchema, type PlanVersion, PlanVersionSchema } from '@billing/proto/billing/catalog/v1/resources_pb';
import { PeriodSegmentSchema } from '@billing/proto/billing/subscription/events/v1/events_pb';
import {
  type Customer,
  CustomerSchema,
  type ProrationItem,
  ProrationItemSchema,
  SubscriptionSchema,
  type SubscriptionState,
  type TestClock,
  TestClockSchema,
  TestClockStatus,
} from '@billing/proto/billing/subscription/v1/resources_pb';
import { create, fromJson, type JsonValue, toJson } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { BillingSchedule } from '../domain/billing-calendar.ts';
import { nextDue, type SubscriptionRecord } from '../domain/subscription.ts';

/** A test clock from its row; `busy` when an advance (or a deletion) holds its row. */
export function fromDbTestClock(
  row: { id: string; name: string; frozenTime: Date; createdAt: Date; customerCount?: number | null },
  busy: boolean,
): TestClock {
  return create(TestClockSchema, {
    id: row.id,
    name: row.name,
    frozenTime: timestampFromDate(row.frozenTime),
    status: busy ? TestClockStatus.ADVANCING : TestClockStatus.READY,
    customerCount: row.customerCount ?? 0,
    createTime: timestampFromDate(row.createdAt),
  });
}

/** A customer from its row. */
export function fromDbCustomer(row: { body: JsonValue }): Customer {
  return fromJson(CustomerSchema, row.body);
}

/** The columns of a customer's row. */
export function toDbCustomer(customer: Customer) {
  return {
    externalId: customer.externalId,
    parentId: customer.parentId || null,
    testClockId: customer.testClockId || null,
    name: customer.name,
    body: toJson(CustomerSchema, customer),
  };
}

/** A kept plan version from its row. */
export function fromDbPlanVersion(row: { body: JsonValue }): PlanVersion {
  return fromJson(PlanVersionSchema, row.body);
}

/** The columns of a kept plan version's row. */
export function toDbPlanVersion(version: PlanVersion) {
  return { planKey: version.planKey, version: version.version, body: toJson(PlanVersionSchema, version) };
}

/** A proration item from its row. */
export function fromDbProrationItem(row: { body: JsonValue }): ProrationItem {
  return fromJson(ProrationItemSchema, row.body);
}

/** The columns of a proration item's row, in the period it belongs to. */
export function toDbProrationItem(item: ProrationItem, periodNumber: number) {
  return {
    id: item.id,
    subscriptionId: item.subscriptionId,
    periodNumber,
    billing: String(item.billing),
    body: toJson(ProrationItemSchema, item),
  };
}

// The stored form of a subscription's internal state (rows written before keep reading, so fields are only added).
interface InternalJson {
  schedule: { start: string; zone: string; interval: string; anchor: BillingSchedule['anchor'] } | null;
  periodIndex: number;
  segments: JsonValue[];
  stateBeforeCancel: number;
  trialEndingNotified: boolean;
  addonCharges: Record<string, JsonValue[]>;
}

function toDbInternal(r: SubscriptionRecord): InternalJson {
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

/** A subscription with its internal state from its row (`payerId` read from its customer as it is now). */
export function fromDbSubscription(row: {
  body: JsonValue;
  internal: JsonValue;
  testClockId?: string | null;
  payerId?: string | null;
}): SubscriptionRecord {
  const i = row.internal as unknown as InternalJson;
  const subscription = fromJson(SubscriptionSchema, row.body);
  subscription.payerId = row.payerId ?? subscription.customerId;
  return {
    subscription,
    testClockId: row.testClockId ?? '',
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

/** The columns of a subscription's row, with when it is next due. */
export function toDbSubscription(record: SubscriptionRecord) {
  const s = record.subscription;
  return {
    customerId: s.customerId,
    testClockId: record.testClockId || null,
    state: String(s.state),
    planKey: s.planKey,
    planVersion: s.planVersion,
    hasScheduledChange: s.scheduledChange !== undefined,
    dueAt: nextDue(record) ?? null,
    body: toJson(SubscriptionSchema, s),
    internal: toDbInternal(record) as unknown as JsonValue,
  };
}
