// Ingesting a batch: validate every event, refuse the ones a meter cannot read, claim the keys of the rest
// (exactly once, by the database), store the new ones and append what they add to the rollups (per minute and
// billing period, with the late ones named), all in the caller's transaction: when it commits, every accepted
// event is durable and counted, and the delta publisher will publish it.
import type { Em } from '@billing/kit/db';
import {
  type IngestResult,
  IngestResultSchema,
  IngestStatus,
  RejectReason,
  type UsageEvent,
} from '@billing/proto/billing/usage/v1/resources_pb';
import type { JsonObject } from '@bufbuild/protobuf';
import { create } from '@bufbuild/protobuf';
import {
  applyRollups,
  claimAndStoreEvents,
  knownPeriods,
  lockCustomersShared,
  metersForTypes,
} from '../adapter/usage-store.ts';
import { BillingCalendar } from '../domain/periods.ts';
import { rollupDeltas, unreadableEvents } from '../domain/rollup.ts';
import { isRejection, type ValidEvent, validateEvent } from '../domain/usage-event.ts';

/** Ingests one batch at `now`; returns one result per event, in order. `offset` numbers them in a stream. */
export async function ingestEvents(
  em: Em,
  events: readonly UsageEvent[],
  now: Date,
  offset = 0,
): Promise<IngestResult[]> {
  const results = new Array<IngestResult>(events.length);
  const valid: ValidEvent[] = [];
  events.forEach((event, i) => {
    const properties: JsonObject = event.properties ?? {};
    const checked = validateEvent(event, properties, offset + i, now);
    if (isRejection(checked)) {
      results[i] = create(IngestResultSchema, {
        index: checked.index,
        id: checked.id,
        status: IngestStatus.REJECTED,
        rejectReason: checked.reason,
        field: checked.field,
        message: checked.message,
      });
    } else valid.push(checked);
  });
  const meters = await metersForTypes(
    em,
    valid.map((e) => e.type),
  );
  const unreadable = unreadableEvents(valid, meters);
  const readable = valid.filter((e) => !unreadable.has(e.index));
  for (const [index, message] of unreadable) {
    results[index - offset] = create(IngestResultSchema, {
      index,
      id: events[index - offset]?.id ?? '',
      status: IngestStatus.REJECTED,
      rejectReason: RejectReason.INVALID_VALUE,
      field: `events[${index}].properties`,
      message,
    });
  }
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
  const late = new Set(readable.filter((e) => calendar.periodOf(e.customer, e.time).closed).map((e) => e.index));
  const claim = await claimAndStoreEvents(em, readable, now, late);
  const accepted = readable.filter((e) => claim.accepted.has(e.index));
  const periodOf = (e: ValidEvent) => calendar.periodOf(e.customer, e.time);
  await applyRollups(em, rollupDeltas(accepted, meters, { periodOf, late }), now);
  for (const e of readable) {
    const duplicate = claim.duplicates.get(e.index);
    results[e.index - offset] = create(IngestResultSchema, {
      index: e.index,
      id: e.id,
      status:
        duplicate === undefined
          ? IngestStatus.ACCEPTED
          : duplicate === 'same'
            ? IngestStatus.DUPLICATE
            : IngestStatus.DUPLICATE_MISMATCH,
      message: duplicate === 'different' ? 'an event with this id and other content was stored before; it counts' : '',
      late: duplicate === undefined && late.has(e.index),
    });
  }
  return results;
}

/** Counts of a batch's results by status. */
export function countResults(results: readonly IngestResult[]) {
  const count = (status: IngestStatus) => results.filter((r) => r.status === status).length;
  return {
    acceptedCount: count(IngestStatus.ACCEPTED),
    duplicateCount: count(IngestStatus.DUPLICATE),
    duplicateMismatchCount: count(IngestStatus.DUPLICATE_MISMATCH),
    rejectedCount: count(IngestStatus.REJECTED),
  };
}
