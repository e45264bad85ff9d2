// A subscription as the service keeps it: the contract's Subscription plus what the billing clock needs
// (its calendar, the segments of the current period, the add-on charges it was sold) and the lifecycle rules
// (docs/subscriptions.md).
import type { Charge, PlanVersion } from '@billing/proto/billing/catalog/v1/resources_pb';
import { type PeriodSegment, PeriodSegmentSchema } from '@billing/proto/billing/subscription/events/v1/events_pb';
import {
  type AddonQuantity,
  type ChargeQuantity,
  type PriceOverride,
  type ProrationItem,
  type Subscription,
  SubscriptionSchema,
  SubscriptionState,
} from '@billing/proto/billing/subscription/v1/resources_pb';
import { BillingInterval } from '@billing/proto/billing/type/v1/types_pb';
import { clone } from '@bufbuild/protobuf';
import { type Timestamp, timestampDate } from '@bufbuild/protobuf/wkt';
import type { BillingSchedule, BillingInterval as CalendarInterval } from './billing-calendar.ts';
import { invalidTransition } from './errors.ts';

/** A subscription with its internal state. */
export interface SubscriptionRecord {
  /** The subscription as the contract shows it. */
  subscription: Subscription;
  /** The test clock of its customer, or empty for real time. */
  testClockId: string;
  /** The calendar of its billed periods; undefined while PENDING or TRIALING. */
  schedule: BillingSchedule | undefined;
  /** The index of the current period in `schedule`. */
  periodIndex: number;
  /** The segments of the current period so far; the last one runs to the period's end. */
  segments: PeriodSegment[];
  /** The state a scheduled cancellation would resume to. */
  stateBeforeCancel: SubscriptionState;
  /** Whether SubscriptionTrialEnding was published for the current trial. */
  trialEndingNotified: boolean;
  /** The recurring charges of each attached add-on, as sold. */
  addonCharges: Record<string, Charge[]>;
}

/** A subscription as a change left it, with the proration items the change created. */
export interface SubscriptionChange {
  /** The subscription with its internal state. */
  record: SubscriptionRecord;
  /** The proration items created. */
  prorationItems: ProrationItem[];
}

/** A copy of a record that a step can change without touching the one it was given. */
export function cloneRecord(record: SubscriptionRecord): SubscriptionRecord {
  return {
    ...record,
    subscription: clone(SubscriptionSchema, record.subscription),
    schedule: record.schedule ? { ...record.schedule } : undefined,
    segments: record.segments.map((segment) => clone(PeriodSegmentSchema, segment)),
    addonCharges: { ...record.addonCharges },
  };
}

/** What a subscription is billed for: plan version, quantities, add-ons, contract prices. */
export interface Terms {
  /** The plan key. */
  planKey: string;
  /** The plan version. */
  planVersion: number;
  /** Seat quantities. */
  quantities: ChargeQuantity[];
  /** Attached add-ons. */
  addons: AddonQuantity[];
  /** Contract prices. */
  priceOverrides: PriceOverride[];
}

/** The terms a subscription is on now. */
export function termsOf(s: Subscription): Terms {
  return {
    planKey: s.planKey,
    planVersion: s.planVersion,
    quantities: s.quantities,
    addons: s.addons,
    priceOverrides: s.priceOverrides,
  };
}

/** The calendar interval of a plan version. */
export function calendarInterval(version: PlanVersion): CalendarInterval {
  const interval = version.spec?.interval;
  if (interval === BillingInterval.QUARTER) return 'quarter';
  if (interval === BillingInterval.YEAR) return 'year';
  return 'month';
}

const S = SubscriptionState;
/** The transitions the lifecycle allows (docs/subscriptions.md): from -> to. */
export const TRANSITIONS: Readonly<Record<SubscriptionState, readonly SubscriptionState[]>> = {
  [S.UNSPECIFIED]: [],
  [S.PENDING]: [S.TRIALING, S.ACTIVE, S.ENDED],
  [S.TRIALING]: [S.ACTIVE, S.CANCELED, S.ENDED],
  [S.ACTIVE]: [S.PAST_DUE, S.CANCELED, S.ENDED],
  [S.PAST_DUE]: [S.ACTIVE, S.CANCELED, S.ENDED],
  [S.CANCELED]: [S.TRIALING, S.ACTIVE, S.PAST_DUE, S.ENDED],
  [S.ENDED]: [],
};

/** Throws FAILED_PRECONDITION INVALID_TRANSITION unless the lifecycle allows the subscription's state -> `to`. */
export function assertTransition(s: Subscription, to: SubscriptionState, action: string): void {
  if (!TRANSITIONS[s.state].includes(to)) {
    throw invalidTransition(`cannot ${action} a subscription that is ${S[s.state]} (it would become ${S[to]})`, s.id);
  }
}

/** Throws FAILED_PRECONDITION INVALID_TRANSITION unless the subscription is in one of `states`. */
export function assertState(s: Subscription, states: readonly SubscriptionState[], action: string): void {
  if (!states.includes(s.state)) {
    throw invalidTransition(
      `cannot ${action} a subscription that is ${S[s.state]} (allowed: ${states.map((x) => S[x]).join(', ')})`,
      s.id,
    );
  }
}

/** Moves the subscription to `to`, which the lifecycle must allow from its state (INVALID_TRANSITION if not). */
export function transition(s: Subscription, to: SubscriptionState, action: string): void {
  assertTransition(s, to, action);
  s.state = to;
}

/** Whether the subscription is in its free trial (possibly with a cancellation scheduled at its end). */
export function inTrial(record: SubscriptionRecord): boolean {
  const state = record.subscription.state;
  return state === S.TRIALING || (state === S.CANCELED && record.stateBeforeCancel === S.TRIALING);
}

/** Whether the current period's in-advance charges were billed, so that changes within it are prorated. */
export function isBilled(record: SubscriptionRecord): boolean {
  const state = record.subscription.state;
  return state === S.ACTIVE || state === S.PAST_DUE || (state === S.CANCELED && !inTrial(record));
}

/** How long before a trial ends SubscriptionTrialEnding is published. */
export const TRIAL_ENDING_NOTICE_MS = 3 * 24 * 3600 * 1000;

/** The next time the billing clock has something to do for the subscription; undefined when never. */
export function nextDue(record: SubscriptionRecord): Date | undefined {
  const s = record.subscription;
  const time = (t: Timestamp | undefined) => (t ? timestampDate(t) : undefined);
  if (s.state === S.PENDING) return time(s.startTime);
  if (s.state === S.ENDED) return undefined;
  const periodEnd = time(s.currentPeriod?.endTime);
  if (s.state === S.TRIALING && !record.trialEndingNotified && periodEnd) {
    const start = time(s.currentPeriod?.startTime) ?? periodEnd;
    return new Date(Math.max(periodEnd.getTime() - TRIAL_ENDING_NOTICE_MS, start.getTime()));
  }
  return periodEnd;
}
