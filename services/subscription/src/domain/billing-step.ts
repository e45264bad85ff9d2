// What happens to a subscription when its time comes (a pending start, a trial-ending notice, a trial end, a
// period end, a scheduled cancellation) and when it ends early, as pure steps: each takes the subscription and
// what it needs that was loaded for it, and returns the next subscription with what to write beside it (the
// period it closed, its proration items) and its events in order. The use cases in service/ load, save and record
// (docs/billing-clock.md).
import { type EventRecord, eventRecord } from '@billing/kit/outbox';
import type { PlanVersion } from '@billing/proto/billing/catalog/v1/resources_pb';
import { type PeriodSegment, PeriodSegmentSchema } from '@billing/proto/billing/subscription/events/v1/events_pb';
import {
  AnchorKind,
  type Customer,
  EndReason,
  type ProrationItem,
  ProrationReason,
  SubscriptionState,
} from '@billing/proto/billing/subscription/v1/resources_pb';
import {
  subscriptionActivated,
  subscriptionEnded,
  subscriptionPeriodClosed,
  subscriptionPlanChanged,
  subscriptionRenewed,
  subscriptionTrialEnding,
} from '@billing/proto/events/subscription';
import { create } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { type BillingSchedule, periodAt, stubFullPeriod } from './billing-calendar.ts';
import { prorateChange, type TimeRange } from './proration.ts';
import { calendarInterval, cloneRecord, type SubscriptionRecord, termsOf, transition } from './subscription.ts';
import { fromPeriod, proratedLines, segmentOf, toItems, toPeriod } from './terms.ts';

const S = SubscriptionState;

/** What a step needs besides the subscription, loaded before it runs. */
export interface StepInputs {
  /** The subscription's customer: its time zone and who it bills. */
  customer: Customer;
  /** The plan version the subscription is on. */
  version: PlanVersion;
  /** The version its scheduled change moves it to, when it has one. */
  scheduledVersion: PlanVersion | undefined;
  /** The proration items of the current period carried to its close (NEXT_INVOICE), oldest first. */
  carriedItems: readonly ProrationItem[];
}

/** What a step decided: the next subscription, what to write beside it, and its events. */
export interface StepResult {
  /** The subscription after the step. */
  record: SubscriptionRecord;
  /** The period the step closed: its number and end, whose key makes the close happen exactly once. */
  closedPeriod: { number: number; end: Date } | undefined;
  /** Proration items to keep, with the number of the period they belong to. */
  prorationItems: { periodNumber: number; items: ProrationItem[] };
  /** The events, in order, about the subscription at the step's time (the request is the caller's). */
  events: EventRecord[];
}

/** The context of the events of a step on `record` at `time`. */
function eventsAt(record: SubscriptionRecord, time: Date) {
  return { aggregateId: record.subscription.id, occurredTime: time };
}

/** The calendar of billed periods starting at `start` on `version`, in the customer's zone. */
function scheduleFor(
  record: SubscriptionRecord,
  version: PlanVersion,
  customer: Customer,
  start: Date,
): BillingSchedule {
  const anchor = record.subscription.anchor;
  return {
    start,
    zone: customer.billing?.timeZone || 'UTC',
    interval: calendarInterval(version),
    anchor:
      anchor?.kind === AnchorKind.DAY_OF_MONTH
        ? { kind: 'day_of_month', day: anchor.dayOfMonth }
        : { kind: 'anniversary' },
  };
}

/**
 * Starts billed periods at `at` on a fresh calendar (at the start, after a trial): the first period, and the
 * PARTIAL_PERIOD items when a day-of-month anchor makes it a stub. Changes `record`; the caller sets the period
 * number.
 */
