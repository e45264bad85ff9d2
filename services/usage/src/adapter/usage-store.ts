// Persistence of the usage service, in set-oriented SQL (one statement per batch and table, rows passed as
// one JSON parameter): ingestion must reach tens of thousands of events per second.
import { type Em, queryBound } from '@billing/kit/db';
import { Decimal } from '@billing/money';
import {
  FilterOperator,
  type Meter,
  MeterAggregation,
  MeterSchema,
} from '@billing/proto/billing/catalog/v1/resources_pb';
import { fromJson, type JsonValue, toJson } from '@bufbuild/protobuf';
import { amountText, MAX_NUMBER_LENGTH, MAX_VALUE_MAGNITUDE, VALUE_DECIMALS } from '../domain/meter.ts';
import { mergeIncrements, type PeriodIncrement, type PeriodState } from '../domain/period-value.ts';
import type { BillingPeriod, KnownPeriod } from '../domain/periods.ts';
import { hourOf, MAX_LATE_IDS, type RollupDelta } from '../domain/rollup.ts';
import type { ValidEvent } from '../domain/usage-event.ts';

/** Every meter (archived ones too: published versions still bill them) reading events of one of `types`. */
export async function metersForTypes(em: Em, types: readonly string[]): Promise<Meter[]> {
  if (types.length === 0) return [];
  const rows = await em.execute<{ body: JsonValue }[]>(
    'select body from meter where event_type in (select jsonb_array_elements_text(?::jsonb))',
    [JSON.stringify([...new Set(types)])],
  );
  return rows.map((r) => fromJson(MeterSchema, r.body));
}

/** One meter by key, archived or not. */
export async function findMeter(em: Em, key: string): Promise<Meter | undefined> {
  return (await findMeters(em, [key])).get(key);
}

/** The meters with these keys, archived or not, by key. */
export async function findMeters(em: Em, keys: readonly string[]): Promise<Map<string, Meter>> {
  if (keys.length === 0) return new Map();
  const rows = await em.execute<{ body: JsonValue; archived: boolean }[]>(
    'select body, archived from meter where key in (select jsonb_array_elements_text(?::jsonb))',
    [JSON.stringify([...new Set(keys)])],
  );
  return new Map(
    rows.map((row) => {
      const meter = fromJson(MeterSchema, row.body);
      meter.archived = row.archived;
      return [meter.key, meter];
    }),
  );
}

/**
 * Inserts or replaces a meter of the projection. `catalogSeq`, the catalog event's number in the meter's
 * sequence, keeps an older event (a parked one replayed late) from undoing a newer one.
 */
export async function saveMeter(em: Em, meter: Meter, now: Date, catalogSeq?: number): Promise<void> {
  await em.execute(
    `insert into meter (key, event_type, body, archived, updated_at, catalog_seq) values (?, ?, ?::jsonb, ?, ?, ?)
     on conflict (key) do update set event_type = excluded.event_type, body = excluded.body,
       archived = excluded.archived, updated_at = excluded.updated_at, catalog_seq = excluded.catalog_seq
     where meter.catalog_seq is null or excluded.catalog_seq is null or meter.catalog_seq < excluded.catalog_seq`,
    [meter.key, meter.eventType, JSON.stringify(toJson(MeterSchema, meter)), meter.archived, now, catalogSeq ?? null],
  );
}

/** What claiming event keys found: which events are new, and which were stored before (same content or not). */
export interface Claim {
  /** Indexes of events stored for the first time by this call. */
  accepted: Set<number>;
  /** Indexes of events seen before, with whether their content matched. */
  duplicates: Map<number, 'same' | 'different'>;
}

// An event's (customer, id) key in a map: neither holds NUL (validation refuses it).
const eventKey = (customer: string, id: string) => `${customer}\u0000${id}`;

/**
 * The statement claiming keys and storing the events whose key it claimed ($1: the rows, $2: the ingestion time);
 * returns the events whose key was claimed before. Without `tolerateClaimed`, a key claimed before fails it, so
 * when it succeeds every key was claimed: it stores every event, and returns none.
 */
function claimStatement(tolerateClaimed: boolean): string {
  const rows = `with x as (
       select e->>0 as c, e->>1 as i, e->>2 as f, (e->>3)::timestamptz as t, e->>4 as y, e->5 as p,
              (e->>6)::boolean as l
         from jsonb_array_elements($1::jsonb) e
     )`;
  const claim =
    'insert into usage_event_key (customer_external_id, event_id, fingerprint, event_time) select c, i, f, t from x order by c, i';
  const store =
    'insert into usage_event (customer_external_id, event_id, event_type, event_time, properties, ingested_at, late)';
  if (!tolerateClaimed) return `${rows}, claimed as (${claim}) ${store} select c, i, y, t, p, $2, l from x`;
  return `${rows}, claimed as (
       ${claim} on conflict do nothing returning customer_external_id as c, event_id as i
     ), stored as (
       ${store} select x.c, x.i, x.y, x.t, x.p, $2, x.l from x join claimed on claimed.c = x.c and claimed.i = x.i
     )
     select c, i from x where not exists (select from claimed where claimed.c = x.c and claimed.i = x.i)`;
}

/**
 * Thrown by a claim expecting every key new when one was claimed before: its transaction is aborted and must be
 * done again without that expectation.
 */
export class KeyClaimedBeforeError extends Error {
  constructor() {
    super('an event key was claimed before');
  }
}

/** Whether a claim failed because a key was claimed before (a unique violation of usage_event_key). */
function isClaimedBefore(err: unknown): boolean {
  const e = err as { code?: unknown; constraint?: unknown };
  return e.code === '23505' && e.constraint === 'usage_event_key_pkey';
}

/**
 * Claims the (customer, id) keys of `events` and stores the events whose key this call claimed, in one
 * statement; a key claimed before (by another call, even one running at the same moment, which this one waits
 * for) is a duplicate. Within one batch, the first event of a key wins. `late` holds the indexes of events
 * falling in a closed billing period. With `keysNew`, the claim expects every key new, which makes its key insert
 * a third cheaper (plain, instead of speculative per row), and throws KeyClaimedBeforeError when one is not.
 */
