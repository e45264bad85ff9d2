// The billing clock: what happens to a subscription when its time comes (a pending start, a trial-ending
// notice, a trial end, a period end, a scheduled cancellation), one step at a time, in time order. Each step
// runs in the transaction that holds the subscription's row lock, and a period's close is recorded under a
// unique key, so every period closes exactly once however many replicas run the clock (docs/billing-clock.md).
import type { Database } from '@billing/kit/db';
import { recordEvent } from '@billing/kit/outbox';
import type { PlanVersion } from '@billing/proto/billing/catalog/v1/resources_pb';
import type { PeriodSegment } from '@billing/proto/billing/subscription/events/v1/events_pb';
import { PeriodSegmentSchema } from '@billing/proto/billing/subscription/events/v1/events_pb';
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
import * as store from '../adapter/store.ts';
import { type BillingSchedule, periodAt, stubFullPeriod } from '../domain/billing-calendar.ts';
import type { TimeRange } from '../domain/proration.ts';
import { prorateChange } from '../domain/proration.ts';
import { calendarInterval, nextDue, type SubscriptionRecord, termsOf } from '../domain/subscription.ts';
import { eventContext, type WriteContext } from './context.ts';
import { requireCustomer } from './customers.ts';
import { fromPeriod, proratedLines, segmentOf, toItems, toPeriod } from './terms.ts';

/** A plan version the subscription service keeps (every version subscribed to is kept). */
export async function requirePlanVersion(ctx: Pick<WriteContext, 'em'>, planKey: string, version: number) {
  const found = await store.findPlanVersion(ctx.em, planKey, version);
  if (!found) throw new Error(`plan version ${planKey} v${version} is not kept locally`);
  return found;
}

/** The period a change within the current period is prorated against: the calendar period of a first stub. */
export function prorationPeriod(record: SubscriptionRecord): TimeRange {
  const current = fromPeriod(record.subscription.currentPeriod);
  if (record.schedule && record.periodIndex === 0) return stubFullPeriod(record.schedule) ?? current;
  return current;
}

/** The in-advance lines of the subscription's current terms. */
export async function currentLines(ctx: Pick<WriteContext, 'em'>, record: SubscriptionRecord) {
  const s = record.subscription;
  const version = await requirePlanVersion(ctx, s.planKey, s.planVersion);
  return proratedLines(termsOf(s), version, record.addonCharges, s.currencyCode);
}

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
 * PARTIAL_PERIOD items when a day-of-month anchor makes it a stub. The caller sets the period number.
 */
export async function startBilledPeriods(
  ctx: WriteContext,
  record: SubscriptionRecord,
  customer: Customer,
  at: Date,
): Promise<{ segment: PeriodSegment; items: ProrationItem[] }> {
  const s = record.subscription;
  const version = await requirePlanVersion(ctx, s.planKey, s.planVersion);
  const schedule = scheduleFor(record, version, customer, at);
  const period = periodAt(schedule, 0);
  record.schedule = schedule;
  record.periodIndex = 0;
  s.state = SubscriptionState.ACTIVE;
  s.currentPeriod = toPeriod(period);
  const segment = segmentOf(termsOf(s), period, false);
  record.segments = [segment];
  const full = stubFullPeriod(schedule);
  const items = full
    ? toItems(
        prorateChange([], proratedLines(termsOf(s), version, record.addonCharges, s.currencyCode), full, at, 'replace'),
        {
          subscriptionId: s.id,
          currency: s.currencyCode,
          full,
          reason: ProrationReason.PARTIAL_PERIOD,
          at,
        },
      )
    : [];
  return { segment, items };
}

/** Starts a subscription at its start time: its trial, or its first billed period. */
export async function begin(ctx: WriteContext, record: SubscriptionRecord, customer: Customer) {
  const s = record.subscription;
  const start = s.startTime ? timestampDate(s.startTime) : new Date(0);
  s.periodNumber = 1;
  if (s.trialEndTime && timestampDate(s.trialEndTime).getTime() > start.getTime()) {
    const trial = { start, end: timestampDate(s.trialEndTime) };
    s.state = SubscriptionState.TRIALING;
    s.currentPeriod = toPeriod(trial);
    record.segments = [segmentOf(termsOf(s), trial, true)];
    record.trialEndingNotified = false;
    return { segment: undefined, items: [] };
  }
  const started = await startBilledPeriods(ctx, record, customer, start);
  await store.insertProrationItems(ctx.em, s.periodNumber, started.items);
  return started;
}

