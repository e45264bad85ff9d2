// The usage service's advisory locks, which no ORM can take: ingestion and the periods consumer meet on each
// customer's lock bucket, and corrections and the delta publisher on the publisher's lock (docs/usage.md,
// "Corrections" and "Billing periods and late usage").
import { type Em, queryBound } from '@billing/kit/db';

/** The lock class of customers' buckets: ingestion holds them shared, a correction exclusively. */
const CUSTOMER_LOCKS = 'usage-customer';
/** Customers are locked in this many buckets, so a batch takes few locks however many customers it has. */
const CUSTOMER_BUCKETS = 64;
/** The advisory lock that keeps one delta publisher pass (or one correction) at a time. */
const PUBLISHER_LOCK = 'usage-delta-publisher';

/**
 * Takes the shared locks of a batch's customers: a correction of one of them (which rebuilds hours from raw
 * events) then never runs at the same time as the batch, so an event is never counted both by its appended
 * delta and by a rebuild.
 */
export async function lockCustomersShared(em: Em, customers: readonly string[]): Promise<void> {
  if (customers.length === 0) return;
  await queryBound(
    em,
    `select pg_advisory_xact_lock_shared(hashtext($1), b)
       from (select distinct hashtext(c) & $2 as b from jsonb_array_elements_text($3::jsonb) as c order by b) as buckets`,
    [CUSTOMER_LOCKS, CUSTOMER_BUCKETS - 1, JSON.stringify([...new Set(customers)])],
  );
}

/**
 * Waits for the batches of `customer` in progress and keeps new ones out until the transaction ends (so what
 * it changes about the customer, a correction or a billing period, comes wholly before or after each batch).
 */
export async function lockCustomerExclusive(em: Em, customer: string): Promise<void> {
  await queryBound(em, 'select pg_advisory_xact_lock(hashtext($1), hashtext($2) & $3)', [
    CUSTOMER_LOCKS,
    customer,
    CUSTOMER_BUCKETS - 1,
  ]);
}

/**
 * Prepares a correction of a customer's events: waits for the delta publisher's pass in progress (and keeps
 * the next one out until the correction commits) and for the batches of the customer in progress (keeping new
 * ones out), so the correction's rebuild cannot conflict or double-count with either.
 */
export async function lockForCorrection(em: Em, customer: string): Promise<void> {
  await queryBound(em, 'select pg_advisory_xact_lock(hashtext($1))', [PUBLISHER_LOCK]);
  await lockCustomerExclusive(em, customer);
}

/**
 * Takes the publisher's lock for the transaction if no pass or correction holds it; returns whether it did (a
 * replica finding it taken skips its pass).
 */
export async function tryPublisherLock(em: Em): Promise<boolean> {
  const [lock] = await queryBound<{ locked: boolean }>(em, 'select pg_try_advisory_xact_lock(hashtext($1)) as locked', [
    PUBLISHER_LOCK,
  ]);
  return lock?.locked === true;
}