export async function claimAndStoreEvents(
  em: Em,
  events: readonly ValidEvent[],
  now: Date,
  late: ReadonlySet<number>,
  keysNew = false,
): Promise<Claim> {
  const accepted = new Set<number>();
  const duplicates = new Map<number, 'same' | 'different'>();
  // The first event of each id, per customer (two lookups of the strings as they are cost less than one of a
  // key made of both).
  const firstOfId = new Map<string, Map<string, ValidEvent>>();
  const candidates: ValidEvent[] = [];
  for (const e of events) {
    let ids = firstOfId.get(e.customer);
    if (!ids) {
      ids = new Map();
      firstOfId.set(e.customer, ids);
    }
    const first = ids.get(e.id);
    if (first) duplicates.set(e.index, first.fingerprint === e.fingerprint ? 'same' : 'different');
    else {
      ids.set(e.id, e);
      candidates.push(e);
    }
  }
  if (candidates.length === 0) return { accepted, duplicates };
  // Built as text around each event's canonical properties JSON, which validation already made: one array per
  // event, [customer, id, fingerprint, time, type, properties, late], which PostgreSQL reads three times faster
  // than objects through jsonb_to_recordset.
  const rows = `[${candidates
    .map(
      (e) =>
        `[${JSON.stringify(e.customer)},${JSON.stringify(e.id)},"${e.fingerprint}",` +
        `"${e.timeIso}",${JSON.stringify(e.type)},${e.propertiesJson},${late.has(e.index)}]`,
    )
    .join(',')}]`;
  let unclaimed: { c: string; i: string }[];
  try {
    unclaimed = await queryBound(em, claimStatement(!keysNew), [rows, now]);
  } catch (err) {
    if (keysNew && isClaimedBefore(err)) throw new KeyClaimedBeforeError();
    throw err;
  }
  if (unclaimed.length === 0) {
    for (const e of candidates) accepted.add(e.index);
    return { accepted, duplicates };
  }
  const lostKeys = new Set(unclaimed.map((r) => eventKey(r.c, r.i)));
  const lost = candidates.filter((e) => lostKeys.has(eventKey(e.customer, e.id)));
  for (const e of candidates) if (!lostKeys.has(eventKey(e.customer, e.id))) accepted.add(e.index);
  const existing = await queryBound<{ c: string; i: string; f: string }>(
    em,
    `select k.customer_external_id as c, k.event_id as i, k.fingerprint as f
       from usage_event_key k join jsonb_to_recordset($1::jsonb) as x(c text, i text)
         on k.customer_external_id = x.c and k.event_id = x.i`,
    [JSON.stringify(lost.map((e) => ({ c: e.customer, i: e.id })))],
  );
  const fingerprints = new Map(existing.map((r) => [eventKey(r.c, r.i), r.f]));
  for (const e of lost) {
    const stored = fingerprints.get(eventKey(e.customer, e.id));
    duplicates.set(e.index, stored === e.fingerprint ? 'same' : 'different');
  }
  return { accepted, duplicates };
}

// ---- billing periods ----

/**
 * Records a subscription period as announced: open, or closed (a closed period stays closed). Returns whether
 * the period was new.
 */
export async function savePeriod(em: Em, period: KnownPeriod & { subscriptionId: string }): Promise<boolean> {
  const rows = await em.execute<{ inserted: boolean }[]>(
    `insert into billing_period (subscription_id, period_start, period_end, customer_external_id, closed)
     values (?, ?, ?, ?, ?)
     on conflict (subscription_id, period_start) do update set period_end = excluded.period_end,
       customer_external_id = excluded.customer_external_id, closed = billing_period.closed or excluded.closed
     returning (xmax = 0) as inserted`,
    [period.subscriptionId, period.start, period.end, period.customer, period.closed],
  );
  return rows[0]?.inserted === true;
}

/** Whether `period` is recorded already as announced (same end, closed if announced closed): saving it changes nothing. */
export async function periodRecorded(em: Em, period: KnownPeriod & { subscriptionId: string }): Promise<boolean> {
  const rows = await em.execute<{ recorded: boolean }[]>(
    `select true as recorded from billing_period
      where subscription_id = ? and period_start = ? and period_end = ? and (closed or not ?)`,
    [period.subscriptionId, period.start, period.end, period.closed],
  );
  return rows.length > 0;
}

/** The meters with usage of `customer` in the hours (folded) or minutes (not folded yet) overlapping [from, to). */
export async function metersWithUsage(em: Em, customer: string, from: Date, to: Date): Promise<Meter[]> {
  const rows = await em.execute<{ body: JsonValue }[]>(
    `select m.body from meter m
      where exists (select from usage_rollup r where r.meter_key = m.key and r.customer_external_id = ?
                      and r.hour >= date_trunc('hour', ?::timestamptz, 'UTC') and r.hour < ?)
         or exists (select from (${rollupLogEntries('usage_rollup_log', true)}) d where d.meter_key = m.key
                      and d.minute >= date_trunc('minute', ?::timestamptz, 'UTC') and d.minute < ?)`,
    [customer, from, to, customer, customer, from, to],
  );
  return rows.map((r) => fromJson(MeterSchema, r.body));
}

/** The known subscription periods of `customers` that end at or after `from` (one ended at its start included). */
export async function knownPeriods(em: Em, customers: readonly string[], from: Date): Promise<KnownPeriod[]> {
  if (customers.length === 0) return [];
  const rows = await em.execute<
    { subscription_id: string; period_start: Date; period_end: Date; customer_external_id: string; closed: boolean }[]
  >(
    `select subscription_id, period_start, period_end, customer_external_id, closed from billing_period
      where customer_external_id in (select jsonb_array_elements_text(?::jsonb)) and period_end >= ?`,
    [JSON.stringify([...new Set(customers)]), from],
  );
  return rows.map((r) => ({
    subscriptionId: r.subscription_id,
    start: new Date(r.period_start),
    end: new Date(r.period_end),
    customer: r.customer_external_id,
    closed: r.closed,
  }));
}

/** The number of late events a meter counts for a customer in [from, to). */
export async function lateEventCount(em: Em, meter: Meter, customer: string, from: Date, to: Date): Promise<number> {
  const selection = meterSelection(meter);
  const rows = await em.execute<{ n: string }[]>(
    `select count(*) as n from usage_event
      where customer_external_id = ? and ${selection.where.join(' and ')}
        and event_time >= ? and event_time < ? and late and not voided`,
    [customer, ...selection.params, from, to],
  );
  return Number(rows[0]?.n ?? 0);
}

const AGGREGATION_NAME: Record<number, string> = {
  [MeterAggregation.COUNT]: 'count',
  [MeterAggregation.SUM]: 'sum',
  [MeterAggregation.MAX]: 'max',
  [MeterAggregation.UNIQUE_COUNT]: 'unique_count',
  [MeterAggregation.LATEST]: 'latest',
};

/**
 * How a rollup row absorbs another of the same bucket (`r` the row, `excluded` the one added). Event ids compare
 * byte-wise (collation "C"), as in TypeScript, whatever the database's collation.
 */
const ROLLUP_MERGE = `event_count = r.event_count + excluded.event_count,
       value = case r.aggregation
         when 'max' then greatest(r.value, excluded.value)
         when 'latest' then case when (excluded.latest_time, excluded.latest_event_id collate "C") > (r.latest_time, r.latest_event_id collate "C")
                                 then excluded.value else r.value end
         when 'unique_count' then r.value
         else r.value + excluded.value end,
       latest_time = case when r.aggregation = 'latest'
                          and (excluded.latest_time, excluded.latest_event_id collate "C") > (r.latest_time, r.latest_event_id collate "C")
                          then excluded.latest_time else r.latest_time end,
       latest_event_id = case when r.aggregation = 'latest'
                          and (excluded.latest_time, excluded.latest_event_id collate "C") > (r.latest_time, r.latest_event_id collate "C")
                          then excluded.latest_event_id else r.latest_event_id end`;

/**
 * SQL turning milliseconds since the epoch (`ms`, an expression) to a timestamp, exactly (to_timestamp of a
 * fraction rounds far from 1970): whole seconds, then the rest (integer division and remainder truncate alike,
 * so they add up for any sign).
 */
const fromMilliseconds = (ms: string) =>
  `(to_timestamp(${ms}::bigint / 1000) + (${ms}::bigint % 1000) * interval '1 millisecond')`;