function startBilledPeriods(record: SubscriptionRecord, version: PlanVersion, customer: Customer, time: Date) {
  const s = record.subscription;
  const schedule = scheduleFor(record, version, customer, time);
  const period = periodAt(schedule, 0);
  record.schedule = schedule;
  record.periodIndex = 0;
  transition(s, S.ACTIVE, 'start billing');
  s.currentPeriod = toPeriod(period);
  const segment = segmentOf(termsOf(s), period, false);
  record.segments = [segment];
  const full = stubFullPeriod(schedule);
  const items = full
    ? toItems(
        prorateChange(
          [],
          proratedLines(termsOf(s), version, record.addonCharges, s.currencyCode),
          full,
          time,
          'replace',
        ),
        { subscriptionId: s.id, currency: s.currencyCode, full, reason: ProrationReason.PARTIAL_PERIOD, at: time },
      )
    : [];
  return { segment, items };
}

/** What a start gave: the first billed segment (none for a trial) and its stub's proration items. */
export interface Started {
  /** The subscription after its start. */
  record: SubscriptionRecord;
  /** The first billed segment; undefined for a trial. */
  segment: PeriodSegment | undefined;
  /** The PARTIAL_PERIOD items of a first stub. */
  items: ProrationItem[];
}

/** Starts a subscription at its start time on `version`: its trial, or its first billed period. */
export function startSubscription(record: SubscriptionRecord, version: PlanVersion, customer: Customer): Started {
  const next = cloneRecord(record);
  const s = next.subscription;
  const start = s.startTime ? timestampDate(s.startTime) : new Date(0);
  s.periodNumber = 1;
  if (s.trialEndTime && timestampDate(s.trialEndTime).getTime() > start.getTime()) {
    const trial = { start, end: timestampDate(s.trialEndTime) };
    transition(s, S.TRIALING, 'start');
    s.currentPeriod = toPeriod(trial);
    next.segments = [segmentOf(termsOf(s), trial, true)];
    next.trialEndingNotified = false;
    return { record: next, segment: undefined, items: [] };
  }
  return { record: next, ...startBilledPeriods(next, version, customer, start) };
}

/** The segments cut at `time` (for a period that ends early). */
function truncate(segments: readonly PeriodSegment[], time: Date): PeriodSegment[] {
  return segments
    .filter((seg) => fromPeriod(seg.period).start.getTime() < time.getTime())
    .map((seg) => {
      const range = fromPeriod(seg.period);
      return range.end.getTime() > time.getTime()
        ? create(PeriodSegmentSchema, { ...seg, period: toPeriod({ start: range.start, end: time }) })
        : seg;
    });
}

/** The current period as it closes at `end`. */
interface ClosedPeriod {
  number: number;
  period: TimeRange;
  segments: PeriodSegment[];
  items: readonly ProrationItem[];
}

function closeCurrentPeriod(
  record: SubscriptionRecord,
  end: Date,
  carriedItems: readonly ProrationItem[],
): ClosedPeriod {
  const s = record.subscription;
  return {
    number: s.periodNumber,
    period: { start: fromPeriod(s.currentPeriod).start, end },
    segments: truncate(record.segments, end),
    items: carriedItems,
  };
}

/** The `period_closed` event of `closed`, published at `time` with the subscription as it is after the step. */
function periodClosed(
  record: SubscriptionRecord,
  customer: Customer,
  closed: ClosedPeriod,
  time: Date,
  extraItems: readonly ProrationItem[] = [],
): EventRecord {
  const s = record.subscription;
  return eventRecord(
    subscriptionPeriodClosed,
    {
      subscription: s,
      billTo: customer.billTo,
      timeZone: customer.billing?.timeZone || 'UTC',
      periodNumber: closed.number,
      closedPeriod: toPeriod(closed.period),
      segments: closed.segments,
      prorationItems: [...closed.items, ...extraItems],
      nextSegment: s.state === S.ENDED ? undefined : record.segments[0],
    },
    eventsAt(record, time),
  );
}

