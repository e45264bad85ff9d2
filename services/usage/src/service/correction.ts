// Correcting stored usage (S11), what AmendEvent and VoidEvent share: the hourly buckets the event touched are
// rebuilt from raw events (max, latest and unique counts cannot be un-added), and the change of every affected
// meter and period is answered and published, in the same transaction.
import type { MutationScope } from '@billing/kit/mutation';
import { recordEvent } from '@billing/kit/outbox';
import type { Meter } from '@billing/proto/billing/catalog/v1/resources_pb';
import type { StoredEvent, UsageDelta } from '@billing/proto/billing/usage/v1/resources_pb';
import { usageEventAmended, usageEventVoided } from '@billing/proto/events/usage';
import type { JsonObject } from '@bufbuild/protobuf';
import { knownPeriods } from '../adapter/billing-period-repository.ts';
import { lockForCorrection } from '../adapter/locks.ts';
import { metersForTypes } from '../adapter/meter-repository.ts';
import { requestRecompute } from '../adapter/pending-delta-repository.ts';
import { movePublishedValues } from '../adapter/published-value-repository.ts';
import { applyRollups, clearRollupHour, compactRollups } from '../adapter/rollup-log-repository.ts';
import {
  findEventForUpdate,
  rawEvents,
  saveEventAmendment,
  saveEventVoided,
} from '../adapter/usage-event-repository.ts';
import { usageEventAggregate } from '../domain/aggregates.ts';
import { eventNotFound, eventVoided, invalidRequest } from '../domain/errors.ts';
import { storedEventMessage, usageDeltaMessage } from '../domain/messages.ts';
import { meterSelects, readEvent } from '../domain/meter.ts';
import { type PublishedMove, periodKey, publishedKeyOf } from '../domain/period-value.ts';
import { BillingCalendar, type BillingPeriod, isLate } from '../domain/periods.ts';
import { hourOf, readEvents, rollupDeltas } from '../domain/rollup.ts';
import { type CorrectableEvent, eventTimeRefusal, type MeteredEvent } from '../domain/usage-event.ts';
import type { CorrectionTarget } from '../domain/validate.ts';
import { periodTotal, type UsageValue } from './aggregate-usage.ts';

/** What to do to the event: void it, or give it a new time or new properties (undefined keeps them). */
export type Correction =
  | { kind: 'void' }
  | { kind: 'amend'; time: Date | undefined; properties: JsonObject | undefined };

/** What a correction answers: the event as it now is, and the change of every affected meter and period. */
export interface CorrectionResult {
  /** The event as it now is. */
  event: StoredEvent;
  /** The changes, one per affected meter and billing period. */
  deltas: UsageDelta[];
}

const HOUR = 3_600_000;

// Rebuilds a meter's bucket of one customer and hour from the raw events still counting.
async function rebuildHour(scope: MutationScope, meter: Meter, customer: string, hour: Date): Promise<void> {
  await clearRollupHour(scope.em, meter.key, customer, hour);
  const events: MeteredEvent[] = (
    await rawEvents(scope.em, customer, meter.eventType, hour, new Date(hour.getTime() + HOUR))
  ).map((e, index) => ({ index, id: e.id, customer, type: meter.eventType, time: e.time, properties: e.properties }));
  await applyRollups(scope.em, rollupDeltas(readEvents(events, [meter]).readings), scope.now);
}

/** The values of `meters` over `periods` for `customer`, by publishedKeyOf. */
async function periodValues(
  scope: MutationScope,
  meters: readonly Meter[],
  customer: string,
  periods: readonly BillingPeriod[],
  calendar: BillingCalendar,
) {
  const values = new Map<string, UsageValue>();
  for (const meter of meters) {
    for (const period of periods) {
      values.set(
        publishedKeyOf(periodKey(customer, meter.key, period)),
        await periodTotal(scope.em, meter, customer, period, calendar),
      );
    }
  }
  return values;
}

/**
 * Refuses an amendment the service could not count: a time out of range (the event's own if it keeps it), or
 * properties a meter selecting the event cannot read.
 */
function checkAmendment(
  meters: readonly Meter[],
  event: CorrectableEvent,
  time: Date,
  properties: JsonObject,
  now: Date,
) {
  const refusal = eventTimeRefusal(time, now);
  if (refusal) throw invalidRequest([{ field: 'event_time', description: refusal.message }]);
  for (const meter of meters) {
    if (!meterSelects(meter, event.type, properties)) continue;
    const reading = readEvent(meter, properties);
    if (typeof reading === 'string') {
      throw invalidRequest([{ field: 'properties', description: `meter ${meter.key}: ${reading}` }]);
    }
  }
}