/**
 * The entries of rollup log rows (`source`: rows with body and ingested_at) as rollup delta rows, of every
 * customer or (`oneCustomer`, two parameters: the customer's id twice) of one. An entry is an array:
 * [meter key, group, minute (minutes since the epoch), aggregation, value, event count, latest event time
 * (milliseconds) or null, latest event id or null, billing period ([start ms, end ms, subscription id, closed])
 * or null, late event ids (optional)].
 */
function rollupLogEntries(source: string, oneCustomer: boolean): string {
  const customers = oneCustomer
    ? 'lateral (select ?::text as key, l.body -> ?::text as value) c'
    : 'lateral jsonb_each(l.body) c';
  return `select e->>0 as meter_key, c.key as customer_external_id, e->>1 as group_key,
         to_timestamp((e->>2)::bigint * 60) as minute, e->>3 as aggregation, (e->>4)::numeric as value,
         (e->>5)::bigint as event_count, ${fromMilliseconds('(e->>6)')} as latest_time,
         e->>7 as latest_event_id, ${fromMilliseconds('(e->8->>0)')} as period_start,
         ${fromMilliseconds('(e->8->>1)')} as period_end, e->8->>2 as subscription_id,
         coalesce((e->8->>3)::boolean, false) as period_closed, coalesce(e->9, '[]') as late_event_ids,
         l.ingested_at
       from ${source} l cross join ${customers} cross join lateral jsonb_array_elements(c.value) e`;
}

const MINUTE = 60_000;

/** A rollup delta as an entry of the rollup log (see rollupLogEntries), in JSON. */
function rollupLogEntry(d: RollupDelta): string {
  const latest = d.latest ? `${d.latest.time.getTime()},${JSON.stringify(d.latest.id)}` : 'null,null';
  const period = d.period
    ? `[${d.period.start.getTime()},${d.period.end.getTime()},${JSON.stringify(d.period.subscriptionId)},${d.period.closed}]`
    : 'null';
  const late = d.lateEventIds.length > 0 ? `,${JSON.stringify(d.lateEventIds)}` : '';
  return `[${JSON.stringify(d.meterKey)},${JSON.stringify(d.group)},${d.bucket.getTime() / MINUTE},"${
    AGGREGATION_NAME[d.aggregation] ?? 'sum'
  }","${amountText(d.value)}",${d.eventCount},${latest},${period}${late}]`;
}

/**
 * Appends a batch's minute deltas to the rollup log, one row for the whole batch (the delta publisher folds it
 * into the rollups; readers read it until then), and adds its distinct values per hour. Locks no rollup row.
 */
export async function applyRollups(em: Em, deltas: readonly RollupDelta[], now: Date): Promise<void> {
  if (deltas.length === 0) return;
  const byCustomer = new Map<string, string[]>();
  for (const d of deltas) {
    const entries = byCustomer.get(d.customer);
    if (entries) entries.push(rollupLogEntry(d));
    else byCustomer.set(d.customer, [rollupLogEntry(d)]);
  }
  const body = [...byCustomer].map(([customer, entries]) => `${JSON.stringify(customer)}:[${entries.join(',')}]`);
  await queryBound(em, 'insert into usage_rollup_log (ingested_at, body) values ($1, $2::jsonb)', [
    now,
    `{${body.join(',')}}`,
  ]);
  const distinct = deltas.flatMap((d) =>
    [...d.distinct].map((v) => ({ m: d.meterKey, c: d.customer, g: d.group, h: hourOf(d.bucket).toISOString(), v })),
  );
  if (distinct.length > 0) {
    await queryBound(
      em,
      `insert into usage_distinct (meter_key, customer_external_id, group_key, hour, value)
       select m, c, g, h, v from jsonb_to_recordset($1::jsonb) as x(m text, c text, g text, h timestamptz, v text)
       order by m, c, h, g, v
       on conflict do nothing`,
      [JSON.stringify(distinct)],
    );
  }
}

// The aggregates of rollup rows merged together: values by the aggregation, counts added, the latest event kept
// (ordered aggregates only for latest meters: they sort every group).
const LATEST_FIRST = `filter (where aggregation = 'latest')`;
const MERGED_AGGREGATES = `case aggregation
           when 'max' then max(value)
           when 'latest' then (array_agg(value order by latest_time desc, latest_event_id collate "C" desc) ${LATEST_FIRST})[1]
           else sum(value) end as value,
         sum(event_count) as event_count,
         (array_agg(latest_time order by latest_time desc, latest_event_id collate "C" desc) ${LATEST_FIRST})[1] as latest_time,
         (array_agg(latest_event_id order by latest_time desc, latest_event_id collate "C" desc) ${LATEST_FIRST})[1] as latest_event_id`;

/** The rows of `source` merged per (meter, customer, group, `bucket`). */
function mergedBuckets(source: string, bucket: string): string {
  return `select meter_key, customer_external_id, group_key, ${bucket} as bucket, aggregation, ${MERGED_AGGREGATES}
       from ${source} group by meter_key, customer_external_id, group_key, ${bucket}, aggregation`;
}

/** Upserts merged buckets into a rollup table keyed by `column`. */
function foldInto(table: string, column: string, source: string): string {
  return `insert into ${table} as r
         (meter_key, customer_external_id, group_key, ${column}, aggregation, value, event_count, latest_time,
          latest_event_id)
       select meter_key, customer_external_id, group_key, bucket, aggregation, value, event_count, latest_time,
              latest_event_id
         from ${source} order by meter_key, customer_external_id, bucket, group_key
       on conflict (meter_key, customer_external_id, ${column}, group_key) do update set ${ROLLUP_MERGE}`;
}

/** What folding the rollup log returned: how many log rows it took, and what they add per billing period. */
export interface FoldedLog {
  /** Log rows folded. */
  logRows: number;
  /** The id of the last of them (where the next statement starts). */
  lastId: string | undefined;
  /** What they add to each (customer, meter, billing period), one row per period and aggregation. */
  increments: PendingRow[];
}

/** Which log rows a fold takes: ids after `after` (where the previous statement of the transaction ended: the rows it
 * deleted are still in the index until it commits), and up to `upTo` when given. */
export interface LogRange {
  after: string;
  upTo?: string;
}

/**
 * Folds up to `limit` rows of the rollup log into the minute and hour rollups, merged per bucket first, and
 * returns what they add to each (customer, meter, billing period). Rows another compactor holds are skipped,
 * and the log rows and their fold commit together, so a value never counts twice or goes missing; the caller
 * publishes the increments in the same transaction, or keeps them (compactRollups).
 */
