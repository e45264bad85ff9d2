// The usage service's schema history, oldest first. Never edit a released migration: add a new one.
import type { SqlMigration } from '@billing/kit/migration';

/** Every migration of the usage database. */
export const USAGE_MIGRATIONS: readonly SqlMigration[] = [
  {
    name: '0001_usage',
    statements: [
      // The catalog's meters, as their protobuf JSON, kept up to date from catalog events.
      `create table meter (
        key text primary key,
        event_type text not null,
        body jsonb not null,
        archived boolean not null default false,
        updated_at timestamptz not null
      )`,
      'create index meter_event_type on meter (event_type)',
      // One row per (customer, event id), forever: the database, not a check-then-insert, makes ingestion
      // exactly once, also for two producers sending the same batch at the same time.
      `create table usage_event_key (
        customer_external_id text not null,
        event_id text not null,
        fingerprint text not null,
        event_time timestamptz not null,
        primary key (customer_external_id, event_id)
      )`,
      // Raw events, partitioned by month of event time so that old months can be dropped or archived.
      `create table usage_event (
        customer_external_id text not null,
        event_id text not null,
        event_type text not null,
        event_time timestamptz not null,
        properties jsonb not null,
        ingested_at timestamptz not null,
        voided boolean not null default false
      ) partition by range (event_time)`,
      'create index usage_event_customer_time on usage_event (customer_external_id, event_time)',
      'create table usage_event_default partition of usage_event default',
      // Hourly rollups per (meter, customer, group-by values, hour): queries read these, not raw events.
      `create table usage_rollup (
        meter_key text not null,
        customer_external_id text not null,
        group_key text not null,
        hour timestamptz not null,
        aggregation text not null,
        value numeric not null,
        event_count bigint not null,
        latest_time timestamptz,
        latest_event_id text,
        primary key (meter_key, customer_external_id, hour, group_key)
      )`,
      // Distinct values of unique-count meters per hour (exact counts over any range of hours).
      `create table usage_distinct (
        meter_key text not null,
        customer_external_id text not null,
        group_key text not null,
        hour timestamptz not null,
        value text not null,
        primary key (meter_key, customer_external_id, hour, group_key, value)
      )`,
    ],
  },
  {
    name: '0002_corrections',
    statements: [
      // Amendments and voids (S11): how often an event was amended, and when it last changed.
      'alter table usage_event add column amendment_count integer not null default 0',
      'alter table usage_event add column updated_at timestamptz',
    ],
  },
  {
    name: '0003_deltas',
    statements: [
      // What ingestion changed, per batch, customer, meter and period, until the delta publisher takes it.
      `create table usage_pending_delta (
        id bigserial primary key,
        customer_external_id text not null,
        meter_key text not null,
        period_start timestamptz not null,
        period_end timestamptz not null,
        event_count bigint not null,
        last_ingest_at timestamptz not null
      )`,
      // The last value published per customer, meter and period, so each delta is exact for every aggregation.
      `create table usage_published_value (
        customer_external_id text not null,
        meter_key text not null,
        period_start timestamptz not null,
        value numeric not null,
        event_count bigint not null,
        primary key (customer_external_id, meter_key, period_start)
      )`,
    ],
  },
  {
    name: '0004_incremental_deltas',
    statements: [
      // What each batch added, so the publisher moves values forward instead of recomputing them.
      "alter table usage_pending_delta add column aggregation text not null default 'sum'",
      'alter table usage_pending_delta add column value numeric not null default 0',
      'alter table usage_pending_delta add column latest_time timestamptz',
      'alter table usage_pending_delta add column latest_event_id text',
      'alter table usage_pending_delta add column recompute boolean not null default false',
      'alter table usage_published_value add column latest_time timestamptz',
      'alter table usage_published_value add column latest_event_id text',
    ],
  },
  {
    name: '0005_minute_rollups',
    statements: [
      // Minute rollups, so the partial hours at a period's edges are read from at most 60 rows instead of raw
      // events (unique counts still read raw events there). They exist for event times from \`since\` on: in a
      // database that already held events, from when this migration ran (plus the 5 minutes of clock skew an
      // event may have); earlier edges are read from raw events.
      `create table usage_rollup_minute (
        meter_key text not null,
        customer_external_id text not null,
        group_key text not null,
        minute timestamptz not null,
        aggregation text not null,
        value numeric not null,
        event_count bigint not null,
        latest_time timestamptz,
        latest_event_id text,
        primary key (meter_key, customer_external_id, minute, group_key)
      )`,
      'create table usage_minute_rollups (since timestamptz not null)',
      `insert into usage_minute_rollups (since)
       select case when exists (select 1 from usage_event) then now() + interval '5 minutes' else '-infinity' end`,
      // What each batch adds, per minute and billing period, appended without locking any rollup row
      // (concurrent batches of the same customers never wait for each other). The delta publisher folds it into
      // the minute and hour rollups and turns it into what it publishes per period, in one transaction.
      // Readers read it too, so a value is exact whether or not its deltas were folded yet. Rows rebuilt by a
      // correction have no period (the correction asks for a recompute of its periods itself).
      `create table usage_rollup_delta (
        meter_key text not null,
        customer_external_id text not null,
        group_key text not null,
        minute timestamptz not null,
        aggregation text not null,
        value numeric not null,
        event_count bigint not null,
        latest_time timestamptz,
        latest_event_id text,
        period_start timestamptz,
        period_end timestamptz,
        subscription_id text,
        period_closed boolean not null default false,
        late_event_ids jsonb not null default '[]',
        ingested_at timestamptz
      )`,
      'create index usage_rollup_delta_key on usage_rollup_delta (meter_key, customer_external_id, minute)',
    ],
  },
  {
    name: '0006_billing_periods',
    statements: [
      // Each customer's subscription periods, from the subscription service's events: usage is counted in them,
      // and events falling in a closed one are late (S11).
      `create table billing_period (
        subscription_id text not null,
        period_start timestamptz not null,
        period_end timestamptz not null,
        customer_external_id text not null,
        closed boolean not null default false,
        primary key (subscription_id, period_start)
      )`,
      'create index billing_period_customer on billing_period (customer_external_id, period_end)',
      'alter table usage_event add column late boolean not null default false',
      // Late events are few: counting them for a period must not read the period's other events.
      'create index usage_event_late on usage_event (customer_external_id, event_time) where late',
      "alter table usage_pending_delta add column subscription_id text not null default ''",
      'alter table usage_pending_delta add column period_closed boolean not null default false',
      "alter table usage_pending_delta add column late_event_ids jsonb not null default '[]'",
      // A recompute a correction asked for: the correction announced its own change, so the publisher only
      // brings the published value up to date (and tells entitlement, for an open period).
      'alter table usage_pending_delta add column correction boolean not null default false',
    ],
  },
  {
    name: '0007_hot_rollup_updates',
    statements: [
      // The publisher updates the same rollup and published-value rows pass after pass: free space in each page
      // lets PostgreSQL update them in place (HOT), without a new index entry per update.
      'alter table usage_rollup set (fillfactor = 70)',
      'alter table usage_rollup_minute set (fillfactor = 70)',
      'alter table usage_published_value set (fillfactor = 70)',
    ],
  },
  {
    name: '0008_rollup_log',
    statements: [
      // Replicas of the previous version may run while this migrates: their publisher passes skip while this
      // holds the lock, their corrections wait for it, and their ingestion waits for the table; both then fail
      // once it is gone (nothing is acknowledged), so no delta is appended or folded between the copy below and
      // the drop.
      "select pg_advisory_xact_lock(hashtext('usage-delta-publisher'))",
      'lock table usage_rollup_delta in access exclusive mode',
      // What each ingesting transaction adds to the rollups, as one row instead of one row per bucket: under
      // load nearly every event is its own bucket, and writing, indexing and deleting those rows cost more than
      // storing the events. The body maps each customer to its entries (see rollupLogEntries in the store), so
      // a reader of one customer extracts only that customer's part.
      `create table usage_rollup_log (
        id bigserial primary key,
        ingested_at timestamptz not null,
        body jsonb not null
      )`,
      // Bodies are large and short-lived: lz4 compresses them several times faster than the default, where the
      // server has it.
      `do $$ begin
         alter table usage_rollup_log alter column body set compression lz4;
       exception when others then null;
       end $$`,
      // Deltas appended before the upgrade move to the log, one row for all of them.
      `insert into usage_rollup_log (ingested_at, body)
       select coalesce(max(last_ingest), now()), jsonb_object_agg(customer_external_id, entries)
         from (select customer_external_id, max(ingested_at) as last_ingest,
                      jsonb_agg(jsonb_build_array(
                        meter_key, group_key, (extract(epoch from minute) / 60)::bigint, aggregation, value::text,
                        event_count, (extract(epoch from latest_time) * 1000)::bigint, latest_event_id,
                        case when period_start is not null then jsonb_build_array(
                          (extract(epoch from period_start) * 1000)::bigint, (extract(epoch from period_end) * 1000)::bigint,
                          subscription_id, period_closed) end,
                        late_event_ids)) as entries
                 from usage_rollup_delta group by customer_external_id) appended
       having count(*) > 0`,
      'drop table usage_rollup_delta',
    ],
  },
  {
    name: '0009_published_value_per_subscription',
    statements: [
      // A calendar month and a subscription period (or two subscriptions' periods) may start at the same instant:
      // each keeps its own published value. Rows published before name no subscription: those of a start some
      // subscription period has are taken to be the newest such subscription's (the one that counts). Replicas of
      // the previous version still running name the old key in their upserts: their publisher passes fail and
      // roll back (nothing is lost: the next pass of a new replica publishes it) until they are replaced.
      "alter table usage_published_value add column subscription_id text not null default ''",
      `update usage_published_value p set subscription_id = b.subscription_id
         from (select distinct on (customer_external_id, period_start) customer_external_id, period_start,
                      subscription_id
                 from billing_period order by customer_external_id, period_start, subscription_id desc) b
        where b.customer_external_id = p.customer_external_id and b.period_start = p.period_start`,
      'alter table usage_published_value drop constraint usage_published_value_pkey',
      'alter table usage_published_value add primary key (customer_external_id, meter_key, period_start, subscription_id)',
    ],
  },
  {
    name: '0010_meter_catalog_seq',
    statements: [
      // The catalog event a meter's row was last saved from (its number in the meter's sequence): an older one,
      // replayed late, changes nothing.
      'alter table meter add column catalog_seq bigint',
    ],
  },
];
