// Reads of the rollups (`usage_rollup` per hour, `usage_rollup_minute` per minute, `usage_distinct`), each with
// its customer's part of the rollup log not folded yet, so every answer is exact whether or not the publisher has
// folded an entry. In SQL: the log is read through its JSON bodies, which no entity maps.
import { type Em, queryBound } from '@billing/kit/db';
import type { Meter } from '@billing/proto/billing/catalog/v1/resources_pb';
import type { JsonValue } from '@bufbuild/protobuf';
import { fromDbMeter, fromDbRollupRow, type RollupRow, type RollupRowColumns } from './mapping.ts';
import { rollupLogEntries } from './rollup-log-repository.ts';

/** The meters with usage of `customer` in the hours (folded) or minutes (not folded yet) overlapping [from, to). */
export async function metersWithUsage(em: Em, customer: string, from: Date, to: Date): Promise<Meter[]> {
  const rows = await queryBound<{ body: JsonValue; archived: boolean }>(
    em,
    `select m.body, m.archived from meter m
      where exists (select from usage_rollup r where r.meter_key = m.key and r.customer_external_id = $1
                      and r.hour >= date_trunc('hour', $2::timestamptz, 'UTC') and r.hour < $3)
         or exists (select from (${rollupLogEntries('usage_rollup_log', '$1::text')}) d where d.meter_key = m.key
                      and d.minute >= date_trunc('minute', $2::timestamptz, 'UTC') and d.minute < $3)`,
    [customer, from, to],
  );
  return rows.map(fromDbMeter);
}

/** The time from which minute rollups exist (earlier edges are read from raw events). */
export async function minuteRollupsSince(em: Em): Promise<Date> {
  const [row] = await queryBound<{ since: Date | string | null }>(
    em,
    "select case when since = '-infinity' then null else since end as since from usage_minute_rollups",
    [],
  );
  return row?.since ? new Date(row.since) : new Date(-8.64e15);
}

/** A meter's minute rollup rows of one customer for the minutes within any of `ranges` (bucket: the minute). */
export async function minuteRows(
  em: Em,
  meterKey: string,
  customer: string,
  ranges: readonly (readonly [Date, Date])[],
): Promise<RollupRow[]> {
  if (ranges.length === 0) return [];
  const rows = await queryBound<RollupRowColumns>(
    em,
    `select m.minute as bucket, m.group_key, m.value::text as value, m.event_count, m.latest_time, m.latest_event_id
       from usage_rollup_minute m join jsonb_to_recordset($1::jsonb) as r(f timestamptz, t timestamptz)
         on m.minute >= r.f and m.minute < r.t
      where m.meter_key = $2 and m.customer_external_id = $3
     union all
     select d.minute as bucket, d.group_key, d.value::text as value, d.event_count, d.latest_time, d.latest_event_id
       from (${rollupLogEntries('usage_rollup_log', '$3::text')}) d
       join jsonb_to_recordset($1::jsonb) as r(f timestamptz, t timestamptz) on d.minute >= r.f and d.minute < r.t
      where d.meter_key = $2`,
    [JSON.stringify(ranges.map(([f, t]) => ({ f: f.toISOString(), t: t.toISOString() }))), meterKey, customer],
  );
  return rows.map(fromDbRollupRow);
}

/** A meter's rollup rows of one customer for the hours in [from, to) (bucket: the hour). */
export async function rollupRows(
  em: Em,
  meterKey: string,
  customer: string,
  from: Date,
  to: Date,
): Promise<RollupRow[]> {
  const rows = await queryBound<RollupRowColumns>(
    em,
    `select hour as bucket, group_key, value::text as value, event_count, latest_time, latest_event_id from usage_rollup
      where meter_key = $1 and customer_external_id = $2 and hour >= $3 and hour < $4
     union all
     select date_trunc('hour', minute, 'UTC') as bucket, group_key, value::text as value, event_count, latest_time,
            latest_event_id from (${rollupLogEntries('usage_rollup_log', '$2::text')}) d
      where meter_key = $1 and minute >= $3 and minute < $4`,
    [meterKey, customer, from, to],
  );
  return rows.map(fromDbRollupRow);
}

/** Distinct values of a unique-count meter for the hours in [from, to), with their hour and group. */
export async function distinctValues(em: Em, meterKey: string, customer: string, from: Date, to: Date) {
  const rows = await queryBound<{ hour: Date; group_key: string; value: string }>(
    em,
    `select hour, group_key, value from usage_distinct
      where meter_key = $1 and customer_external_id = $2 and hour >= $3 and hour < $4`,
    [meterKey, customer, from, to],
  );
  return rows.map((r) => ({ hour: new Date(r.hour), group: r.group_key, value: r.value }));
}