export async function foldRollupLog(em: Em, limit: number, range: LogRange): Promise<FoldedLog> {
  const rows = await em.execute<(Partial<PendingRow> & { log_rows: string; last_id: string | null })[]>(
    `with log as (
       delete from usage_rollup_log where id = any(array(
         select id from usage_rollup_log where id > ? ${range.upTo === undefined ? '' : 'and id <= ?'}
          order by id limit ? for update skip locked))
       returning id, body, ingested_at
     ),
     -- Entries as they are written (typed conversions wait until they are merged: they cost more than merging;
     -- the period stays JSON, an array or null).
     taken as (
       select e->>0 as meter_key, c.key as customer_external_id, e->>1 as group_key, (e->>2)::bigint as minute,
              e->>3 as aggregation, (e->>4)::numeric as value, (e->>5)::bigint as event_count,
              (e->>6)::bigint as latest_ms, e->>7 as latest_event_id, coalesce(e->8, 'null') as period,
              e->9 as late_event_ids, l.ingested_at
         from log l cross join lateral jsonb_each(l.body) c cross join lateral jsonb_array_elements(c.value) e
     ),
     -- Merged once per minute and period; the minute, hour and period merges then read far fewer rows. Sums and
     -- maxima are hashed; the latest event of latest meters is found apart, by sorting their entries only.
     summed as (
       select meter_key, customer_external_id, group_key, minute, aggregation, period,
              case aggregation when 'max' then max(value) else sum(value) end as value,
              sum(event_count) as event_count, max(ingested_at) as ingested_at
         from taken
        group by meter_key, customer_external_id, group_key, minute, aggregation, period
     ),
     latest as (
       select distinct on (meter_key, customer_external_id, group_key, minute, period)
              meter_key, customer_external_id, group_key, minute, period, value, latest_ms,
              latest_event_id
         from taken where aggregation = 'latest'
        order by meter_key, customer_external_id, group_key, minute, period, latest_ms desc,
                 latest_event_id collate "C" desc
     ),
     merged as (
       select s.meter_key, s.customer_external_id, s.group_key, s.minute, s.aggregation, s.period,
              coalesce(l.value, s.value) as value, s.event_count, l.latest_ms, l.latest_event_id, s.ingested_at
         from summed s left join latest l
           on s.aggregation = 'latest' and l.meter_key = s.meter_key and l.customer_external_id = s.customer_external_id
          and l.group_key = s.group_key and l.minute = s.minute and l.period = s.period
     ),
     by_bucket as (
       select meter_key, customer_external_id, group_key, to_timestamp(minute * 60) as minute, aggregation, value,
              event_count, ${fromMilliseconds('latest_ms')} as latest_time, latest_event_id,
              ${fromMilliseconds('(period->>0)')} as period_start, ${fromMilliseconds('(period->>1)')} as period_end,
              period->>2 as subscription_id, coalesce((period->>3)::boolean, false) as period_closed,
              ingested_at
         from merged
     ),
     by_minute as (${mergedBuckets('by_bucket', 'minute')}),
     by_hour as (${mergedBuckets('by_bucket', "date_trunc('hour', minute, 'UTC')")}),
     minutes as (${foldInto('usage_rollup_minute', 'minute', 'by_minute')}),
     hours as (${foldInto('usage_rollup', 'hour', 'by_hour')}),
     late as (
       select customer_external_id, meter_key, ${fromMilliseconds('(period->>0)')} as period_start,
              ${fromMilliseconds('(period->>1)')} as period_end, period->>2 as subscription_id,
              coalesce((period->>3)::boolean, false) as period_closed,
              to_jsonb((array_agg(id))[1:${MAX_LATE_IDS}]) as late_event_ids
         from taken, jsonb_array_elements_text(taken.late_event_ids) as id
        where jsonb_typeof(taken.period) = 'array' and taken.late_event_ids is not null
        group by customer_external_id, meter_key, 3, 4, 5, 6
     ),
     -- What was added while the period was open and what came after it closed (late) stay apart: the first is
     -- published as meter.delta, the second as late usage.
     by_period as (
       select customer_external_id, meter_key, period_start, period_end, subscription_id, period_closed, aggregation,
         ${MERGED_AGGREGATES},
         max(ingested_at) as ingested_at
       from by_bucket where period_start is not null
       group by customer_external_id, meter_key, period_start, period_end, subscription_id, period_closed, aggregation
     ),
     increments as (
       select customer_external_id, meter_key, period_start, period_end, event_count, ingested_at as last_ingest_at,
              aggregation, value::text as value, latest_time, latest_event_id, aggregation = 'unique_count' as recompute,
              subscription_id, period_closed, coalesce(late.late_event_ids, '[]') as late_event_ids, false as correction
         from by_period left join late
           using (customer_external_id, meter_key, period_start, period_end, subscription_id, period_closed)
     )
     -- One row at least, carrying the count of log rows even when they add to no period.
     select increments.*, (select count(*) from log) as log_rows, (select max(id) from log) as last_id
       from (select) one left join increments on true`,
    range.upTo === undefined ? [range.after, limit] : [range.after, range.upTo, limit],
  );
  return {
    logRows: Number(rows[0]?.log_rows ?? 0),
    lastId: rows[0]?.last_id ?? undefined,
    increments: rows.filter(
      (r): r is PendingRow & { log_rows: string; last_id: string | null } => r.customer_external_id != null,
    ),
  };
}

/**
 * Folds every rollup log row committed before it starts (up to the newest id then: it never chases batches
 * committed meanwhile), `batch` rows per statement, and keeps what they add per billing period as pending rows
 * for the delta publisher's next pass; returns how many log rows it folded.
 */
export async function compactRollups(em: Em, batch = 32): Promise<number> {
  const [newest] = await em.execute<{ id: string | null }[]>('select max(id) as id from usage_rollup_log');
  if (!newest?.id) return 0;
  let total = 0;
  const range: LogRange = { after: '0', upTo: newest.id };
  for (;;) {
    const { logRows, lastId, increments } = await foldRollupLog(em, batch, range);
    total += logRows;
    if (increments.length > 0) {
      await queryBound(
        em,
        `insert into usage_pending_delta (customer_external_id, meter_key, period_start, period_end, event_count,
           last_ingest_at, aggregation, value, latest_time, latest_event_id, recompute, subscription_id, period_closed,
           late_event_ids)
         select c, m, s, e, n, li, a, v, lt, lid, r, sub, pc, ids
           from jsonb_to_recordset($1::jsonb) as x(c text, m text, s timestamptz, e timestamptz, n bigint,
             li timestamptz, a text, v numeric, lt timestamptz, lid text, r boolean, sub text, pc boolean, ids jsonb)`,
        [
          JSON.stringify(
            increments.map((i) => ({
              c: i.customer_external_id,
              m: i.meter_key,
              s: i.period_start,
              e: i.period_end,
              n: i.event_count,
              li: i.last_ingest_at,
              a: i.aggregation,
              v: i.value,
              lt: i.latest_time,
              lid: i.latest_event_id,
              r: i.recompute,
              sub: i.subscription_id,
              pc: i.period_closed,
              ids: i.late_event_ids,
            })),
          ),
        ],
      );
    }
    if (logRows < batch || lastId === undefined) return total;
    range.after = lastId;
  }
}

/** The time from which minute rollups exist (earlier edges are read from raw events). */
export async function minuteRollupsSince(em: Em): Promise<Date> {
  const rows = await em.execute<{ since: Date | string }[]>(
    "select case when since = '-infinity' then null else since end as since from usage_minute_rollups",
  );
  const since = rows[0]?.since;
  return since ? new Date(since) : new Date(-8.64e15);
}