/**
 * Ends a subscription at `requested`, closing its period there (so in-arrears usage up to then is billed). An
 * end decided at a time before the current period began (an invoice given up on after a renewal, as test clocks
 * make common) ends it when that period begins: a period never closes backwards.
 */
export function endSubscription(
  record: SubscriptionRecord,
  inputs: Pick<StepInputs, 'customer' | 'carriedItems'>,
  requested: Date,
  reason: EndReason,
): StepResult {
  const next = cloneRecord(record);
  const s = next.subscription;
  const wasPending = s.state === S.PENDING;
  const periodStart = s.currentPeriod ? fromPeriod(s.currentPeriod).start : requested;
  const time = wasPending || requested.getTime() >= periodStart.getTime() ? requested : periodStart;
  const closed = wasPending ? undefined : closeCurrentPeriod(next, time, inputs.carriedItems);
  transition(s, S.ENDED, 'end');
  s.endTime = timestampFromDate(time);
  s.endReason = reason;
  s.cancelTime = undefined;
  s.scheduledChange = undefined;
  s.updateTime = timestampFromDate(time);
  return {
    record: next,
    closedPeriod: closed ? { number: closed.number, end: time } : undefined,
    prorationItems: { periodNumber: s.periodNumber, items: [] },
    events: [
      ...(closed ? [periodClosed(next, inputs.customer, closed, time)] : []),
      eventRecord(subscriptionEnded, { subscription: s }, eventsAt(next, time)),
    ],
  };
}

/** Applies the scheduled change (to `version`), if any; returns the plan it left. */
function applyScheduledChange(record: SubscriptionRecord, version: PlanVersion | undefined) {
  const s = record.subscription;
  const change = s.scheduledChange;
  if (!change) return undefined;
  if (!version || version.planKey !== change.planKey || version.version !== change.planVersion) {
    throw new Error(`subscription ${s.id}: the version of its scheduled change was not loaded`);
  }
  const previous = { planKey: s.planKey, planVersion: s.planVersion, quantities: s.quantities };
  const chargeKeys = new Set((version.spec?.charges ?? []).map((c) => c.key));
  s.planKey = change.planKey;
  s.planVersion = change.planVersion;
  s.interval = version.spec?.interval ?? s.interval;
  s.quantities =
    change.quantities.length > 0 ? change.quantities : s.quantities.filter((q) => chargeKeys.has(q.chargeKey));
  s.priceOverrides =
    change.priceOverrides.length > 0
      ? change.priceOverrides
      : s.priceOverrides.filter((o) => chargeKeys.has(o.chargeKey));
  s.scheduledChange = undefined;
  return previous;
}

/** The `plan_changed` event of a scheduled change or migration applied at a boundary. */
function planChangedAtBoundary(
  record: SubscriptionRecord,
  previous: { planKey: string; planVersion: number; quantities: SubscriptionRecord['subscription']['quantities'] },
  time: Date,
): EventRecord {
  return eventRecord(
    subscriptionPlanChanged,
    {
      subscription: record.subscription,
      previousPlanKey: previous.planKey,
      previousPlanVersion: previous.planVersion,
      previousQuantities: previous.quantities,
      immediate: false,
    },
    eventsAt(record, time),
  );
}

/**
 * Moves into the next period at `time` (a boundary); after a change to `changedTo`, on a calendar rebased there
 * if the interval changed.
 */
function renew(record: SubscriptionRecord, customer: Customer, time: Date, changedTo: PlanVersion | undefined) {
  const s = record.subscription;
  if (!record.schedule) throw new Error(`subscription ${s.id}: a billed subscription has a calendar`);
  if (changedTo && calendarInterval(changedTo) !== record.schedule.interval) {
    record.schedule = scheduleFor(record, changedTo, customer, time);
    record.periodIndex = 0;
  } else {
    record.periodIndex += 1;
  }
  const period = periodAt(record.schedule, record.periodIndex);
  s.currentPeriod = toPeriod(period);
  s.periodNumber += 1;
  record.segments = [segmentOf(termsOf(s), period, false)];
}

