// The rollup log (`usage_rollup_log`) and its fold into the minute and hour rollups, in set-wise SQL: a batch
// appends one log row for all its minute deltas (no rollup row is locked, so concurrent batches never wait for
// each other), and a publisher pass folds up to 32 log rows per statement into the rollups, returning what they
// add per billing period in the same statement. Both are the ingestion and publishing hot paths; an ORM would
// write and merge row by row. Corrections clear the hours they rebuild here too.
import { type Em, queryBound } from '@billing/kit/db';
import { amountText } from '../domain/meter.ts';
import type { PendingChange } from '../domain/pending-periods.ts';
import { hourOf, MAX_LATE_IDS, type RollupDelta } from '../domain/rollup.ts';
import { fromDbPendingChange, type PendingRow, toDbAggregation } from './mapping.ts';
import { savePendingChanges } from './pending-delta-repository.ts';

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
 * customer or, given `customer` (an SQL text expression, such as a placeholder), of that one. An entry is an
 * array: [meter key, group, minute (minutes since the epoch), aggregation, value, event count, latest event time
 * (milliseconds) or null, latest event id or null, billing period ([start ms, end ms, subscription id, closed])
 * or null, late event ids (optional)].
 */
export function rollupLogEntries(source: string, customer?: string): string {
  const customers =
    customer === undefined
      ? 'lateral jsonb_each(l.body) c'
      : `lateral (select ${customer} as key, l.body -> ${customer} as value) c`;
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
const HOUR = 3_600_000;

/** A rollup delta as an entry of the rollup log (see rollupLogEntries), in JSON. */
function rollupLogEntry(d: RollupDelta): string {
  const latest = d.latest ? `${d.latest.time.getTime()},${JSON.stringify(d.latest.id)}` : 'null,null';
  const period = d.period
    ? `[${d.period.start.getTime()},${d.period.end.getTime()},${JSON.stringify(d.period.subscriptionId)},${d.period.closed}]`
    : 'null';
  const late = d.lateEventIds.length > 0 ? `,${JSON.stringify(d.lateEventIds)}` : '';
  return `[${JSON.stringify(d.meterKey)},${JSON.stringify(d.group)},${d.bucket.getTime() / MINUTE},"${toDbAggregation(
    d.aggregation,
  )}","${amountText(d.value)}",${d.eventCount},${latest},${period}${late}]`;
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
  /** What they add to each (customer, meter, billing period), one per period and aggregation. */
  increments: PendingChange[];
}

/**
 * Which log rows a fold takes: ids after `after` (where the previous statement of the transaction ended: the rows
 * it deleted are still in the index until it commits), and up to `upTo` when given.
 */
export interface LogRange {
  /** The id after which the fold starts. */
  after: string;
  /** The last id it may take. */
  upTo?: string;
}

/**
 * Folds up to `limit` rows of the rollup log into the minute and hour rollups, merged per bucket first, and
 * returns what they add to each (customer, meter, billing period). Rows another compactor holds are skipped,
 * and the log rows and their fold commit together, so a value never counts twice or goes missing; the caller
 * publishes the increments in the same transaction, or keeps them (compactRollups).
 */
export async function foldRollupLog(em: Em, limit: number, range: LogRange): Promise<FoldedLog> {
  const rows = await queryBound<Partial<PendingRow> & { log_rows: string; last_id: string | null }>(
    em,
    `with log as (
       delete from usage_rollup_log where id = any(array(
         select id from usage_rollup_log where id > $1 ${range.upTo === undefined ? '' : 'and id <= $3'}
          order by id limit $2 for update skip locked))
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
    range.upTo === undefined ? [range.after, limit] : [range.after, limit, range.upTo],
  );
  return {
    logRows: Number(rows[0]?.log_rows ?? 0),
    lastId: rows[0]?.last_id ?? undefined,
    increments: rows
      .filter((r): r is PendingRow & { log_rows: string; last_id: string | null } => r.customer_external_id != null)
      .map(fromDbPendingChange),
  };
}

/**
 * Folds every rollup log row committed before it starts (up to the newest id then: it never chases batches
 * committed meanwhile), `batch` rows per statement, and keeps what they add per billing period as pending changes
 * for the delta publisher's next pass; returns how many log rows it folded.
 */
export async function compactRollups(em: Em, batch = 32): Promise<number> {
  const [newest] = await queryBound<{ id: string | null }>(em, 'select max(id) as id from usage_rollup_log', []);
  if (!newest?.id) return 0;
  let total = 0;
  const range: LogRange = { after: '0', upTo: newest.id };
  for (;;) {
    const { logRows, lastId, increments } = await foldRollupLog(em, batch, range);
    total += logRows;
    await savePendingChanges(em, increments);
    if (logRows < batch || lastId === undefined) return total;
    range.after = lastId;
  }
}

/**
 * Deletes a meter's rollups (hour and minutes) and distinct values of one customer and hour, before rebuilding
 * them. The rollup log must be folded first (its entries for the hour would count again).
 */
export async function clearRollupHour(em: Em, meterKey: string, customer: string, hour: Date): Promise<void> {
  const end = new Date(hour.getTime() + HOUR);
  for (const sql of [
    'delete from usage_rollup_minute where meter_key = $1 and customer_external_id = $2 and minute >= $3 and minute < $4',
    'delete from usage_rollup where meter_key = $1 and customer_external_id = $2 and hour >= $3 and hour < $4',
    'delete from usage_distinct where meter_key = $1 and customer_external_id = $2 and hour >= $3 and hour < $4',
  ]) {
    await queryBound(em, sql, [meterKey, customer, hour, end]);
  }
}
