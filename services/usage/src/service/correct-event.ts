// Correcting stored usage (S11): voiding an event, or amending its time or properties. The hourly buckets it
// touched are rebuilt from raw events (max, latest and unique counts cannot be un-added), and the change of
// every affected meter and period is answered and published, in the same transaction.
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '@billing/kit/errors';
import type { MutationScope } from '@billing/kit/mutation';
import { recordEvent } from '@billing/kit/outbox';
import { Decimal } from '@billing/money';
import type { Meter } from '@billing/proto/billing/catalog/v1/resources_pb';
import {
  type StoredEvent,
  StoredEventSchema,
  type UsageDelta,
  UsageDeltaSchema,
} from '@billing/proto/billing/usage/v1/resources_pb';
import { usageEventAmended, usageEventVoided } from '@billing/proto/events/usage';
import { create, type JsonObject } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  amendEvent,
  applyRollups,
  clearRollupHour,
  compactRollups,
  type FoundEvent,
  findEventForUpdate,
  knownPeriods,
  lockForCorrection,
  metersForTypes,
  movePublishedValues,
  type PublishedKey,
  type PublishedMove,
  publishedKeyOf,
  rawEvents,
  requestRecompute,
  voidEvent,
} from '../adapter/usage-store.ts';
import { usageEventAggregate } from '../domain/aggregates.ts';
import { meterSelects, readEvent } from '../domain/meter.ts';
import { BillingCalendar, type BillingPeriod } from '../domain/periods.ts';
import { hourOf, readEvents, rollupDeltas } from '../domain/rollup.ts';
import { encodeProperties, MAX_FUTURE_MS, type MeteredEvent, RETENTION_MS } from '../domain/usage-event.ts';
import { periodTotal } from './aggregate-usage.ts';

/** What to do to the event. */
export type Correction = { kind: 'void' } | { kind: 'amend'; time?: Date; properties?: JsonObject };

const HOUR = 3_600_000;

function toStored(customer: string, e: FoundEvent): StoredEvent {
  return create(StoredEventSchema, {
    event: {
      id: e.id,
      customerExternalId: customer,
      type: e.type,
      eventTime: timestampFromDate(e.time),
      properties: e.properties as JsonObject,
    },
    ingestTime: timestampFromDate(e.ingestedAt),
    late: e.late,
    voided: e.voided,
    amendmentCount: e.amendmentCount,
    updateTime: e.updatedAt ? timestampFromDate(e.updatedAt) : undefined,
  });
}

// Rebuilds a meter's bucket of one customer and hour from the raw events still counting.
async function rebuildHour(scope: MutationScope, meter: Meter, customer: string, hour: Date): Promise<void> {
  await clearRollupHour(scope.em, meter.key, customer, hour);
  const events: MeteredEvent[] = (
    await rawEvents(scope.em, customer, meter.eventType, hour, new Date(hour.getTime() + HOUR))
  ).map((e, index) => ({
    index,
    id: e.id,
    customer,
    type: meter.eventType,
    time: e.time,
    properties: e.properties as JsonObject,
  }));
  await applyRollups(scope.em, rollupDeltas(readEvents(events, [meter]).readings), scope.now);
}

/** A customer's meter in a period (a calendar month and a subscription period may start together). */
const periodKey = (customer: string, meter: Meter, period: BillingPeriod): PublishedKey => ({
  customer,
  meterKey: meter.key,
  periodStart: period.start,
  subscriptionId: period.subscriptionId,
});

async function periodValues(
  scope: MutationScope,
  meters: readonly Meter[],
  customer: string,
  periods: readonly BillingPeriod[],
  calendar: BillingCalendar,
) {
  const values = new Map<string, { value: string; count: number }>();
  for (const meter of meters) {
    for (const period of periods) {
      const total = await periodTotal(scope.em, meter, customer, period, calendar);
      values.set(publishedKeyOf(periodKey(customer, meter, period)), {
        value: total.value.toFixed(),
        count: total.eventCount,
      });
    }
  }
  return values;
}

