// Ingesting a batch: validate every event, refuse the ones a meter cannot read, claim the keys of the rest
// (exactly once, by the database), store the new ones and add them to the hourly rollups, all in the caller's
// transaction: when it commits, every accepted event is durable and counted.
import type { Em } from '@billing/kit/db';
import { MeterAggregation } from '@billing/proto/billing/catalog/v1/resources_pb';
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
  claimEventKeys,
  insertEvents,
  metersForTypes,
  recordTouchedPeriods,
  type TouchedPeriod,
} from '../adapter/usage-store.ts';
import { mergeIncrements } from '../domain/period-value.ts';
import { billingPeriodOf } from '../domain/periods.ts';
import type { RollupDelta } from '../domain/rollup.ts';
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
  const claim = await claimEventKeys(em, readable);
  const accepted = readable.filter((e) => claim.accepted.has(e.index));
  await insertEvents(em, accepted, now);
  const deltas = rollupDeltas(accepted, meters);
  await applyRollups(em, deltas);
  await recordTouchedPeriods(em, touchedPeriods(deltas), now);
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
    });
  }
  return results;
}

/** What a batch's rollup deltas add to each (customer, meter, period). */
function touchedPeriods(deltas: readonly RollupDelta[]): TouchedPeriod[] {
  const touched = new Map<string, TouchedPeriod>();
  for (const d of deltas) {
    const period = billingPeriodOf(d.hour);
    const key = JSON.stringify([d.customer, d.meterKey, period[0].getTime()]);
    const increment = {
      aggregation: d.aggregation,
      value: d.value,
      eventCount: d.eventCount,
      latest: d.latest,
      recompute: d.aggregation === MeterAggregation.UNIQUE_COUNT,
    };
    const seen = touched.get(key);
    if (seen) seen.increment = mergeIncrements(seen.increment, increment);
    else touched.set(key, { customer: d.customer, meterKey: d.meterKey, period, increment });
  }
  return [...touched.values()];
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