/** A meter's minute rollup rows of one customer for the minutes within any of `ranges`. */
export async function minuteRows(em: Em, meterKey: string, customer: string, ranges: readonly [Date, Date][]) {
  if (ranges.length === 0) return [];
  const json = JSON.stringify(ranges.map(([f, t]) => ({ f: f.toISOString(), t: t.toISOString() })));
  const rows = await em.execute<
    {
      minute: Date;
      group_key: string;
      value: string;
      event_count: string;
      latest_time: Date | null;
      latest_event_id: string | null;
    }[]
  >(
    `select m.minute, m.group_key, m.value::text as value, m.event_count, m.latest_time, m.latest_event_id
       from usage_rollup_minute m join jsonb_to_recordset(?::jsonb) as r(f timestamptz, t timestamptz)
         on m.minute >= r.f and m.minute < r.t
      where m.meter_key = ? and m.customer_external_id = ?
     union all
     select d.minute, d.group_key, d.value::text as value, d.event_count, d.latest_time, d.latest_event_id
       from (${rollupLogEntries('usage_rollup_log', true)}) d
       join jsonb_to_recordset(?::jsonb) as r(f timestamptz, t timestamptz) on d.minute >= r.f and d.minute < r.t
      where d.meter_key = ?`,
    [json, meterKey, customer, customer, customer, json, meterKey],
  );
  return rows.map((r) => ({
    minute: new Date(r.minute),
    group: r.group_key,
    value: new Decimal(r.value),
    eventCount: Number(r.event_count),
    latest: r.latest_time ? { time: new Date(r.latest_time), id: r.latest_event_id ?? '' } : undefined,
  }));
}

/** A meter's rollup rows of one customer for the hours in [from, to). */
export async function rollupRows(em: Em, meterKey: string, customer: string, from: Date, to: Date) {
  const rows = await em.execute<
    {
      hour: Date;
      group_key: string;
      value: string;
      event_count: string;
      latest_time: Date | null;
      latest_event_id: string | null;
    }[]
  >(
    `select hour, group_key, value::text as value, event_count, latest_time, latest_event_id from usage_rollup
      where meter_key = ? and customer_external_id = ? and hour >= ? and hour < ?
     union all
     select date_trunc('hour', minute, 'UTC') as hour, group_key, value::text as value, event_count, latest_time,
            latest_event_id from (${rollupLogEntries('usage_rollup_log', true)}) d
      where meter_key = ? and minute >= ? and minute < ?`,
    [meterKey, customer, from, to, customer, customer, meterKey, from, to],
  );
  return rows.map((r) => ({
    hour: new Date(r.hour),
    group: r.group_key,
    value: new Decimal(r.value),
    eventCount: Number(r.event_count),
    latest: r.latest_time ? { time: new Date(r.latest_time), id: r.latest_event_id ?? '' } : undefined,
  }));
}

/** Distinct values of a unique-count meter for the hours in [from, to), with their hour and group. */
export async function distinctValues(em: Em, meterKey: string, customer: string, from: Date, to: Date) {
  const rows = await em.execute<{ hour: Date; group_key: string; value: string }[]>(
    `select hour, group_key, value from usage_distinct
      where meter_key = ? and customer_external_id = ? and hour >= ? and hour < ?`,
    [meterKey, customer, from, to],
  );
  return rows.map((r) => ({ hour: new Date(r.hour), group: r.group_key, value: r.value }));
}

/** Raw events of a customer and type in [from, to), not voided (for the partial hours at a period's edges). */
export async function rawEvents(em: Em, customer: string, type: string, from: Date, to: Date) {
  if (from.getTime() >= to.getTime()) return [];
  const rows = await em.execute<{ event_id: string; event_time: Date; properties: JsonValue }[]>(
    `select event_id, event_time, properties from usage_event
      where customer_external_id = ? and event_type = ? and event_time >= ? and event_time < ? and not voided`,
    [customer, type, from, to],
  );
  return rows.map((r) => ({ id: r.event_id, time: new Date(r.event_time), properties: r.properties }));
}

/** Creates the monthly partitions of usage_event covering [from, to) (idempotently). */
export async function ensureMonthlyPartitions(em: Em, from: Date, to: Date): Promise<void> {
  let month = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), 1));
  while (month.getTime() < to.getTime()) {
    const next = new Date(Date.UTC(month.getUTCFullYear(), month.getUTCMonth() + 1, 1));
    const name = `usage_event_${month.getUTCFullYear()}_${String(month.getUTCMonth() + 1).padStart(2, '0')}`;
    await em.execute(
      `create table if not exists ${name} partition of usage_event for values from ('${month.toISOString()}') to ('${next.toISOString()}')`,
    );
    month = next;
  }
}

/** The SQL conditions (on usage_event) of the events a meter selects: its type and property filters. */
function meterSelection(meter: Meter): { where: string[]; params: unknown[] } {
  const where = ['event_type = ?'];
  const params: unknown[] = [meter.eventType];
  for (const filter of meter.filters) {
    const values = JSON.stringify(filter.values);
    if (filter.operator === FilterOperator.IN) {
      where.push('properties->>? in (select jsonb_array_elements_text(?::jsonb))');
      params.push(filter.property, values);
    } else if (filter.operator === FilterOperator.NOT_IN) {
      where.push('(properties->>? is null or properties->>? not in (select jsonb_array_elements_text(?::jsonb)))');
      params.push(filter.property, filter.property, values);
    } else {
      // A property set to null does not exist, as for meterSelects.
      where.push('properties->>? is not null');
      params.push(filter.property);
    }
  }
  return { where, params };
}

/** A meter's aggregate of one group of raw events, computed in SQL. */
export interface EdgeAggregate {
  /** The group-by values, in the meter's group_by order. */
  dimensions: (string | null)[];
  /** Sum (count, sum), maximum (max) or last value (latest). */
  value: Decimal;
  /** Events counted. */
  eventCount: number;
  /** For latest: the event whose value it is. */
  latest?: { time: Date; id: string };
  /** For unique count: the distinct values. */
  distinct: string[];
}

// The numeric value of an event's property exactly as ingestion reads it (readEvent): a JSON number, or a string
// holding one between spaces (at most 100 characters), to 20 decimals, below 1e30 in magnitude; else null.
// (No question marks in the pattern: the driver would read them as parameters.)
export const NUMERIC_READING = `(select n from (select round(case jsonb_typeof(properties->?) when 'number' then (properties->>?)::numeric
  when 'string' then case when length(btrim(properties->>?)) <= ${MAX_NUMBER_LENGTH} and btrim(properties->>?) ~ '^-{0,1}(0|[1-9][0-9]*)([.][0-9]+){0,1}([eE][-+]{0,1}[0-9]{1,4}){0,1}$'
                          then btrim(properties->>?)::numeric end end, ${VALUE_DECIMALS}) as n) as reading
  where abs(n) < ${MAX_VALUE_MAGNITUDE.toFixed()})`;

/**
 * A meter's aggregate per group of a customer's raw events in [from, to), in SQL (the partial hours at a
 * window's edges), without moving the events to the service.
 */