/** Voids or amends one stored event; returns it as it now is and the resulting changes. */
export async function correctEvent(
  scope: MutationScope,
  target: CorrectionTarget,
  correction: Correction,
): Promise<CorrectionResult> {
  const { customer, eventId } = target;
  // No publisher pass and no batch of this customer runs alongside: the rollup log (holding what the customer's
  // batches added) is folded, with its period increments and late ids, before the corrected hours are rebuilt
  // from raw events.
  await lockForCorrection(scope.em, customer);
  const found = await findEventForUpdate(scope.em, customer, eventId);
  if (!found) throw eventNotFound(customer, eventId);
  if (found.voided) throw eventVoided(eventId);
  const time = correction.kind === 'amend' ? (correction.time ?? found.time) : found.time;
  const properties = correction.kind === 'amend' ? (correction.properties ?? found.properties) : found.properties;
  const meters = await metersForTypes(scope.em, [found.type]);
  if (correction.kind === 'amend') checkAmendment(meters, found, time, properties, scope.now);
  const earliest = new Date(Math.min(found.time.getTime(), time.getTime()));
  const calendar = new BillingCalendar(await knownPeriods(scope.em, [customer], earliest));
  const periods = [calendar.periodOf(customer, found.time), calendar.periodOf(customer, time)].filter(
    (p, i, all) =>
      all.findIndex((q) => q.start.getTime() === p.start.getTime() && q.subscriptionId === p.subscriptionId) === i,
  );
  // What each period owns depends on the periods overlapping it, which may end before the event's time.
  const ownership = new BillingCalendar(
    await knownPeriods(scope.em, [customer], new Date(Math.min(...periods.map((p) => p.start.getTime())))),
  );
  await compactRollups(scope.em);
  const before = await periodValues(scope, meters, customer, periods, ownership);
  if (correction.kind === 'void') await saveEventVoided(scope.em, found, scope.now);
  else {
    const late = isLate(calendar.periodOf(customer, time));
    await saveEventAmendment(scope.em, found, { time, properties, late }, scope.now);
  }
  const hours = [hourOf(found.time), hourOf(time)].filter(
    (h, i, all) => all.findIndex((x) => x.getTime() === h.getTime()) === i,
  );
  for (const meter of meters) for (const hour of hours) await rebuildHour(scope, meter, customer, hour);
  const after = await periodValues(scope, meters, customer, periods, ownership);

  const deltas: UsageDelta[] = [];
  const closedMoves: PublishedMove[] = [];
  for (const meter of meters) {
    for (const period of periods) {
      const key = publishedKeyOf(periodKey(customer, meter.key, period));
      const was = before.get(key);
      const now = after.get(key);
      if (!was || !now || (was.value.equals(now.value) && was.eventCount === now.eventCount)) continue;
      const change = { before: was.value, after: now.value, eventCountDelta: now.eventCount - was.eventCount };
      if (isLate(period)) {
        closedMoves.push({
          key: periodKey(customer, meter.key, period),
          delta: now.value.minus(was.value),
          eventCountDelta: change.eventCountDelta,
        });
      }
      deltas.push(usageDeltaMessage(meter.key, period, change));
    }
  }
  // A closed period's change is announced here. Where a value was published, it moves by that change, so it
  // holds what was billed; the recompute then announces, as late usage, only the rest: late usage folded
  // alongside (a unique count's recompute holds it; a max or latest needs the true value, not one moved by a
  // change). Where none was, the recompute announces nothing, as the correction said it all.
  const moved = await movePublishedValues(scope.em, closedMoves);
  // Published values cannot move forward past a correction: the publisher recomputes these periods.
  await requestRecompute(
    scope.em,
    customer,
    meters.flatMap((meter) =>
      periods.map((period) => ({
        meterKey: meter.key,
        aggregation: meter.aggregation,
        period,
        announce: moved.has(publishedKeyOf(periodKey(customer, meter.key, period))),
      })),
    ),
    scope.now,
  );
  const updated = await findEventForUpdate(scope.em, customer, eventId);
  if (!updated) throw new Error('the corrected event cannot be read back');
  const event = storedEventMessage(updated);
  const context = {
    aggregateId: usageEventAggregate(customer, eventId),
    occurredTime: scope.now,
    requestId: scope.requestId,
  };
  const { reason } = target;
  if (correction.kind === 'void') await recordEvent(scope.em, usageEventVoided, { event, deltas, reason }, context);
  else {
    const previousEvent = storedEventMessage(found);
    await recordEvent(scope.em, usageEventAmended, { previousEvent, event, deltas, reason }, context);
  }
  return { event, deltas };
}
