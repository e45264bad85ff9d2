// The subscription service's schema history, oldest first. Never edit a released migration: add a new one.
import type { SqlMigration } from '@billing/kit/migration';

/** Every migration of the subscription database. */
export const SUBSCRIPTION_MIGRATIONS: readonly SqlMigration[] = [
  {
    name: '0001_subscription',
    statements: [
      // A test clock's customers (and their subscriptions) live on its frozen time.
      `create table test_clock (
        id text primary key,
        seq bigserial not null unique,
        name text not null,
        frozen_time timestamptz not null,
        created_at timestamptz not null
      )`,
      // Customers: the protobuf JSON body, with the tree and lookup columns beside it.
      `create table customer (
        id text primary key,
        seq bigserial not null unique,
        external_id text not null unique,
        parent_id text references customer (id) on delete cascade,
        test_clock_id text references test_clock (id) on delete cascade,
        name text not null,
        body jsonb not null
      )`,
      'create index customer_parent on customer (parent_id)',
      // Published plan versions used by subscriptions, copied from the catalog (they never change).
      `create table plan_version (
        plan_key text not null,
        version integer not null,
        body jsonb not null,
        primary key (plan_key, version)
      )`,
      // Subscriptions: the protobuf body, the internal state the billing clock works on, and `due_at`, the
      // next time something happens to the subscription on its clock (null when nothing will).
      `create table subscription (
        id text primary key,
        seq bigserial not null unique,
        customer_id text not null references customer (id) on delete cascade,
        test_clock_id text references test_clock (id) on delete cascade,
        state text not null,
        plan_key text not null,
        plan_version integer not null,
        has_scheduled_change boolean not null default false,
        due_at timestamptz,
        body jsonb not null,
        internal jsonb not null
      )`,
      'create index subscription_customer on subscription (customer_id)',
      'create index subscription_plan on subscription (plan_key, plan_version)',
      'create index subscription_due on subscription (due_at) where due_at is not null',
      `create table proration_item (
        id text primary key,
        seq bigserial not null unique,
        subscription_id text not null references subscription (id) on delete cascade,
        period_number integer not null,
        billing text not null,
        body jsonb not null
      )`,
      'create index proration_item_subscription on proration_item (subscription_id, period_number)',
      // One row per closed period: the key that makes a period close happen exactly once.
      `create table period_close (
        subscription_id text not null references subscription (id) on delete cascade,
        period_number integer not null,
        closed_at timestamptz not null,
        primary key (subscription_id, period_number)
      )`,
    ],
  },
  {
    name: '0002_customer_payer',
    statements: [
      // Who pays for a customer, for lists by payer: a payer may pay for tens of thousands of customers, which a
      // list reads through this index rather than through every customer.
      "create index customer_payer on customer ((body->>'payerId'))",
    ],
  },
];