export async function edgeAggregates(
  em: Em,
  meter: Meter,
  customer: string,
  from: Date,
  to: Date,
): Promise<EdgeAggregate[]> {
  if (from.getTime() >= to.getTime()) return [];
  const selection = meterSelection(meter);
  const dims = meter.groupBy.map(() => 'properties->>?');
  const unique = meter.aggregation === MeterAggregation.UNIQUE_COUNT;
  const count = meter.aggregation === MeterAggregation.COUNT;
  const latest = meter.aggregation === MeterAggregation.LATEST;
  // The value of each event: 1 for counts, the property's text for unique counts, its number otherwise.
  const valueSql = count ? '1::numeric' : unique ? 'properties->>?' : NUMERIC_READING;
  const valueParams = count ? [] : unique ? [meter.valueProperty] : Array(5).fill(meter.valueProperty);
  const rows = await em.execute<
    {
      dims: (string | null)[];
      total: string | null;
      maximum: string | null;
      last_value: string | null;
      last_time: Date | null;
      last_id: string | null;
      n: string;
      distinct_values: string[] | null;
    }[]
  >(
    // Only what the meter's aggregation needs: ordering the events (for latest) is the expensive part.
    `with selected as (
       select event_id, event_time, array[${dims.join(', ') || "''"}]::text[] as dims, ${valueSql} as v
         from usage_event
        where customer_external_id = ? and event_time >= ? and event_time < ? and not voided and ${selection.where.join(' and ')}
     )
     select dims,
            ${unique || latest ? 'null::text' : 'sum(v::numeric)::text'} as total,
            ${meter.aggregation === MeterAggregation.MAX ? 'max(v::numeric)::text' : 'null::text'} as maximum,
            ${latest ? '((array_agg(v::text order by event_time desc, event_id collate "C" desc))[1])' : 'null::text'} as last_value,
            ${latest ? 'max(event_time)' : 'null::timestamptz'} as last_time,
            ${latest ? '((array_agg(event_id order by event_time desc, event_id collate "C" desc))[1])' : 'null::text'} as last_id,
            count(*) as n,
            ${unique ? 'array_agg(distinct v::text)' : 'null::text[]'} as distinct_values
       from selected where v is not null group by dims`,
    [...meter.groupBy, ...valueParams, customer, from, to, ...selection.params],
  );
  return rows.map((r) => {
    const value =
      meter.aggregation === MeterAggregation.MAX
        ? r.maximum
        : meter.aggregation === MeterAggregation.LATEST
          ? r.last_value
          : unique
            ? '0'
            : r.total;
    return {
      dimensions: meter.groupBy.length === 0 ? [] : r.dims,
      value: new Decimal(value ?? '0'),
      eventCount: Number(r.n),
      latest: r.last_time ? { time: new Date(r.last_time), id: r.last_id ?? '' } : undefined,
      distinct: r.distinct_values ?? [],
    };
  });
}

/** A stored raw event, as listed. */
export interface StoredEventRow {
  /** The producer's id. */
  id: string;
  /** The event type. */
  type: string;
  /** When it happened. */
  time: Date;
  /** Its properties. */
  properties: JsonValue;
  /** When it was ingested. */
  ingestedAt: Date;
  /** Whether it was voided. */
  voided: boolean;
  /** Whether it arrived after its billing period closed. */
  late: boolean;
}

// A usage_event row as the listing and the corrections read it.
interface EventRow {
  event_id: string;
  event_type: string;
  event_time: Date;
  properties: JsonValue;
  ingested_at: Date;
  voided: boolean;
  late: boolean;
}

function storedEvent(r: EventRow): StoredEventRow {
  return {
    id: r.event_id,
    type: r.event_type,
    time: new Date(r.event_time),
    properties: r.properties,
    ingestedAt: new Date(r.ingested_at),
    voided: r.voided,
    late: r.late,
  };
}

/**
 * A page of a customer's raw events, newest event time first, after the cursor `after` ([time, id] of the
 * last row of the previous page), optionally only those `meter` selects (its type and filters, in SQL).
 */
export async function listEvents(
  em: Em,
  query: {
    customer: string;
    type?: string;
    meter?: Meter;
    from?: Date;
    to?: Date;
    includeVoided: boolean;
    after?: [string, string];
    limit: number;
  },
): Promise<StoredEventRow[]> {
  const where = ['customer_external_id = ?'];
  const params: unknown[] = [query.customer];
  const add = (sql: string, ...values: unknown[]) => {
    where.push(sql);
    params.push(...values);
  };
  if (query.type) add('event_type = ?', query.type);
  if (query.meter) {
    const selection = meterSelection(query.meter);
    where.push(...selection.where);
    params.push(...selection.params);
  }
  if (query.from) add('event_time >= ?', query.from);
  if (query.to) add('event_time < ?', query.to);
  if (!query.includeVoided) where.push('not voided');
  if (query.after) add('(event_time, event_id) < (?::timestamptz, ?)', query.after[0], query.after[1]);
  const rows = await em.execute<EventRow[]>(
    `select event_id, event_type, event_time, properties, ingested_at, voided, late from usage_event
      where ${where.join(' and ')} order by event_time desc, event_id desc limit ?`,
    [...params, query.limit],
  );
  return rows.map(storedEvent);
}

/** A stored event found by its key, with what corrections need. */
export interface FoundEvent extends StoredEventRow {
  /** Times it was amended. */
  amendmentCount: number;
  /** When it last changed. */
  updatedAt: Date | undefined;
}

/** The stored event of a customer with this id, locked for the correction, if any. */
export async function findEventForUpdate(em: Em, customer: string, id: string): Promise<FoundEvent | undefined> {
  const rows = await em.execute<(EventRow & { amendment_count: number; updated_at: Date | null })[]>(
    `select e.event_id, e.event_type, e.event_time, e.properties, e.ingested_at, e.voided, e.late, e.amendment_count, e.updated_at
       from usage_event_key k
       join usage_event e on e.customer_external_id = k.customer_external_id and e.event_id = k.event_id
                         and e.event_time = k.event_time
      where k.customer_external_id = ? and k.event_id = ?
      for update of k`,
    [customer, id],
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    ...storedEvent(r),
    amendmentCount: r.amendment_count,
    updatedAt: r.updated_at ? new Date(r.updated_at) : undefined,
  };
}

/** Marks an event voided. */
export async function voidEvent(em: Em, customer: string, event: FoundEvent, now: Date): Promise<void> {
  await em.execute(
    `update usage_event set voided = true, updated_at = ?
      where customer_external_id = ? and event_id = ? and event_time = ?`,
    [now, customer, event.id, event.time],
  );
}

/** Replaces an event's time and properties (moving it to another partition if its month changes). */
export async function amendEvent(
  em: Em,
  customer: string,
  event: FoundEvent,
  change: { time: Date; properties: JsonValue; late: boolean },
  now: Date,
): Promise<void> {
  await em.execute(
    `update usage_event set event_time = ?, properties = ?::jsonb, late = ?, amendment_count = amendment_count + 1,
       updated_at = ?
      where customer_external_id = ? and event_id = ? and event_time = ?`,
    [change.time, JSON.stringify(change.properties), change.late, now, customer, event.id, event.time],
  );
  await em.execute('update usage_event_key set event_time = ? where customer_external_id = ? and event_id = ?', [
    change.time,
    customer,
    event.id,
  ]);
}

/**
 * Deletes a meter's rollups (hour and minutes) and distinct values of one customer and hour, before rebuilding
 * them. The rollup log must be folded first (its entries for the hour would count again).
 */