/** Voids or amends one stored event; returns it as it now is and the resulting changes. */
export async function correctEvent(
  scope: MutationScope,
  customer: string,
  eventId: string,
  correction: Correction,
  reason: string,
): Promise<{ event: StoredEvent; deltas: UsageDelta[] }> {
  if (reason.length > 500)
    throw new InvalidArgumentError('reason is too long', [{ field: 'reason', description: 'at most 500 characters' }]);
  // No publisher pass and no batch of this customer runs alongside: the rollup log (holding what the customer's
  // batches added) is folded, with its period increments and late ids, before the corrected hours are rebuilt
  // from raw events.
  await lockForCorrection(scope.em, customer);
  const found = await findEventForUpdate(scope.em, customer, eventId);
  if (!found) throw new NotFoundError('EVENT_NOT_FOUND', `no event "${eventId}" of customer "${customer}"`);
  if (found.voided) throw new FailedPreconditionError('EVENT_VOIDED', `event "${eventId}" is voided`);
  const time = correction.kind === 'amend' ? (correction.time ?? found.time) : found.time;
  const properties =
    correction.kind === 'amend'
      ? (correction.properties ?? (found.properties as JsonObject))
      : (found.properties as JsonObject);
  if (correction.kind === 'amend') {
    if (time.getTime() > scope.now.getTime() + MAX_FUTURE_MS || time.getTime() < scope.now.getTime() - RETENTION_MS) {
      throw new InvalidArgumentError('event_time is out of range', [
        { field: 'event_time', description: 'at most 5 minutes ahead and within the 400-day retention' },
      ]);
    }
    const encoded = encodeProperties(properties);
    if (typeof encoded !== 'string') {
      throw new InvalidArgumentError(encoded.message, [{ field: 'properties', description: encoded.message }]);
    }
  }
  const meters = await metersForTypes(scope.em, [found.type]);
  for (const meter of meters) {
    const reading =
      correction.kind === 'amend' && meterSelects(meter, found.type, properties)
        ? readEvent(meter, properties)
        : undefined;
    if (typeof reading === 'string') {
      throw new InvalidArgumentError('a meter cannot read the amended event', [
        { field: 'properties', description: `meter ${meter.key}: ${reading}` },
      ]);
    }
  }
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
  if (correction.kind === 'void') await voidEvent(scope.em, customer, found, scope.now);
  else {
    const late = calendar.periodOf(customer, time).closed;
    await amendEvent(scope.em, customer, found, { time, properties, late }, scope.now);
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
      const key = publishedKeyOf(periodKey(customer, meter, period));
      const was = before.get(key);
      const now = after.get(key);
      if (!was || !now || (was.value === now.value && was.count === now.count)) continue;
      if (period.closed) {
        closedMoves.push({
          key: periodKey(customer, meter, period),
          delta: new Decimal(now.value).minus(was.value),
          eventCountDelta: now.count - was.count,
        });
      }
      deltas.push(
        create(UsageDeltaSchema, {
          meterKey: meter.key,
          period: { startTime: timestampFromDate(period.start), endTime: timestampFromDate(period.end) },
          subscriptionId: period.subscriptionId,
          periodClosed: period.closed,
          delta: new Decimal(now.value).minus(was.value).toFixed(),
          value: now.value,
          eventCountDelta: BigInt(now.count - was.count),
        }),
      );
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
        announce: moved.has(publishedKeyOf(periodKey(customer, meter, period))),
      })),
    ),
    scope.now,
  );
  const updated = await findEventForUpdate(scope.em, customer, eventId);
  if (!updated) throw new Error('the corrected event cannot be read back');
  const event = toStored(customer, updated);
  const context = {
    aggregateId: usageEventAggregate(customer, eventId),
    occurredTime: scope.now,
    requestId: scope.requestId,
  };
  if (correction.kind === 'void') await recordEvent(scope.em, usageEventVoided, { event, deltas, reason }, context);
  else
    await recordEvent(
      scope.em,
      usageEventAmended,
      { previousEvent: toStored(customer, found), event, deltas, reason },
      context,
    );
  return { event, deltas };
}
