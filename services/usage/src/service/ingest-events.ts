// Ingesting a batch: validate every event, refuse the ones a meter cannot read, claim the keys of the rest
// (exactly once, by the database), store the new ones and append what they add to the rollups (per minute and
// billing period, with the late ones named), all in the caller's transaction: when it commits, every accepted
// event is durable and counted, and the delta publisher will publish it.
import type { Database, Em } from '@billing/kit/db';
import {
  type IngestResult,
  IngestResultSchema,
  IngestStatus,
  RejectReason,
} from '@billing/proto/billing/usage/v1/resources_pb';
import { knownPeriods } from '../adapter/billing-period-repository.ts';
import { lockCustomersShared } from '../adapter/locks.ts';
import { metersForTypes } from '../adapter/meter-repository.ts';
import { applyRollups } from '../adapter/rollup-log-repository.ts';
import { claimAndStoreEvents, KeyClaimedBeforeError } from '../adapter/usage-event-repository.ts';
import { BillingCalendar, type BillingPeriod, isLate } from '../domain/periods.ts';
import { readEvents, rollupDeltas } from '../domain/rollup.ts';
import {
  isRejection,
  type MeteredEvent,
  type SentEvent,
  type ValidEvent,
  validateEvent,
} from '../domain/usage-event.ts';

/** One request's events, and the stream position of its first one (0 for a unary request). */
export interface IngestBatch {
  /** The events, as sent. */
  events: readonly SentEvent[];
  /** What numbers its first event in results and field paths. */
  offset: number;
}

/**
 * Ingests batches in a transaction of their own. Events are new nearly always, so the transaction first expects
 * every key new (cheaper); when one was claimed before, it is rolled back and done again, tolerating them.
 */
export async function ingestInTransaction(
  db: Database,
  batches: readonly IngestBatch[],
  now: Date,
): Promise<IngestResult[][]> {
  try {
    return await db.transaction((em) => ingestEvents(em, batches, now, true));
  } catch (err) {
    if (!(err instanceof KeyClaimedBeforeError)) throw err;
    return db.transaction((em) => ingestEvents(em, batches, now));
  }
}

/**
 * Ingests batches together at `now` (as if one after the other: a later batch's copy of an earlier batch's event
 * is its duplicate); returns each batch's results, one per event, in order. With `keysNew`, see
 * claimAndStoreEvents.
 */
export async function ingestEvents(
  em: Em,
  batches: readonly IngestBatch[],
  now: Date,
  keysNew = false,
): Promise<IngestResult[][]> {
  const results = batches.map((batch) => new Array<IngestResult>(batch.events.length));
  // Events are keyed by their position in all batches; results report the index in their own batch or stream.
  const batchAt: number[] = [];
  const firstPosition: number[] = [];
  const valid: ValidEvent[] = [];
  batches.forEach((batch, b) => {
    firstPosition.push(batchAt.length);
    for (const event of batch.events) {
      const checked = validateEvent(event, batchAt.length, now);
      batchAt.push(b);
      if (isRejection(checked)) report(checked.index, IngestStatus.REJECTED, checked);
      else valid.push(checked);
    }
  });
  // Results are built as message literals: create() costs a microsecond per event.
  function report(
    position: number,
    status: IngestStatus,
    details: { reason?: RejectReason; field?: string; message?: string; late?: boolean } = {},
  ): void {
    const b = batchAt[position] as number;
    const batch = batches[b] as IngestBatch;
    const at = position - (firstPosition[b] as number);
    const index = batch.offset + at;
    (results[b] as IngestResult[])[at] = {
      $typeName: IngestResultSchema.typeName,
      index,
      id: batch.events[at]?.id ?? '',
      status,
      rejectReason: details.reason ?? RejectReason.UNSPECIFIED,
      field: details.field === undefined ? '' : `events[${index}].${details.field}`,
      message: details.message ?? '',
      late: details.late ?? false,
    };
  }
  const meters = await metersForTypes(
    em,
    valid.map((e) => e.type),
  );
  const { readings, unreadable } = readEvents(valid, meters);
  for (const [position, message] of unreadable) {
    report(position, IngestStatus.REJECTED, { reason: RejectReason.INVALID_VALUE, field: 'properties', message });
  }
  const readable = valid.filter((e) => !unreadable.has(e.index));
  await lockCustomersShared(
    em,
    readable.map((e) => e.customer),
  );
  const earliest = readable.reduce((min, e) => Math.min(min, e.time.getTime()), now.getTime());
  const calendar = new BillingCalendar(
    await knownPeriods(
      em,
      readable.map((e) => e.customer),
      new Date(earliest),
    ),
  );
  const periods: BillingPeriod[] = [];
  const late = new Set<number>();
  for (const e of readable) {
    const period = calendar.periodOf(e.customer, e.time);
    periods[e.index] = period;
    if (isLate(period)) late.add(e.index);
  }
  const claim = await claimAndStoreEvents(em, readable, now, late, keysNew);
  const periodOf = (e: MeteredEvent) => periods[e.index] ?? calendar.periodOf(e.customer, e.time);
  await applyRollups(
    em,
    rollupDeltas(
      readings.filter((r) => claim.accepted.has(r.event.index)),
      { periodOf, late },
    ),
    now,
  );
  for (const e of readable) {
    const duplicate = claim.duplicates.get(e.index);
    if (duplicate === undefined) report(e.index, IngestStatus.ACCEPTED, { late: late.has(e.index) });
    else if (duplicate === 'same') report(e.index, IngestStatus.DUPLICATE);
    else {
      report(e.index, IngestStatus.DUPLICATE_MISMATCH, {
        message: 'an event with this id and other content was stored before; it counts',
      });
    }
  }
  return results;
}

/** Counts of a batch's results by status. */
export function countResults(results: readonly IngestResult[]) {
  const counts = { acceptedCount: 0, duplicateCount: 0, duplicateMismatchCount: 0, rejectedCount: 0 };
  for (const r of results) {
    if (r.status === IngestStatus.ACCEPTED) counts.acceptedCount++;
    else if (r.status === IngestStatus.DUPLICATE) counts.duplicateCount++;
    else if (r.status === IngestStatus.DUPLICATE_MISMATCH) counts.duplicateMismatchCount++;
    else if (r.status === IngestStatus.REJECTED) counts.rejectedCount++;
  }
  return counts;
}