/** The one step due for `record` at `time` (its next due time), with its events at that time. */
export function dueStep(record: SubscriptionRecord, inputs: StepInputs, time: Date): StepResult {
  const s = record.subscription;
  const periodEnd = s.currentPeriod ? fromPeriod(s.currentPeriod).end : undefined;

  if (s.state === S.PENDING) return pendingStart(record, inputs, time);
  if (s.state === S.TRIALING && periodEnd && time.getTime() < periodEnd.getTime()) {
    const next = cloneRecord(record);
    next.trialEndingNotified = true;
    next.subscription.updateTime = timestampFromDate(time);
    return {
      record: next,
      closedPeriod: undefined,
      prorationItems: { periodNumber: next.subscription.periodNumber, items: [] },
      events: [eventRecord(subscriptionTrialEnding, { subscription: next.subscription }, eventsAt(next, time))],
    };
  }
  if (s.state === S.CANCELED) return endSubscription(record, inputs, time, EndReason.CANCELED_AT_PERIOD_END);
  if (!periodEnd) throw new Error(`subscription ${s.id} has no current period`);
  return periodEndStep(record, inputs, periodEnd, time);
}

/** A pending subscription starts, on its scheduled change's version if it has one. */
function pendingStart(record: SubscriptionRecord, inputs: StepInputs, time: Date): StepResult {
  const moved = cloneRecord(record);
  moved.subscription.updateTime = timestampFromDate(time);
  const previous = applyScheduledChange(moved, inputs.scheduledVersion);
  const version = previous && inputs.scheduledVersion ? inputs.scheduledVersion : inputs.version;
  const started = startSubscription(moved, version, inputs.customer);
  const s = started.record.subscription;
  return {
    record: started.record,
    closedPeriod: undefined,
    prorationItems: { periodNumber: s.periodNumber, items: started.items },
    events: [
      ...(previous ? [planChangedAtBoundary(started.record, previous, time)] : []),
      eventRecord(
        subscriptionActivated,
        {
          subscription: s,
          previousState: S.PENDING,
          firstBilledSegment: started.segment,
          prorationItems: started.items,
        },
        eventsAt(started.record, time),
      ),
    ],
  };
}

/** The current period (or trial) closes at `periodEnd`; the next one starts, on a scheduled change if any. */
function periodEndStep(record: SubscriptionRecord, inputs: StepInputs, periodEnd: Date, time: Date): StepResult {
  const next = cloneRecord(record);
  const s = next.subscription;
  s.updateTime = timestampFromDate(time);
  const previousPeriod = s.currentPeriod;
  const closed = closeCurrentPeriod(next, periodEnd, inputs.carriedItems);
  const previous = applyScheduledChange(next, inputs.scheduledVersion);
  const version = previous && inputs.scheduledVersion ? inputs.scheduledVersion : inputs.version;
  const trialEnded = s.state === S.TRIALING;
  let stubItems: ProrationItem[] = [];
  if (trialEnded) {
    stubItems = startBilledPeriods(next, version, inputs.customer, time).items;
    s.periodNumber += 1;
  } else {
    renew(next, inputs.customer, time, previous ? version : undefined);
  }
  return {
    record: next,
    closedPeriod: { number: closed.number, end: periodEnd },
    prorationItems: { periodNumber: s.periodNumber, items: stubItems },
    events: [
      periodClosed(next, inputs.customer, closed, time, stubItems),
      ...(previous ? [planChangedAtBoundary(next, previous, time)] : []),
      ...(trialEnded
        ? [eventRecord(subscriptionActivated, { subscription: s, previousState: S.TRIALING }, eventsAt(next, time))]
        : []),
      eventRecord(subscriptionRenewed, { subscription: s, previousPeriod }, eventsAt(next, time)),
    ],
  };
}