/** The segments cut at `at` (for a period that ends early). */
function truncate(segments: readonly PeriodSegment[], at: Date): PeriodSegment[] {
  return segments
    .filter((seg) => fromPeriod(seg.period).start.getTime() < at.getTime())
    .map((seg) => {
      const range = fromPeriod(seg.period);
      return range.end.getTime() > at.getTime()
        ? create(PeriodSegmentSchema, { ...seg, period: toPeriod({ start: range.start, end: at }) })
        : seg;
    });
}

interface ClosedPeriod {
  number: number;
  period: TimeRange;
  segments: PeriodSegment[];
  items: ProrationItem[];
}

/** Records the close of the current period, ending at `end`; throws if it was closed before. */
async function closeCurrentPeriod(ctx: WriteContext, record: SubscriptionRecord, end: Date): Promise<ClosedPeriod> {
  const s = record.subscription;
  const period = { start: fromPeriod(s.currentPeriod).start, end };
  await store.recordPeriodClose(ctx.em, s.id, s.periodNumber, end);
  return {
    number: s.periodNumber,
    period,
    segments: truncate(record.segments, end),
    items: await store.itemsCarriedToClose(ctx.em, s.id, s.periodNumber),
  };
}

async function publishClose(
  ctx: WriteContext,
  record: SubscriptionRecord,
  customer: Customer,
  closed: ClosedPeriod,
  at: Date,
  extraItems: readonly ProrationItem[] = [],
) {
  const s = record.subscription;
  await recordEvent(
    ctx.em,
    subscriptionPeriodClosed,
    {
      subscription: s,
      billTo: customer.billTo,
      timeZone: customer.billing?.timeZone || 'UTC',
      periodNumber: closed.number,
      closedPeriod: toPeriod(closed.period),
      segments: closed.segments,
      prorationItems: [...closed.items, ...extraItems],
      nextSegment: s.state === SubscriptionState.ENDED ? undefined : record.segments[0],
    },
    eventContext(ctx, s.id, at),
  );
}

/** Ends a subscription at `at`, closing its period there (so in-arrears usage up to `at` is billed). */
export async function endNow(ctx: WriteContext, record: SubscriptionRecord, requested: Date, reason: EndReason) {
  const s = record.subscription;
  const customer = await requireCustomer(ctx, s.customerId);
  const wasPending = s.state === SubscriptionState.PENDING;
  // An end decided at a time before the current period began (an invoice given up on after a renewal, as
  // test clocks make common) ends the subscription when that period begins: a period never closes backwards.
  const periodStart = s.currentPeriod ? fromPeriod(s.currentPeriod).start : requested;
  const at = wasPending || requested.getTime() >= periodStart.getTime() ? requested : periodStart;
  const closed = wasPending ? undefined : await closeCurrentPeriod(ctx, record, at);
  s.state = SubscriptionState.ENDED;
  s.endTime = timestampFromDate(at);
  s.endReason = reason;
  s.cancelTime = undefined;
  s.scheduledChange = undefined;
  s.updateTime = timestampFromDate(at);
  await store.saveSubscription(ctx.em, record);
  if (closed) await publishClose(ctx, record, customer, closed, at);
  await recordEvent(ctx.em, subscriptionEnded, { subscription: s }, eventContext(ctx, s.id, at));
}

/** Applies the scheduled change at the boundary `at`; returns the plan it left, or undefined if none. */
async function applyScheduledChange(ctx: WriteContext, record: SubscriptionRecord) {
  const s = record.subscription;
  const change = s.scheduledChange;
  if (!change) return undefined;
  const previous = { planKey: s.planKey, planVersion: s.planVersion, quantities: s.quantities };
  const version = await requirePlanVersion(ctx, change.planKey, change.planVersion);
  const seatKeys = new Set((version.spec?.charges ?? []).map((c) => c.key));
  s.planKey = change.planKey;
  s.planVersion = change.planVersion;
  s.interval = version.spec?.interval ?? s.interval;
  s.quantities =
    change.quantities.length > 0 ? change.quantities : s.quantities.filter((q) => seatKeys.has(q.chargeKey));
  s.priceOverrides =
    change.priceOverrides.length > 0
      ? change.priceOverrides
      : s.priceOverrides.filter((o) => seatKeys.has(o.chargeKey));
  s.scheduledChange = undefined;
  return { previous, version };
}

