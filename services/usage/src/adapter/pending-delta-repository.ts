// Pending changes (`usage_pending_delta`): what a correction folded from the rollup log, and the recomputes that
// corrections and newly learned periods ask the delta publisher for. Written and taken set-wise (a correction's
// periods or a pass's rows in one statement, their rows passed as one JSON parameter), as the publisher's hot path.
import { type Em, queryBound } from '@billing/kit/db';
import type { MeterAggregation } from '@billing/proto/billing/catalog/v1/resources_pb';
import type { PendingChange } from '../domain/pending-periods.ts';
import type { BillingPeriod } from '../domain/periods.ts';
import { fromDbPendingChange, type PendingRow, toDbAggregation, toDbPendingChange } from './mapping.ts';

/** A recompute of a customer's meter over a billing period. */
export interface RecomputeRequest {
  /** The meter. */
  meterKey: string;
  /** Its aggregation. */
  aggregation: MeterAggregation;
  /** The period. */
  period: BillingPeriod;
  /** Whether a change of the period, closed, is still to be announced (its published value holds what was). */
  announce?: boolean;
}

/**
 * Asks the delta publisher to recompute a customer's meters over periods. A closed period's change is not
 * announced, unless `announce` (its published value already holds what was announced of it).
 */
export async function requestRecompute(
  em: Em,
  customer: string,
  requests: readonly RecomputeRequest[],
  now: Date,
): Promise<void> {
  if (requests.length === 0) return;
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
        requests.map((r) => ({
          m: r.meterKey,
          s: r.period.start.toISOString(),
          e: r.period.end.toISOString(),
          a: toDbAggregation(r.aggregation),
          sub: r.period.subscriptionId,
          pc: r.period.closed,
          an: r.announce === true,
        })),
      ),
    ],
  );
}

/** Keeps pending changes (what a fold outside a publisher pass returned) for the next pass, in one statement. */
export async function savePendingChanges(em: Em, changes: readonly PendingChange[]): Promise<void> {
  if (changes.length === 0) return;
  await queryBound(
    em,
    `insert into usage_pending_delta (customer_external_id, meter_key, period_start, period_end, event_count,
       last_ingest_at, aggregation, value, latest_time, latest_event_id, recompute, subscription_id, period_closed,
       late_event_ids, correction)
     select c, m, s, e, n, li, a, v, lt, lid, r, sub, pc, ids, cor
       from jsonb_to_recordset($1::jsonb) as x(c text, m text, s timestamptz, e timestamptz, n bigint,
         li timestamptz, a text, v numeric, lt timestamptz, lid text, r boolean, sub text, pc boolean, ids jsonb,
         cor boolean)`,
    [JSON.stringify(changes.map(toDbPendingChange))],
  );
}

/** Whether pending rows (corrections' rows and recomputes) wait for a pass. */
export async function pendingRowsWaiting(em: Em): Promise<boolean> {
  const [row] = await queryBound<{ waiting: boolean }>(
    em,
    'select exists (select from usage_pending_delta) as waiting',
    [],
  );
  return row?.waiting === true;
}

/** Takes (deletes and returns) the pending changes of the periods of the first `limit` rows. */
export async function takePendingChanges(em: Em, limit: number): Promise<PendingChange[]> {
  const rows = await queryBound<PendingRow>(
    em,
    // Whole periods at a time: a recompute taken with only some of its period's rows would count the rest again.
    `with taken as (
       select distinct customer_external_id, meter_key, period_start
         from (select customer_external_id, meter_key, period_start from usage_pending_delta order by id limit $1) first
     )
     delete from usage_pending_delta p using taken t
      where p.customer_external_id = t.customer_external_id and p.meter_key = t.meter_key
        and p.period_start = t.period_start
     returning p.customer_external_id, p.meter_key, p.period_start, p.period_end, p.last_ingest_at, p.event_count,
               p.aggregation, p.value::text as value, p.latest_time, p.latest_event_id, p.recompute, p.subscription_id,
               p.period_closed, p.late_event_ids, p.correction`,
    [limit],
  );
  return rows.map(fromDbPendingChange);
}