export async function clearRollupHour(em: Em, meterKey: string, customer: string, hour: Date): Promise<void> {
  const end = new Date(hour.getTime() + 3_600_000);
  for (const sql of [
    'delete from usage_rollup_minute where meter_key = ? and customer_external_id = ? and minute >= ? and minute < ?',
    'delete from usage_rollup where meter_key = ? and customer_external_id = ? and hour >= ? and hour < ?',
    'delete from usage_distinct where meter_key = ? and customer_external_id = ? and hour >= ? and hour < ?',
  ]) {
    await em.execute(sql, [meterKey, customer, hour, end]);
  }
}

const AGGREGATION_OF_NAME = Object.fromEntries(Object.entries(AGGREGATION_NAME).map(([k, v]) => [v, Number(k)]));

/**
 * Asks the delta publisher to recompute a customer's meters over periods. A closed period's change is not
 * announced, unless `announce` (its published value already holds what was announced of it).
 */
export async function requestRecompute(
  em: Em,
  customer: string,
  changes: readonly { meterKey: string; aggregation: MeterAggregation; period: BillingPeriod; announce?: boolean }[],
  now: Date,
): Promise<void> {
  if (changes.length === 0) return;
  await queryBound(
    em,
    `insert into usage_pending_delta (customer_external_id, meter_key, period_start, period_end, event_count,
       last_ingest_at, aggregation, value, recompute, subscription_id, period_closed, correction)
     select $1, m, s, e, 0, $2, a, 0, true, sub, pc, not an
       from jsonb_to_recordset($3::jsonb) as x(m text, s timestamptz, e timestamptz, a text, sub text, pc boolean,
         an boolean)`,
    [
      customer,
      now,
      JSON.stringify(
        changes.map((c) => ({
          m: c.meterKey,
          s: c.period.start.toISOString(),
          e: c.period.end.toISOString(),
          a: AGGREGATION_NAME[c.aggregation] ?? 'sum',
          sub: c.period.subscriptionId,
          pc: c.period.closed,
          an: c.announce === true,
        })),
      ),
    ],
  );
}

/** The lock class of customers' buckets: ingestion holds them shared, a correction exclusively. */
const CUSTOMER_LOCKS = 'usage-customer';
/** Customers are locked in this many buckets, so a batch takes few locks however many customers it has. */
const CUSTOMER_BUCKETS = 64;

/**
 * Takes the shared locks of a batch's customers: a correction of one of them (which rebuilds hours from raw
 * events) then never runs at the same time as the batch, so an event is never counted both by its appended
 * delta and by a rebuild.
 */
export async function lockCustomersShared(em: Em, customers: readonly string[]): Promise<void> {
  if (customers.length === 0) return;
  await em.execute(
    `select pg_advisory_xact_lock_shared(hashtext(?), b)
       from (select distinct hashtext(c) & ? as b from jsonb_array_elements_text(?::jsonb) as c order by b) as buckets`,
    [CUSTOMER_LOCKS, CUSTOMER_BUCKETS - 1, JSON.stringify([...new Set(customers)])],
  );
}

/**
 * Prepares a correction of a customer's events: waits for the delta publisher's pass in progress (and keeps
 * the next one out until the correction commits) and for the batches of the customer in progress (keeping new
 * ones out), so the correction's rebuild cannot conflict or double-count with either.
 */
export async function lockForCorrection(em: Em, customer: string): Promise<void> {
  await em.execute(`select pg_advisory_xact_lock(hashtext('${PUBLISHER_LOCK}'))`);
  await lockCustomerExclusive(em, customer);
}

/**
 * Waits for the batches of `customer` in progress and keeps new ones out until the transaction ends (so what
 * it changes about the customer, a correction or a billing period, comes wholly before or after each batch).
 */
export async function lockCustomerExclusive(em: Em, customer: string): Promise<void> {
  await em.execute('select pg_advisory_xact_lock(hashtext(?), hashtext(?) & ?)', [
    CUSTOMER_LOCKS,
    customer,
    CUSTOMER_BUCKETS - 1,
  ]);
}

/** The advisory lock that keeps one delta publisher pass (or one correction) at a time. */
export const PUBLISHER_LOCK = 'usage-delta-publisher';

/** A (customer, meter, period) with everything pending for it, merged. */
export interface PendingPeriod {
  /** The customer's external id. */
  customer: string;
  /** The meter. */
  meterKey: string;
  /** The billing period. */
  period: BillingPeriod;
  /** Ingestion time of the last batch. */
  lastIngest: Date;
  /** Everything added since the last publication. */
  increment: PeriodIncrement;
  /** The late events among them (at most MAX_LATE_IDS are kept). */
  lateEventIds: string[];
  /** True for a recompute a correction asked for (the correction announced its change itself). */
  correction: boolean;
}

/** A row of usage_pending_delta: what was added to a (customer, meter, billing period), or a recompute. */
export interface PendingRow {
  customer_external_id: string;
  meter_key: string;
  period_start: Date;
  period_end: Date;
  last_ingest_at: Date;
  event_count: string;
  aggregation: string;
  value: string;
  latest_time: Date | null;
  latest_event_id: string | null;
  recompute: boolean;
  subscription_id: string;
  period_closed: boolean;
  late_event_ids: string[];
  correction: boolean;
}

/** Whether pending rows (corrections' rows and recomputes) wait for a pass. */
export async function pendingRowsWaiting(em: Em): Promise<boolean> {
  const rows = await em.execute<{ waiting: boolean }[]>('select exists (select from usage_pending_delta) as waiting');
  return rows[0]?.waiting === true;
}

/** Takes (deletes and returns) the pending rows of the periods of the first `limit` rows. */
export async function takePendingRows(em: Em, limit: number): Promise<PendingRow[]> {
  return em.execute<PendingRow[]>(
    // Whole periods at a time: a recompute taken with only some of its period's rows would count the rest again.
    `with taken as (
       select distinct customer_external_id, meter_key, period_start
         from (select customer_external_id, meter_key, period_start from usage_pending_delta order by id limit ?) first
     )
     delete from usage_pending_delta p using taken t
      where p.customer_external_id = t.customer_external_id and p.meter_key = t.meter_key
        and p.period_start = t.period_start
     returning p.customer_external_id, p.meter_key, p.period_start, p.period_end, p.last_ingest_at, p.event_count,
               p.aggregation, p.value::text as value, p.latest_time, p.latest_event_id, p.recompute, p.subscription_id,
               p.period_closed, p.late_event_ids, p.correction`,
    [limit],
  );
}

/** Pending rows merged per (customer, meter, period) as they come, so a pass holds one entry per period. */
export class PendingPeriods {
  private readonly merged = new Map<string, PendingPeriod>();

  /** The periods merged so far. */
  get size(): number {
    return this.merged.size;
  }

