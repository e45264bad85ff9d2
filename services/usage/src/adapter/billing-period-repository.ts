// Each customer's subscription periods as the usage service knows them (`billing_period`), in SQL: every batch
// reads its customers' periods in one statement (the ingestion hot path), and saving a period is an upsert that
// keeps a closed period closed and says whether the row is new, which an entity save cannot.
import { type Em, queryBound } from '@billing/kit/db';
import type { KnownPeriod } from '../domain/periods.ts';
import { type BillingPeriodRow, fromDbKnownPeriod } from './mapping.ts';

/**
 * Records a subscription period as announced: open, or closed (a closed period stays closed). Returns whether
 * the period was new.
 */
export async function savePeriod(em: Em, period: KnownPeriod): Promise<boolean> {
  const rows = await queryBound<{ inserted: boolean }>(
    em,
    `insert into billing_period (subscription_id, period_start, period_end, customer_external_id, closed)
     values ($1, $2, $3, $4, $5)
     on conflict (subscription_id, period_start) do update set period_end = excluded.period_end,
       customer_external_id = excluded.customer_external_id, closed = billing_period.closed or excluded.closed
     returning (xmax = 0) as inserted`,
    [period.subscriptionId, period.start, period.end, period.customer, period.closed],
  );
  return rows[0]?.inserted === true;
}

/** Whether `period` is recorded already as announced (same end, closed if announced closed): saving it changes nothing. */
export async function periodRecorded(em: Em, period: KnownPeriod): Promise<boolean> {
  const rows = await queryBound<{ recorded: boolean }>(
    em,
    `select true as recorded from billing_period
      where subscription_id = $1 and period_start = $2 and period_end = $3 and (closed or not $4)`,
    [period.subscriptionId, period.start, period.end, period.closed],
  );
  return rows.length > 0;
}

/** The known subscription periods of `customers` that end at or after `from` (one ended at its start included). */
export async function knownPeriods(em: Em, customers: readonly string[], from: Date): Promise<KnownPeriod[]> {
  if (customers.length === 0) return [];
  const rows = await queryBound<BillingPeriodRow>(
    em,
    `select subscription_id, period_start, period_end, customer_external_id, closed from billing_period
      where customer_external_id in (select jsonb_array_elements_text($1::jsonb)) and period_end >= $2`,
    [JSON.stringify([...new Set(customers)]), from],
  );
  return rows.map(fromDbKnownPeriod);
}
