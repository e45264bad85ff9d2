// MikroORM entities of the subscription database, matching the tables of migrations/index.ts. Documents are
// kept as their protobuf JSON (`body`) beside the columns that are queried, locked or joined; mapping.ts
// converts. `seq` (bigserial) orders lists and pages; the database assigns it on insert.

import type { JsonValue } from '@bufbuild/protobuf';
import { defineEntity, p } from '@mikro-orm/core';

/** A test clock: a frozen time its customers live on. */
export const TestClockRow = defineEntity({
  name: 'TestClockRow',
  tableName: 'test_clock',
  properties: {
    id: p.string().primary(),
    seq: p.bigint('string').defaultRaw("nextval('test_clock_seq_seq')"),
    name: p.string(),
    frozenTime: p.datetime(),
    createdAt: p.datetime(),
    // Counted when read, so that it never drifts from the customers that exist.
    customerCount: p
      .formula<number | null>(
        (_columns, table) => `(select count(*)::integer from customer c where c.test_clock_id = ${table.alias}.id)`,
      )
      .type('integer')
      .nullable(),
  },
});

/** A customer: its protobuf JSON, with the tree and lookup columns beside it. */
export const CustomerRow = defineEntity({
  name: 'CustomerRow',
  tableName: 'customer',
  properties: {
    id: p.string().primary(),
    seq: p.bigint('string').defaultRaw("nextval('customer_seq_seq')"),
    externalId: p.string().unique(),
    parentId: p.string().nullable(),
    testClockId: p.string().nullable(),
    name: p.string(),
    body: p.json<JsonValue>(),
  },
});

/** A published plan version a subscription was sold on, copied from the catalog (versions never change). */
export const PlanVersionRow = defineEntity({
  name: 'PlanVersionRow',
  tableName: 'plan_version',
  properties: {
    planKey: p.string().primary(),
    version: p.integer().primary(),
    body: p.json<JsonValue>(),
  },
  primaryKeys: ['planKey', 'version'],
});

/**
 * A subscription: its protobuf JSON, the internal state the billing clock works on, and `dueAt`, the next time
 * something happens to it on its clock (null when nothing will).
 */
export const SubscriptionRow = defineEntity({
  name: 'SubscriptionRow',
  tableName: 'subscription',
  properties: {
    id: p.string().primary(),
    seq: p.bigint('string').defaultRaw("nextval('subscription_seq_seq')"),
    customerId: p.string(),
    testClockId: p.string().nullable(),
    state: p.string(),
    planKey: p.string(),
    planVersion: p.integer(),
    hasScheduledChange: p.boolean(),
    dueAt: p.datetime().nullable(),
    body: p.json<JsonValue>(),
    internal: p.json<JsonValue>(),
    // The payer follows the customer's tree as it is now, so it is read from the customer, never stored here.
    payerId: p
      .formula<string | null>(
        (_columns, table) => `(select c.body->>'payerId' from customer c where c.id = ${table.alias}.customer_id)`,
      )
      .type('string')
      .nullable(),
  },
});

/** A proration item of a subscription's period. */
export const ProrationItemRow = defineEntity({
  name: 'ProrationItemRow',
  tableName: 'proration_item',
  properties: {
    id: p.string().primary(),
    seq: p.bigint('string').defaultRaw("nextval('proration_item_seq_seq')"),
    subscriptionId: p.string(),
    periodNumber: p.integer(),
    billing: p.string(),
    body: p.json<JsonValue>(),
  },
});

/** A closed period: its key (subscription, period number) makes every period close exactly once. */
export const PeriodCloseRow = defineEntity({
  name: 'PeriodCloseRow',
  tableName: 'period_close',
  properties: {
    subscriptionId: p.string().primary(),
    periodNumber: p.integer().primary(),
    closedAt: p.datetime(),
  },
  primaryKeys: ['subscriptionId', 'periodNumber'],
});

/**
 * The option every repository read (and upsert) takes. Rows become domain objects as they are read, so none is
 * kept in the entity manager's identity map, and writes are native statements (`em.insert`, `em.nativeUpdate`):
 * a flush then has nothing to compare however many rows a transaction reads and saves (a migration, a test
 * clock's advance, a tree move), and a read after a write sees the row as written, never an entity loaded before.
 */
export const UNTRACKED = { disableIdentityMap: true } as const;

/** Every entity of the subscription service. */
export const SUBSCRIPTION_ENTITIES = [
  TestClockRow,
  CustomerRow,
  PlanVersionRow,
  SubscriptionRow,
  ProrationItemRow,
  PeriodCloseRow,
];