  /** Merges `rows` in. */
  add(rows: readonly PendingRow[]): void {
    const merged = this.merged;
    for (const r of rows) {
      // What a period got while open and what came late stay apart, except for recomputes (unique counts): a
      // recompute reads the whole period, late events included, so its change is one, late once the period closed.
      const whole = r.recompute && !r.correction;
      const key = JSON.stringify([
        r.customer_external_id,
        r.meter_key,
        new Date(r.period_start).toISOString(),
        r.subscription_id,
        whole || r.period_closed,
        r.correction,
      ]);
      const increment: PeriodIncrement = {
        aggregation: AGGREGATION_OF_NAME[r.aggregation] ?? MeterAggregation.SUM,
        value: new Decimal(r.value),
        eventCount: Number(r.event_count),
        latest: r.latest_time ? { time: new Date(r.latest_time), id: r.latest_event_id ?? '' } : undefined,
        recompute: r.recompute,
      };
      const last = new Date(r.last_ingest_at);
      const seen = merged.get(key);
      if (seen) {
        seen.increment = mergeIncrements(seen.increment, increment);
        if (last > seen.lastIngest) seen.lastIngest = last;
        seen.period.closed ||= r.period_closed;
        seen.lateEventIds.push(...r.late_event_ids.slice(0, MAX_LATE_IDS - seen.lateEventIds.length));
      } else {
        merged.set(key, {
          customer: r.customer_external_id,
          meterKey: r.meter_key,
          period: {
            start: new Date(r.period_start),
            end: new Date(r.period_end),
            subscriptionId: r.subscription_id,
            closed: r.period_closed,
          },
          lastIngest: last,
          increment,
          lateEventIds: r.late_event_ids.slice(0, MAX_LATE_IDS),
          correction: r.correction,
        });
      }
    }
  }

  /**
   * The merged periods: per period, what ingestion added while it was open, then what came late, then what a
   * correction recomputes.
   */
  list(): PendingPeriod[] {
    const rank = (p: PendingPeriod) => (p.correction ? 2 : p.period.closed ? 1 : 0);
    return [...this.merged.values()].sort((a, b) => rank(a) - rank(b));
  }
}

/** A (customer, meter, period) whose value is published. */
export interface PublishedKey {
  /** The customer's external id. */
  customer: string;
  /** The meter. */
  meterKey: string;
  /** The period's start. */
  periodStart: Date;
  /** The period's subscription ('' for a calendar month): periods of several may start together. */
  subscriptionId: string;
}

/** A published key as a map key. */
export const publishedKeyOf = (key: PublishedKey) =>
  JSON.stringify([key.customer, key.meterKey, key.periodStart.getTime(), key.subscriptionId]);

/**
 * The last published states of `keys`, by publishedKeyOf. Only a publisher pass writes them, one pass at a time
 * (PUBLISHER_LOCK), so they need no row locks.
 */
export async function publishedValues(em: Em, keys: readonly PublishedKey[]): Promise<Map<string, PeriodState>> {
  const out = new Map<string, PeriodState>();
  if (keys.length === 0) return out;
  const rows = await queryBound<{
    customer_external_id: string;
    meter_key: string;
    period_start: Date;
    value: string;
    event_count: string;
    latest_time: Date | null;
    latest_event_id: string | null;
    subscription_id: string;
  }>(
    em,
    `select p.customer_external_id, p.meter_key, p.period_start, p.subscription_id, p.value::text as value,
            p.event_count, p.latest_time, p.latest_event_id
       from usage_published_value p
       join jsonb_array_elements($1::jsonb) k
         on p.customer_external_id = k->>0 and p.meter_key = k->>1 and p.period_start = (k->>2)::timestamptz
        and p.subscription_id = k->>3`,
    [JSON.stringify(keys.map((k) => [k.customer, k.meterKey, k.periodStart.toISOString(), k.subscriptionId]))],
  );
  for (const r of rows) {
    const key = {
      customer: r.customer_external_id,
      meterKey: r.meter_key,
      periodStart: new Date(r.period_start),
      subscriptionId: r.subscription_id,
    };
    out.set(publishedKeyOf(key), {
      value: new Decimal(r.value),
      eventCount: Number(r.event_count),
      latest: r.latest_time ? { time: new Date(r.latest_time), id: r.latest_event_id ?? '' } : undefined,
    });
  }
  return out;
}

/** The published state of `key` among `states`, or the state of a period never published. */
export function publishedState(states: ReadonlyMap<string, PeriodState>, key: PublishedKey): PeriodState {
  return states.get(publishedKeyOf(key)) ?? { value: undefined, eventCount: 0 };
}

/** A change of a published value (a correction's). */
export interface PublishedMove {
  /** The (customer, meter, period). */
  key: PublishedKey;
  /** The change of its value. */
  delta: Decimal;
  /** The change of its event count. */
  eventCountDelta: number;
}

/**
 * Moves the published values of closed periods by what a correction announced itself, where one was published;
 * returns the keys (publishedKeyOf) moved. Their recomputes then announce, as late usage, only what the
 * correction did not: late usage folded alongside it. The caller holds PUBLISHER_LOCK.
 */
export async function movePublishedValues(em: Em, moves: readonly PublishedMove[]): Promise<Set<string>> {
  if (moves.length === 0) return new Set();
  const moved = await queryBound<{
    customer_external_id: string;
    meter_key: string;
    period_start: Date;
    subscription_id: string;
  }>(
    em,
    `update usage_published_value p
        set value = p.value + (x->>4)::numeric, event_count = p.event_count + (x->>5)::bigint
       from jsonb_array_elements($1::jsonb) x
      where p.customer_external_id = x->>0 and p.meter_key = x->>1 and p.period_start = (x->>2)::timestamptz
        and p.subscription_id = x->>3
     returning p.customer_external_id, p.meter_key, p.period_start, p.subscription_id`,
    [
      JSON.stringify(
        moves.map(({ key, delta, eventCountDelta }) => [
          key.customer,
          key.meterKey,
          key.periodStart.toISOString(),
          key.subscriptionId,
          delta.toFixed(),
          eventCountDelta,
        ]),
      ),
    ],
  );
  return new Set(
    moved.map((r) =>
      publishedKeyOf({
        customer: r.customer_external_id,
        meterKey: r.meter_key,
        periodStart: new Date(r.period_start),
        subscriptionId: r.subscription_id,
      }),
    ),
  );
}

/** Stores the published states of (customer, meter, period)s, in one statement. */
export async function savePublishedValues(
  em: Em,
  entries: readonly { key: PublishedKey; state: PeriodState }[],
): Promise<void> {
  if (entries.length === 0) return;
  await queryBound(
    em,
    `insert into usage_published_value (customer_external_id, meter_key, period_start, value, event_count,
       latest_time, latest_event_id, subscription_id)
     select x->>0, x->>1, (x->>2)::timestamptz, (x->>3)::numeric, (x->>4)::bigint, (x->>5)::timestamptz, x->>6,
            x->>7
       from jsonb_array_elements($1::jsonb) x
     on conflict (customer_external_id, meter_key, period_start, subscription_id) do update set value = excluded.value,
       event_count = excluded.event_count, latest_time = excluded.latest_time,
       latest_event_id = excluded.latest_event_id`,
    [
      JSON.stringify(
        entries.map(({ key, state }) => [
          key.customer,
          key.meterKey,
          key.periodStart.toISOString(),
          (state.value ?? new Decimal(0)).toFixed(),
          state.eventCount,
          state.latest?.time.toISOString() ?? null,
          state.latest?.id ?? null,
          key.subscriptionId,
        ]),
      ),
    ],
  );
}