/** Publishes that a scheduled change or migration applied at the boundary `at`. */
async function recordPlanChangedAtBoundary(
  ctx: WriteContext,
  record: SubscriptionRecord,
  previous: { planKey: string; planVersion: number; quantities: SubscriptionRecord['subscription']['quantities'] },
  at: Date,
) {
  const s = record.subscription;
  await recordEvent(
    ctx.em,
    subscriptionPlanChanged,
    {
      subscription: s,
      previousPlanKey: previous.planKey,
      previousPlanVersion: previous.planVersion,
      previousQuantities: previous.quantities,
      immediate: false,
    },
    eventContext(ctx, s.id, at),
  );
}

/** Moves into the next period at `at` (a boundary), on a calendar rebased there if the interval changed. */
function renew(record: SubscriptionRecord, customer: Customer, at: Date, version?: PlanVersion) {
  const s = record.subscription;
  if (!record.schedule) throw new Error('a billed subscription has a calendar');
  if (version && calendarInterval(version) !== record.schedule.interval) {
    record.schedule = scheduleFor(record, version, customer, at);
    record.periodIndex = 0;
  } else {
    record.periodIndex += 1;
  }
  const period = periodAt(record.schedule, record.periodIndex);
  s.currentPeriod = toPeriod(period);
  s.periodNumber += 1;
  record.segments = [segmentOf(termsOf(s), period, false)];
}

/** Processes the one step due for `record` at `at` (= nextDue(record)), with its events at that time. */
export async function advance(ctx: WriteContext, record: SubscriptionRecord, at: Date): Promise<void> {
  const s = record.subscription;
  const event = eventContext(ctx, s.id, at);
  const customer = await requireCustomer(ctx, s.customerId);
  const periodEnd = s.currentPeriod ? fromPeriod(s.currentPeriod).end : undefined;
  s.updateTime = timestampFromDate(at);

  if (s.state === SubscriptionState.PENDING) {
    const applied = await applyScheduledChange(ctx, record);
    const started = await begin(ctx, record, customer);
    await store.saveSubscription(ctx.em, record);
    if (applied) await recordPlanChangedAtBoundary(ctx, record, applied.previous, at);
    await recordEvent(
      ctx.em,
      subscriptionActivated,
      {
        subscription: s,
        previousState: SubscriptionState.PENDING,
        firstBilledSegment: started.segment,
        prorationItems: started.items,
      },
      event,
    );
    return;
  }
  if (s.state === SubscriptionState.TRIALING && periodEnd && at.getTime() < periodEnd.getTime()) {
    record.trialEndingNotified = true;
    await store.saveSubscription(ctx.em, record);
    await recordEvent(ctx.em, subscriptionTrialEnding, { subscription: s }, event);
    return;
  }
  if (s.state === SubscriptionState.CANCELED) {
    await endNow(ctx, record, at, EndReason.CANCELED_AT_PERIOD_END);
    return;
  }
  if (!periodEnd) throw new Error(`subscription ${s.id} has no current period`);
  const previousPeriod = s.currentPeriod;
  const closed = await closeCurrentPeriod(ctx, record, periodEnd);
  const applied = await applyScheduledChange(ctx, record);
  const trialEnded = s.state === SubscriptionState.TRIALING;
  let stubItems: ProrationItem[] = [];
  if (trialEnded) {
    const started = await startBilledPeriods(ctx, record, customer, at);
    s.periodNumber += 1;
    stubItems = started.items;
    await store.insertProrationItems(ctx.em, s.periodNumber, stubItems);
  } else {
    renew(record, customer, at, applied?.version);
  }
  await store.saveSubscription(ctx.em, record);
  await publishClose(ctx, record, customer, closed, at, stubItems);
  if (applied) await recordPlanChangedAtBoundary(ctx, record, applied.previous, at);
  if (trialEnded) {
    await recordEvent(
      ctx.em,
      subscriptionActivated,
      { subscription: s, previousState: SubscriptionState.TRIALING },
      event,
    );
  }
  await recordEvent(ctx.em, subscriptionRenewed, { subscription: s, previousPeriod }, event);
}

/** Processes everything due on real time by `now`, one subscription step per transaction; returns the count. */
export async function runBillingClock(db: Database, now: () => Date, requestId = 'billing-clock'): Promise<number> {
  let steps = 0;
  for (;;) {
    const done = await db.transaction(async (em) => {
      const [record] = await store.claimDueSubscriptions(em, now(), 1);
      if (!record) return false;
      const due = nextDue(record);
      if (!due) return true;
      await advance({ em, now: now(), requestId }, record, due);
      return true;
    });
    if (!done) return steps;
    steps += 1;
  }
}
